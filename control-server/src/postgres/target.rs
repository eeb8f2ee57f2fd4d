//! Where the database is and how to reach it: `DATABASE_URL` parsed, and
//! the TLS it asks for. With `sslmode=require` the connection is TLS and
//! the server's certificate is verified, chain and name, against
//! `DATABASE_CA_FILE` (PEM) or else Mozilla's roots. That is stricter than
//! libpq's `require`, which encrypts without checking whom it talks to: a
//! connection that carries every person's usage and the sealed secrets must
//! not go to whoever answers. Without `sslmode=require` (`prefer`, the
//! default, or `disable`) the connection is plain, as before; a CA file
//! without it is a configuration error rather than silently unused.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgError;

/// One connection's I/O half, TLS or not (polled by whoever opened it).
pub type Connection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <MakeRustlsConnect as MakeTlsConnect<tokio_postgres::Socket>>::Stream,
>;

/// A parsed `DATABASE_URL` with its TLS connector. Cheap to clone.
#[derive(Clone)]
pub struct Target {
    config: Arc<tokio_postgres::Config>,
    tls: MakeRustlsConnect,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password.
        f.debug_struct("Target")
            .field("hosts", &self.config.get_hosts())
            .field("tls", &self.is_tls())
            .finish()
    }
}

impl Target {
    /// `url` as `DATABASE_URL` gives it; `ca_file` the certificates to
    /// trust for its TLS (`DATABASE_CA_FILE`).
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Self, PgError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(PgError::Url)?;
        let roots = match (config.get_ssl_mode(), ca_file) {
            (SslMode::Require, Some(file)) => roots_from(file)?,
            (SslMode::Require, None) => {
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned())
            }
            (_, Some(_)) => return Err(PgError::CaWithoutTls),
            (_, None) => {
                // `prefer` would try TLS it cannot verify: plain, as asked
                // for by leaving TLS unrequired.
                config.ssl_mode(SslMode::Disable);
                rustls::RootCertStore::empty()
            }
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(PgError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            tls: MakeRustlsConnect::new(client),
        })
    }

    /// The connection settings (clone to name a session).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The connector every connection to this database goes through.
    pub fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    /// Whether connections are TLS (`sslmode=require`).
    pub fn is_tls(&self) -> bool {
        self.config.get_ssl_mode() == SslMode::Require
    }

    /// Opens one connection outside the pool, named `application_name` so
    /// operators see it in `pg_stat_activity`.
    pub async fn connect(
        &self,
        application_name: &str,
    ) -> Result<(tokio_postgres::Client, Connection), PgError> {
        let mut config = tokio_postgres::Config::clone(&self.config);
        config.application_name(application_name);
        Ok(config.connect(self.tls()).await?)
    }
}

/// The certificates in the PEM file at `path`: at least one.
fn roots_from(path: &Path) -> Result<rustls::RootCertStore, PgError> {
    let unreadable = |source| PgError::CaFile {
        path: path.to_owned(),
        source,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(PgError::NoCaCertificate(path.to_owned()));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_used_only_when_required() {
        let plain = Target::new("postgres://u@127.0.0.1/db", None).unwrap();
        assert!(!plain.is_tls());
        assert_eq!(plain.config().get_ssl_mode(), SslMode::Disable);
        let preferred = Target::new("postgres://u@127.0.0.1/db?sslmode=prefer", None).unwrap();
        assert!(!preferred.is_tls());
        let required = Target::new("postgres://u@127.0.0.1/db?sslmode=require", None).unwrap();
        assert!(required.is_tls());
    }

    #[test]
    fn a_ca_file_without_required_tls_or_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not a certificate\n").unwrap();
        assert!(matches!(
            Target::new("postgres://u@127.0.0.1/db", Some(&file)),
            Err(PgError::CaWithoutTls)
        ));
        let error =
            Target::new("postgres://u@127.0.0.1/db?sslmode=require", Some(&file)).unwrap_err();
        assert!(matches!(error, PgError::NoCaCertificate(_)), "{error:?}");
        assert!(error.to_string().contains("ca.pem"), "{error}");
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            Target::new("postgres://u@127.0.0.1/db?sslmode=require", Some(&missing)),
            Err(PgError::CaFile { .. })
        ));
    }
}
