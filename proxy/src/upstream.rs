//! The connection to Anthropic: HTTP/1.1 over rustls with the bundled web
//! roots, plus (for tests and diagnosis) a dial override that keeps SNI and
//! Host as api.anthropic.com and an extra trusted CA.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::config::UpstreamOverrides;
use crate::egress::Egress;

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

/// Dials the override address whenever the request is for api.anthropic.com
/// (tests, diagnosis); otherwise the target, through the network's proxy
/// when there is one ([`Egress`]).
#[derive(Clone, Debug)]
pub struct DialOverride {
    inner: HttpConnector,
    /// `http://HOST:PORT` to dial instead of api.anthropic.com.
    target: Option<Uri>,
    egress: Egress,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Dialed = TokioIo<TcpStream>;

impl Service<Uri> for DialOverride {
    type Response = Dialed;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Dialed, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let overridden = match &self.target {
            Some(target) if uri.host().is_some_and(crate::routes::is_anthropic_host) => {
                Some(target.clone())
            }
            _ => None,
        };
        if overridden.is_some() || self.egress.is_direct() {
            let dialing = self.inner.call(overridden.unwrap_or(uri));
            return Box::pin(async move { dialing.await.map_err(Into::into) });
        }
        let egress = self.egress.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("no host to dial")?.to_owned();
            let secure = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
            let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
            let stream = egress.open(&host, port).await?;
            Ok(TokioIo::new(stream))
        })
    }
}

pub type UpstreamConnector = HttpsConnector<DialOverride>;

/// The connection to Anthropic for `overrides`, through `egress`, trusting
/// the public roots plus `extra_ca` (a TLS-inspecting proxy's CA).
pub fn connector(
    overrides: &UpstreamOverrides,
    egress: &Egress,
    extra_ca: Option<&Path>,
) -> Result<UpstreamConnector, UpstreamError> {
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
    for path in overrides.ca_file.as_deref().into_iter().chain(extra_ca) {
        for cert in read_certificates(path)? {
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
            egress: egress.clone(),
        }))
}

/// The certificates of a PEM file (at least one).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, UpstreamError> {
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
    Ok(certs)
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
            assert!(
                connector(&overrides, &Egress::default(), None).is_err(),
                "{bad}"
            );
        }
        let overrides = UpstreamOverrides {
            connect_to: Some("127.0.0.1:8443".into()),
            ..Default::default()
        };
        assert!(connector(&overrides, &Egress::default(), None).is_ok());
    }
}
