//! The connection to Anthropic: HTTP/1.1 over rustls with the bundled web
//! roots, plus (for tests and diagnosis) a dial override that keeps SNI and
//! Host as api.anthropic.com and an extra trusted CA.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tower_service::Service;

use crate::config::UpstreamOverrides;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    #[error("CCGATE_UPSTREAM_CONNECT_TO={0:?} is not HOST:PORT")]
    BadConnectTo(String),
    #[error("cannot read the upstream CA file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// Dials the override address whenever the request is for api.anthropic.com.
#[derive(Clone, Debug)]
pub struct DialOverride {
    inner: HttpConnector,
    /// `http://HOST:PORT` to dial instead of api.anthropic.com.
    target: Option<Uri>,
}

impl Service<Uri> for DialOverride {
    type Response = <HttpConnector as Service<Uri>>::Response;
    type Error = <HttpConnector as Service<Uri>>::Error;
    type Future = <HttpConnector as Service<Uri>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let uri = match &self.target {
            Some(target) if uri.host().is_some_and(crate::routes::is_anthropic_host) => {
                target.clone()
            }
            _ => uri,
        };
        self.inner.call(uri)
    }
}

pub type UpstreamConnector = HttpsConnector<DialOverride>;

pub fn connector(overrides: &UpstreamOverrides) -> Result<UpstreamConnector, UpstreamError> {
    let target = overrides
        .connect_to
        .as_deref()
        .map(|to| {
            let valid = to.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            valid
                .then(|| format!("http://{to}").parse::<Uri>().ok())
                .flatten()
                .ok_or_else(|| UpstreamError::BadConnectTo(to.to_owned()))
        })
        .transpose()?;

    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &overrides.ca_file {
        let ca_error = |message: String| UpstreamError::CaFile {
            path: path.display().to_string(),
            message,
        };
        let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_error(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| ca_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("no certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert)?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(DialOverride {
            inner: http,
            target,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_to_must_be_host_and_port() {
        for bad in ["127.0.0.1", "127.0.0.1:0", ":443", "host:port"] {
            let overrides = UpstreamOverrides {
                connect_to: Some(bad.into()),
                ..Default::default()
            };
            assert!(connector(&overrides).is_err(), "{bad}");
        }
        let overrides = UpstreamOverrides {
            connect_to: Some("127.0.0.1:8443".into()),
            ..Default::default()
        };
        assert!(connector(&overrides).is_ok());
    }
}
