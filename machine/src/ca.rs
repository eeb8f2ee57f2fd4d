//! The per-machine certificate authority's files: created by setup (and by
//! the daemon if absent), name-constrained to api.anthropic.com so that even
//! a stolen key cannot sign for any other host; the key is 0600 and never
//! leaves the machine. The daemon signs with it (`ccgate_proxy::ca`); setup
//! and doctor check it.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType, GeneralSubtree,
    IsCa, KeyPair, KeyUsagePurpose, NameConstraints,
};

use crate::fsutil::{self, write_atomic};

/// The one host ccgate intercepts.
pub const ANTHROPIC_HOST: &str = "api.anthropic.com";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("the CA in {path} is not usable: {message}")]
    Invalid { path: String, message: String },
    #[error("cannot generate the CA: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Generates a fresh CA and writes `ca.pem` (0644) and `ca.key` (0600).
pub fn create(cert_path: &Path, key_path: &Path) -> Result<(), CaError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(
        DnType::CommonName,
        "ccgate local CA (api.anthropic.com only)",
    );
    name.push(DnType::OrganizationName, "ccgate");
    if let Ok(host) = hostname() {
        name.push(DnType::OrganizationalUnitName, host);
    }
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.name_constraints = Some(name_constraints());
    // Valid from yesterday (clock skew) for ten years.
    let today = jiff::Zoned::now().date();
    let from = today.yesterday().unwrap_or(today);
    params.not_before =
        rcgen::date_time_ymd(i32::from(from.year()), from.month() as u8, from.day() as u8);
    params.not_after = rcgen::date_time_ymd(
        i32::from(from.year()) + 10,
        from.month() as u8,
        from.day().min(28) as u8,
    );
    let cert = params.self_signed(&key)?;
    fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> CaError + 'p {
        move |source| CaError::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }
    if let Some(dir) = key_path.parent() {
        fsutil::create_dir_with_mode(dir, 0o700).map_err(io("create", dir))?;
    }
    write_atomic(key_path, key.serialize_pem().as_bytes(), 0o600).map_err(io("write", key_path))?;
    write_atomic(cert_path, cert.pem().as_bytes(), 0o644).map_err(io("write", cert_path))?;
    Ok(())
}

/// api.anthropic.com and nothing else. A DNS constraint says nothing about
/// IP addresses, so every IPv4 and IPv6 range is excluded too: a leaf for
/// `https://203.0.113.7/` signed by this CA must not verify (Node accepted
/// one before).
pub fn name_constraints() -> NameConstraints {
    NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName(ANTHROPIC_HOST.to_owned())],
        excluded_subtrees: vec![
            GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])),
            GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])),
        ],
    }
}

fn hostname() -> std::io::Result<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
}
