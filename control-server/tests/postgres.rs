//! The PostgreSQL backend's foundation against a real PostgreSQL: the
//! schema migrates once however many replicas start together, a newer
//! schema is refused, and the schema keeps SQLite's uniqueness rules.

mod common;

use ccgate_server::postgres::{PgDb, PgError};
use common::postgres::Postgres;

#[tokio::test]
async fn replicas_starting_together_migrate_once() {
    let postgres = Postgres::start().await;
    let url = postgres.create_database("ccgate").await;
    let replicas: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgDb::open(&url, 2).await })
        })
        .collect();
    for replica in replicas {
        replica
            .await
            .unwrap()
            .expect("every replica opens the database");
    }
    let client = postgres.connect("ccgate").await;
    let versions: Vec<i64> = client
        .query("SELECT version FROM ccgate_schema ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [1]);
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' ORDER BY table_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    // The tables of the SQLite schema, and the migrations' own.
    assert_eq!(
        tables,
        [
            "accounts",
            "alert_channels",
            "alert_deliveries",
            "alert_events",
            "alert_rules",
            "alert_state",
            "api_tokens",
            "audit_log",
            "ccgate_schema",
            "devices",
            "events",
            "identities",
            "install_codes",
            "limits",
            "oidc_logins",
            "sessions",
            "settings",
            "subscriptions",
            "users",
            "utilization_observations",
        ]
    );
    // Opening again applies nothing.
    let db = PgDb::open(&url, 1).await.unwrap();
    assert_eq!(db.migrate().await.unwrap(), 0);
}

#[tokio::test]
async fn a_schema_newer_than_the_server_is_refused() {
    let postgres = Postgres::start().await;
    let url = postgres.create_database("ccgate").await;
    PgDb::open(&url, 1).await.unwrap();
    let client = postgres.connect("ccgate").await;
    client
        .execute("INSERT INTO ccgate_schema (version) VALUES (99)", &[])
        .await
        .unwrap();
    match PgDb::open(&url, 1).await {
        Err(PgError::Newer {
            found: 99,
            known: 1,
        }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_schema_keeps_the_uniqueness_rules_of_sqlite() {
    let postgres = Postgres::start().await;
    let url = postgres.create_database("ccgate").await;
    PgDb::open(&url, 1).await.unwrap();
    let client = postgres.connect("ccgate").await;
    client
        .batch_execute(
            "INSERT INTO users (name, slug, created_at, email) VALUES ('Mel', 'mel', 0, 'Mel@Example.test');
             INSERT INTO subscriptions (name, kind, credential, credential_hint, created_at, updated_at)
             VALUES ('Team', 'oauth_token', '\\x00', 'abcd', 0, 0);
             INSERT INTO events (id, user_id, device_id, at, received_at, type)
             VALUES ('e1', 1, NULL, 0, 0, 'request');",
        )
        .await
        .unwrap();
    for duplicate in [
        // E-mails and subscription names are unique whatever their case.
        "INSERT INTO users (name, slug, created_at, email) VALUES ('Mel 2', 'mel-2', 0, 'mel@example.TEST')",
        "INSERT INTO subscriptions (name, kind, credential, credential_hint, created_at, updated_at)
         VALUES ('TEAM', 'api_key', '\\x00', 'abcd', 0, 0)",
        // One event id per device, device-less (hook) events included.
        "INSERT INTO events (id, user_id, device_id, at, received_at, type) VALUES ('e1', 1, NULL, 1, 1, 'request')",
        // Roles are checked.
        "INSERT INTO sessions (token_hash, role, csrf_token, created_at, expires_at) VALUES ('h', 'owner', 'c', 0, 1)",
    ] {
        assert!(
            client.execute(duplicate, &[]).await.is_err(),
            "accepted: {duplicate}"
        );
    }
}
