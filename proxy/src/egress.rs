//! How the daemon reaches the outside: directly, or through the network's
//! own HTTP proxy (a corporate proxy, `upstream_proxy` in the config) with
//! CONNECT. Anthropic, the tunnels Claude Code opens to other hosts, and a
//! ccgate server off this machine all go that way; a server on loopback is
//! reached directly.

use std::io;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
#[error("upstream proxy {0:?} is not http://HOST:PORT")]
pub struct BadProxyUrl(pub String);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Egress {
    /// The HTTP proxy to tunnel through, as (host, port).
    via: Option<(String, u16)>,
}

impl Egress {
    /// `upstream_proxy` is `http://HOST:PORT` (a trailing `/` allowed).
    pub fn new(upstream_proxy: Option<&str>) -> Result<Self, BadProxyUrl> {
        let Some(url) = upstream_proxy.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Self::default());
        };
        let bad = || BadProxyUrl(url.to_owned());
        let authority = url
            .strip_prefix("http://")
            .ok_or_else(bad)?
            .trim_end_matches('/');
        let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 || authority.contains(['/', '@', '?', '#']) {
            return Err(bad());
        }
        Ok(Self {
            via: Some((host.to_owned(), port)),
        })
    }

    /// The proxy's URL, if one is set (for reqwest).
    pub fn proxy_url(&self) -> Option<String> {
        self.via.as_ref().map(|(host, port)| {
            if host.contains(':') {
                format!("http://[{host}]:{port}")
            } else {
                format!("http://{host}:{port}")
            }
        })
    }

    pub fn is_direct(&self) -> bool {
        self.via.is_none()
    }

    /// A TCP stream to `host:port`, through the proxy when there is one.
    pub async fn open(&self, host: &str, port: u16) -> io::Result<TcpStream> {
        let Some((proxy_host, proxy_port)) = &self.via else {
            return TcpStream::connect((host, port)).await;
        };
        let mut stream = TcpStream::connect((proxy_host.as_str(), *proxy_port)).await?;
        stream.set_nodelay(true)?;
        async_http_proxy::http_connect_tokio(&mut stream, host, port)
            .await
            .map_err(|e| {
                io::Error::other(format!(
                    "the upstream proxy {proxy_host}:{proxy_port} did not open {host}:{port}: {e}"
                ))
            })?;
        Ok(stream)
    }

    /// Tunnels a client's CONNECT to `authority` through the proxy (Claude
    /// Code's traffic to hosts other than Anthropic, which ccgate does not
    /// read): `client` is the upgraded connection.
    pub async fn tunnel<C>(&self, mut client: C, authority: &str) -> io::Result<()>
    where
        C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let (host, port) = authority
            .rsplit_once(':')
            .and_then(|(h, p)| {
                Some((
                    h.trim_start_matches('[').trim_end_matches(']'),
                    p.parse().ok()?,
                ))
            })
            .ok_or_else(|| io::Error::other(format!("not HOST:PORT: {authority}")))?;
        let mut server = self.open(host, port).await?;
        let copied = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        let _ = server.shutdown().await;
        copied.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_is_http_host_and_port() {
        assert!(Egress::new(None).unwrap().is_direct());
        assert!(Egress::new(Some("")).unwrap().is_direct());
        let egress = Egress::new(Some("http://proxy.corp:3128/")).unwrap();
        assert_eq!(
            egress.proxy_url().as_deref(),
            Some("http://proxy.corp:3128")
        );
        let v6 = Egress::new(Some("http://[::1]:8080")).unwrap();
        assert_eq!(v6.proxy_url().as_deref(), Some("http://[::1]:8080"));
        for bad in [
            "proxy.corp:3128",
            "https://proxy.corp:3128",
            "http://proxy.corp",
            "http://:3128",
            "http://user:pw@proxy.corp:3128",
            "http://proxy.corp:0",
        ] {
            assert!(Egress::new(Some(bad)).is_err(), "{bad}");
        }
    }
}
