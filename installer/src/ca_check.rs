//! Doctor's look at the machine CA: a CA certificate, valid now, whose name
//! constraints permit api.anthropic.com and nothing else (every IP range
//! excluded), and (when the key can be read) signed by the key next to it.
//! Setup makes a new CA when the one on disk fails this.

use ccgate_machine::ca::ANTHROPIC_HOST;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

/// Checks the CA; `Ok` carries a one-line description.
pub fn check(cert_pem: &[u8], key_pem: Option<&str>) -> Result<String, String> {
    let (_, pem) = parse_x509_pem(cert_pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    if !cert.is_ca() {
        return Err("it is not a CA certificate".to_owned());
    }
    let validity = cert.validity();
    if !validity.is_valid() {
        return Err(format!(
            "it is not valid now (valid from {} to {})",
            validity.not_before, validity.not_after
        ));
    }
    let constraints = cert
        .name_constraints()
        .map_err(|e| format!("its name constraints do not parse: {e}"))?
        .ok_or_else(|| {
            format!(
                "it has no name constraints: it could sign for any host, not only {ANTHROPIC_HOST}"
            )
        })?;
    let permitted: Vec<String> = constraints
        .value
        .permitted_subtrees
        .iter()
        .flatten()
        .map(|subtree| match &subtree.base {
            GeneralName::DNSName(name) => (*name).to_owned(),
            other => format!("{other:?}"),
        })
        .collect();
    if permitted != [ANTHROPIC_HOST] {
        return Err(format!(
            "its name constraints permit {permitted:?}, not only {ANTHROPIC_HOST}"
        ));
    }
    // An IP range is written as address and mask: all zeroes is every address.
    let excludes_every = |len: usize| {
        constraints
            .value
            .excluded_subtrees
            .iter()
            .flatten()
            .any(|subtree| {
                matches!(subtree.base, GeneralName::IPAddress(range)
                    if range.len() == len && range.iter().all(|&b| b == 0))
            })
    };
    if !excludes_every(8) || !excludes_every(32) {
        return Err(
            "its name constraints do not exclude IP addresses: it could sign for any IP (an older ccgate made it; `ccgate setup` makes a new one)"
                .to_owned(),
        );
    }
    if let Some(key_pem) = key_pem {
        let key = rcgen::KeyPair::from_pem(key_pem)
            .map_err(|e| format!("its key (ca.key) does not parse: {e}"))?;
        if rcgen::PublicKeyData::subject_public_key_info(&key) != cert.public_key().raw {
            return Err("ca.key does not belong to ca.pem".to_owned());
        }
    }
    Ok(format!(
        "CA for {ANTHROPIC_HOST} only, valid until {}",
        validity.not_after
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_ca_passes_and_an_unconstrained_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        ccgate_machine::ca::create(&cert, &key).unwrap();
        let cert_pem = std::fs::read(&cert).unwrap();
        let key_pem = std::fs::read_to_string(&key).unwrap();
        let ok = check(&cert_pem, Some(&key_pem)).unwrap();
        assert!(ok.contains("api.anthropic.com only"), "{ok}");

        let other_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        assert_eq!(
            check(&cert_pem, Some(&other_key)).unwrap_err(),
            "ca.key does not belong to ca.pem"
        );

        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let open = params.self_signed(&key).unwrap();
        let error = check(open.pem().as_bytes(), None).unwrap_err();
        assert!(error.contains("no name constraints"), "{error}");

        // What ccgate made before: DNS names constrained, IP addresses not.
        params.name_constraints = Some(rcgen::NameConstraints {
            permitted_subtrees: vec![rcgen::GeneralSubtree::DnsName(ANTHROPIC_HOST.into())],
            excluded_subtrees: vec![],
        });
        let dns_only = params.self_signed(&key).unwrap();
        let error = check(dns_only.pem().as_bytes(), None).unwrap_err();
        assert!(error.contains("do not exclude IP"), "{error}");
        assert!(check(b"garbage", None).is_err());
    }
}
