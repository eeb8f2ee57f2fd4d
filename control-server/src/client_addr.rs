//! Which address a request comes from. The TCP peer, unless it is one of
//! the proxies the operator named (`TRUSTED_PROXIES`): then the client is
//! the last address in `X-Forwarded-For` that is not a trusted proxy
//! itself, read from the right, as each proxy appends the address it was
//! reached from; when every entry is in a trusted range (a client on the
//! proxies' own network), the rightmost, what the nearest proxy saw. A
//! header from any other peer is ignored, so a client cannot pick the
//! address its failed logins count against.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// The keyword for every loopback and private range, as Caddy names it.
const PRIVATE_RANGES: &str = "private_ranges";

/// Proxies whose `X-Forwarded-For` is believed. Empty by default: the TCP
/// peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

#[derive(Debug, thiserror::Error)]
#[error("TRUSTED_PROXIES: {0:?} is not an address, a CIDR range or \"private_ranges\"")]
pub struct BadProxy(String);

impl TrustedProxies {
    /// Addresses and CIDR ranges separated by commas or spaces;
    /// `private_ranges` stands for 127.0.0.0/8, 10.0.0.0/8, 172.16.0.0/12,
    /// 192.168.0.0/16, ::1/128 and fc00::/7.
    pub fn parse(text: &str) -> Result<Self, BadProxy> {
        let mut ranges = Vec::new();
        for item in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|item| !item.is_empty())
        {
            if item.eq_ignore_ascii_case(PRIVATE_RANGES) {
                ranges.extend(
                    [
                        "127.0.0.0/8",
                        "10.0.0.0/8",
                        "172.16.0.0/12",
                        "192.168.0.0/16",
                        "::1/128",
                        "fc00::/7",
                    ]
                    .map(|range| range.parse::<IpNet>().expect("a valid range")),
                );
            } else if let Ok(range) = item.parse::<IpNet>() {
                ranges.push(range);
            } else if let Ok(address) = item.parse::<IpAddr>() {
                ranges.push(IpNet::from(address));
            } else {
                return Err(BadProxy(item.to_owned()));
            }
        }
        Ok(Self(ranges))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|range| range.contains(&address))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        // Every header line in order, each a list; the rightmost entries were
        // written by the proxies nearest to this server.
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        // What the nearest proxy saw: the client when every entry is in a
        // trusted range (a client on the proxies' own network), since what
        // lies further left the client may have written itself.
        let mut nearest = None;
        for entry in forwarded.into_iter().rev() {
            let Ok(address) = entry.trim().parse::<IpAddr>() else {
                // Unreadable: nothing to its left can be believed either.
                break;
            };
            if !self.trusts(address) {
                return address;
            }
            nearest.get_or_insert(address);
        }
        nearest.unwrap_or(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn a_header_from_an_untrusted_peer_is_ignored() {
        let none = TrustedProxies::default();
        let headers = forwarded(&["198.51.100.7"]);
        assert_eq!(none.client(ip("203.0.113.1"), &headers), ip("203.0.113.1"));
        let caddy = TrustedProxies::parse("10.0.0.2").unwrap();
        assert_eq!(caddy.client(ip("10.0.0.3"), &headers), ip("10.0.0.3"));
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_wrote() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.0.2.10").unwrap();
        // What the client wrote itself (left) is not believed past the
        // first untrusted address from the right.
        let headers = forwarded(&["1.1.1.1, 198.51.100.7", "192.0.2.10"]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &headers), ip("198.51.100.7"));
        // No header: the peer.
        assert_eq!(
            proxies.client(ip("10.0.0.2"), &HeaderMap::new()),
            ip("10.0.0.2")
        );
        // Garbage stops the walk at what was read so far.
        let headers = forwarded(&["198.51.100.7, not-an-address, 192.0.2.10"]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &headers), ip("192.0.2.10"));
        // A client inside a trusted range cannot pass for another address
        // by writing one itself (a proxy that appends keeps it).
        let lan = TrustedProxies::parse("private_ranges").unwrap();
        let headers = forwarded(&["127.0.0.1, 10.9.8.7"]);
        assert_eq!(lan.client(ip("127.0.0.1"), &headers), ip("10.9.8.7"));
        // IPv4 peers written as IPv6-mapped addresses are the same peers.
        let headers = forwarded(&["2001:db8::5"]);
        assert_eq!(
            proxies.client(ip("::ffff:10.0.0.2"), &headers),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn private_ranges_and_bad_entries() {
        let proxies = TrustedProxies::parse("private_ranges").unwrap();
        for peer in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.5",
            "192.168.1.1",
            "::1",
            "fd00::1",
        ] {
            assert!(proxies.trusts(ip(peer)), "{peer}");
        }
        assert!(!proxies.trusts(ip("203.0.113.1")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        let error = TrustedProxies::parse("10.0.0.0/8 caddy").unwrap_err();
        assert!(error.to_string().contains("caddy"), "{error}");
    }
}
