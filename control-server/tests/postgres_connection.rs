//! How the server reaches PostgreSQL: TLS verified against the CA it is
//! given (`sslmode=require`, `DATABASE_CA_FILE`), and a check that cannot
//! finish in time refused for a retry with its statement cancelled. Real
//! clusters on loopback (`common::postgres`).

mod common;

use std::time::Duration;

use ccgate_quota::ModelFamily;
use ccgate_quota::error_chain;
use ccgate_server::postgres::fanout::Listener;
use ccgate_server::postgres::{PgDb, PgError, Target};
use common::postgres::{Postgres, one_opus_rule_policy, proxy_prompt};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// A CA's certificate (PEM) and a certificate it signed for 127.0.0.1 with
/// that certificate's key (PEM).
struct TestPki {
    ca: String,
    server_certificate: String,
    server_key: String,
}

fn test_pki(name: &str) -> TestPki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("ccgate tests: {name}"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::default();
    server_params.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
    let server = server_params.signed_by(&server_key, &issuer).unwrap();
    TestPki {
        ca: ca.pem(),
        server_certificate: server.pem(),
        server_key: server_key.serialize_pem(),
    }
}

/// Whether the session answering on `client` is encrypted, as PostgreSQL
/// sees it.
async fn session_is_tls(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn tls_to_postgres_is_verified_against_the_ca_it_is_given() {
    let pki = test_pki("database CA");
    let postgres = Postgres::start_with_tls(&pki.server_certificate, &pki.server_key).await;
    let url = postgres.create_database("ccgate").await;
    let required = format!("{url}?sslmode=require");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("db-ca.pem");
    std::fs::write(&ca_file, &pki.ca).unwrap();

    let db = PgDb::connect(Target::new(&required, Some(&ca_file)).unwrap(), 2)
        .await
        .unwrap();
    assert!(session_is_tls(&db.connection().await.unwrap()).await);
    // Checks go over it.
    let admin = postgres.connect("ccgate").await;
    admin
        .batch_execute("INSERT INTO users (id, name, slug, created_at) VALUES (1, 'Mel', 'mel', 0)")
        .await
        .unwrap();
    let now = jiff::Timestamp::now();
    let checked = db
        .check(
            &one_opus_rule_policy(2),
            &proxy_prompt(1, 7, "turn-1", ModelFamily::Opus, now),
        )
        .await
        .unwrap();
    assert!(checked.decision.allowed());
    // So does the connection that hears the other replicas.
    let _listener = Listener::<serde_json::Value>::start(db.target(), uuid::Uuid::new_v4())
        .await
        .unwrap();
    let listener_tls: Vec<bool> = admin
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = 'ccgate live listener'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(listener_tls, [true]);

    // A certificate from another CA, or one only the server vouches for
    // (not among Mozilla's roots), is refused: no connection, no schema.
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, test_pki("another CA").ca).unwrap();
    for ca in [Some(other.as_path()), None] {
        let refused = PgDb::connect(Target::new(&required, ca).unwrap(), 1)
            .await
            .unwrap_err();
        let chain = error_chain(&refused);
        assert!(chain.contains("certificate"), "{ca:?}: {chain}");
    }

    // Without sslmode=require the connection stays plain (as before TLS
    // was supported), even to a server that offers TLS.
    let plain = PgDb::open(&url, 1).await.unwrap();
    assert!(!session_is_tls(&plain.connection().await.unwrap()).await);
}

#[tokio::test]
async fn tls_required_from_a_server_without_it_is_an_error() {
    let postgres = Postgres::start().await;
    let url = postgres.create_database("ccgate").await;
    let refused = PgDb::open(&format!("{url}?sslmode=require"), 1)
        .await
        .unwrap_err();
    assert!(matches!(refused, PgError::Connect(_)), "{refused:?}");
}

#[tokio::test]
async fn a_check_stuck_behind_a_lock_is_refused_for_a_retry_and_cancelled() {
    let postgres = Postgres::start().await;
    let url = postgres.create_database("ccgate").await;
    let db = PgDb::open(&url, 2)
        .await
        .unwrap()
        .with_check_timeout(Duration::from_millis(300));
    let mut admin = postgres.connect("ccgate").await;
    admin
        .batch_execute("INSERT INTO users (id, name, slug, created_at) VALUES (1, 'Mel', 'mel', 0)")
        .await
        .unwrap();
    let policy = one_opus_rule_policy(2);
    let now = jiff::Timestamp::now();
    let check = |key| {
        let (db, policy) = (db.clone(), policy.clone());
        async move {
            // Bounded here too, so a check that never returns fails the test.
            tokio::time::timeout(
                Duration::from_secs(10),
                db.check(&policy, &proxy_prompt(1, 7, key, ModelFamily::Opus, now)),
            )
            .await
            .expect("the check returns by itself")
        }
    };

    // Another session holds Mel's row, as a stuck transaction would.
    let stuck = admin.transaction().await.unwrap();
    stuck
        .execute("SELECT 1 FROM users WHERE id = 1 FOR UPDATE", &[])
        .await
        .unwrap();
    let error = check("turn-1").await.unwrap_err();
    assert!(matches!(error, PgError::Timeout), "{error:?}");
    assert!(error.is_transient(), "a timeout is a 503 to retry");

    // The abandoned statement is cancelled, not left queued for the lock.
    let watcher = postgres.connect("ccgate").await;
    let mut still_running = i64::MAX;
    for _ in 0..100 {
        still_running = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE query LIKE '%ccgate_check(%' AND state = 'active'
                   AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if still_running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(still_running, 0, "the timed-out check still runs");

    // Once the row is free the retry goes through, and only it holds a prompt.
    stuck.rollback().await.unwrap();
    assert!(check("turn-1").await.unwrap().decision.allowed());
    let held: i64 = watcher
        .query_one("SELECT count(*) FROM reservations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 1);
}
