//! The per-machine certificate authority loaded for signing: hudsucker's
//! authority over the CA that `ccgate_machine::ca` creates.

use std::path::Path;

use hudsucker::certificate_authority::RcgenAuthority;
use rcgen::{Issuer, KeyPair};

use crate::paths::Paths;

pub use ccgate_machine::ca::{ANTHROPIC_HOST, CaError, create, name_constraints};

/// Leaf certificates cached in memory (one host, so a handful is plenty).
const LEAF_CACHE_SIZE: u64 = 16;

/// A loaded CA: its certificate in PEM and the signing issuer.
pub struct MachineCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl MachineCa {
    /// Loads the CA from the state dir, creating it first if it is absent.
    pub fn load_or_create(paths: &Paths) -> Result<Self, CaError> {
        let (cert_path, key_path) = (paths.ca_cert(), paths.ca_key());
        if !cert_path.exists() || !key_path.exists() {
            create(&cert_path, &key_path)?;
        }
        Self::load(&cert_path, &key_path)
    }

    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CaError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| CaError::Io {
                action: "read",
                path: path.display().to_string(),
                source,
            })
        };
        let invalid = |path: &Path, message: String| CaError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let cert_pem = read(cert_path)?;
        let key =
            KeyPair::from_pem(&read(key_path)?).map_err(|e| invalid(key_path, e.to_string()))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|e| invalid(cert_path, e.to_string()))?;
        Ok(Self { cert_pem, issuer })
    }

    /// The authority hudsucker signs leaf certificates with.
    pub fn into_authority(self) -> RcgenAuthority {
        RcgenAuthority::new(
            self.issuer,
            LEAF_CACHE_SIZE,
            rustls::crypto::aws_lc_rs::default_provider(),
        )
    }
}
