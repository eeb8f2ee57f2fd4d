//! The machine CA vouches for api.anthropic.com and nothing else, as Node
//! (what Claude Code runs on) sees it: a certificate it signed for another
//! host name, or for any IP address, does not verify.

use std::net::IpAddr;
use std::process::Command;
use std::sync::Arc;

use rcgen::{CertificateParams, Issuer, KeyPair, SanType};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

struct MachineCa {
    _dir: tempfile::TempDir,
    cert: std::path::PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

fn machine_ca() -> MachineCa {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
    ccgate_proxy::ca::create(&cert, &key).unwrap();
    let key = KeyPair::from_pem(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&std::fs::read_to_string(&cert).unwrap(), key).unwrap();
    MachineCa {
        _dir: dir,
        cert,
        issuer,
    }
}

/// Serves one TLS handshake on 127.0.0.1 with a leaf for `name`, signed by
/// the machine CA, and returns what Node said when it connected as `servername`.
async fn node_verdict(ca: &MachineCa, name: SanType, servername: Option<&str>) -> String {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![name];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "leaf");
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = params.signed_by(&leaf_key, &ca.issuer).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(leaf.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        // Node hangs up either way; how the handshake ends does not matter.
        let _ = acceptor.accept(tcp).await;
    });
    let script = r#"
        const tls = require('tls'), fs = require('fs');
        const [port, ca, servername] = process.argv.slice(1);
        const options = { host: '127.0.0.1', port: Number(port), ca: fs.readFileSync(ca) };
        if (servername) options.servername = servername;
        const socket = tls.connect(options, () => { console.log('verified'); socket.destroy(); });
        socket.on('error', e => console.log(`refused: ${e.code} ${e.message}`));
        socket.setTimeout(10000, () => { console.log('timeout'); socket.destroy(); });
    "#;
    let ca_path = ca.cert.clone();
    let servername = servername.unwrap_or_default().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(["-e", script, &port.to_string()])
            .arg(&ca_path)
            .arg(servername)
            .output()
            .expect("node is on PATH (Claude Code needs it)")
    })
    .await
    .unwrap();
    server.abort();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_trusts_the_machine_ca_for_anthropic_only() {
    let ca = machine_ca();
    let anthropic = node_verdict(
        &ca,
        SanType::DnsName("api.anthropic.com".try_into().unwrap()),
        Some("api.anthropic.com"),
    )
    .await;
    assert_eq!(anthropic, "verified");

    let other = node_verdict(
        &ca,
        SanType::DnsName("github.com".try_into().unwrap()),
        Some("github.com"),
    )
    .await;
    assert!(other.starts_with("refused"), "{other}");

    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let ip = node_verdict(&ca, SanType::IpAddress(loopback), None).await;
    assert!(ip.starts_with("refused"), "{ip}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_constrained_to_dns_names_alone_is_trusted_for_ip_addresses() {
    // Why the IP ranges are excluded: the CA ccgate made before (DNS names
    // constrained, nothing said about IPs) got an IP certificate past Node.
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ccgate local CA, as made before");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.name_constraints = Some(rcgen::NameConstraints {
        excluded_subtrees: vec![],
        ..ccgate_proxy::ca::name_constraints()
    });
    let cert = params.self_signed(&key).unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, cert.pem()).unwrap();
    let old = MachineCa {
        issuer: Issuer::from_ca_cert_pem(&cert.pem(), key).unwrap(),
        cert: path,
        _dir: dir,
    };
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(
        node_verdict(&old, SanType::IpAddress(loopback), None).await,
        "verified"
    );
}
