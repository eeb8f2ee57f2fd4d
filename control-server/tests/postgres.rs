//! The PostgreSQL backend's foundation against a real PostgreSQL: the
//! schema migrates once however many replicas start together, a newer
//! schema is refused, and the schema keeps SQLite's uniqueness rules.

mod common;

use std::time::Duration;

use ccgate_server::postgres::fanout::Listener;
use ccgate_server::postgres::{PgDb, PgError, SCHEMA_VERSION};
use common::postgres::Postgres;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
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
            "live_overflow",
            "login_failures",
            "oidc_logins",
            "reservations",
            "sessions",
            "settings",
            "subscriptions",
            "usage_running",
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
            known: SCHEMA_VERSION,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ping {
    n: u32,
    text: String,
}

async fn next(listener: &mut Listener<Ping>) -> Ping {
    tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("an event within 5 s")
        .expect("the listener runs")
}

#[tokio::test]
async fn live_events_reach_the_other_replicas_and_not_their_sender() {
    let postgres = Postgres::start().await;
    let url = postgres.create_database("ccgate").await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let replica_a = PgDb::open(&url, 2).await.unwrap();
    let mut heard_by_a = Listener::<Ping>::start(&url, a).await.unwrap();
    let mut heard_by_b = Listener::<Ping>::start(&url, b).await.unwrap();

    let small = Ping {
        n: 1,
        text: "hello".to_owned(),
    };
    // Over NOTIFY's 8000-byte payload: it goes through `live_overflow`.
    let large = Ping {
        n: 2,
        text: "x".repeat(20_000),
    };
    replica_a.notify(a, &small).await.unwrap();
    replica_a.notify(a, &large).await.unwrap();
    assert_eq!(next(&mut heard_by_b).await, small);
    assert_eq!(next(&mut heard_by_b).await, large);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), heard_by_a.recv())
            .await
            .is_err(),
        "a replica does not hear itself"
    );

    // A listener whose connection is cut connects again by itself.
    let admin = postgres.connect("ccgate").await;
    let cut: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = 'ccgate live listener'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(cut, 2);
    let again = Ping {
        n: 3,
        text: "again".to_owned(),
    };
    let mut heard = None;
    for _ in 0..50 {
        replica_a.notify(a, &again).await.unwrap();
        if let Ok(Some(ping)) =
            tokio::time::timeout(Duration::from_millis(200), heard_by_b.recv()).await
        {
            heard = Some(ping);
            break;
        }
    }
    assert_eq!(heard, Some(again));
}

fn one_opus_rule_policy(max: u64) -> ccgate_quota::CompiledPolicy {
    let policy: ccgate_quota::Policy = serde_json::from_value(serde_json::json!({
        "version": 1,
        "team": "Team",
        "user": { "id": 1, "name": "Mel", "slug": "mel" },
        "status": "active",
        "time_zone": "UTC",
        "credit_weights": ccgate_quota::CreditWeights::default(),
        "rules": [{ "type": "per_model", "model": "opus", "window": "daily", "value": max }],
    }))
    .unwrap();
    ccgate_quota::CompiledPolicy::new(policy).unwrap()
}

#[tokio::test]
async fn fifty_checks_over_two_replicas_give_away_the_last_prompt_once() {
    use ccgate_quota::{DenyReason, GateKind, ModelFamily};
    use ccgate_server::postgres::gate::Check;
    use std::sync::Arc;

    let postgres = Postgres::start().await;
    let url = postgres.create_database("ccgate").await;
    let replicas = Arc::new([
        PgDb::open(&url, 10).await.unwrap(),
        PgDb::open(&url, 10).await.unwrap(),
    ]);
    let now = jiff::Timestamp::now();
    let admin = postgres.connect("ccgate").await;
    admin
        .batch_execute("INSERT INTO users (id, name, slug, created_at) VALUES (1, 'Mel', 'mel', 0)")
        .await
        .unwrap();
    // One of her two Opus prompts of the day is used.
    admin
        .execute(
            "INSERT INTO events (id, user_id, device_id, at, received_at, type, family, prompts, credits)
             VALUES ('e1', 1, 7, $1, $1, 'request', 'opus', 1, 10)",
            &[&now.as_millisecond()],
        )
        .await
        .unwrap();
    let policy = Arc::new(one_opus_rule_policy(2));
    let check = |i: usize, family: ModelFamily| {
        let (replicas, policy) = (Arc::clone(&replicas), Arc::clone(&policy));
        tokio::spawn(async move {
            let key = format!("turn-{i}");
            replicas[i % 2]
                .check(
                    &policy,
                    &Check {
                        user_id: 1,
                        device_id: 7,
                        key: &key,
                        model: "claude-opus-4-5",
                        family,
                        kind: GateKind::Prompt,
                        now,
                        hold: Duration::from_secs(1800),
                        shares: Vec::new(),
                        hook: false,
                        session_id: None,
                    },
                )
                .await
                .unwrap()
                .decision
        })
    };
    let checks: Vec<_> = (0..50).map(|i| check(i, ModelFamily::Opus)).collect();
    let mut allowed = Vec::new();
    for (i, task) in checks.into_iter().enumerate() {
        let decision = task.await.unwrap();
        match &decision.denial {
            None => allowed.push(i),
            Some(denial) => assert_eq!(denial.reason, DenyReason::PerModel),
        }
    }
    assert_eq!(
        allowed.len(),
        1,
        "exactly one of 50 checks gets the last prompt"
    );
    let held: i64 = admin
        .query_one("SELECT count(*) FROM reservations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 1);
    // The winner's turn asking again gets the same answer, not a second prompt.
    assert!(
        check(allowed[0], ModelFamily::Opus)
            .await
            .unwrap()
            .allowed()
    );
    let held: i64 = admin
        .query_one("SELECT count(*) FROM reservations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 1);
    // The limit is Opus's alone.
    assert!(check(100, ModelFamily::Sonnet).await.unwrap().allowed());

    // The winner's event settles its reservation (and counts: the limit is
    // reached); a replay of it changes nothing; a released turn frees its
    // reservation.
    let store = |id: &'static str, kind: &'static str, key: String, prompts: i64| {
        let admin = &admin;
        async move {
            admin
                .execute(
                    "INSERT INTO events (id, user_id, device_id, at, received_at, type, family,
                                         prompts, credits, turn_key)
                     VALUES ($1, 1, 7, $2, $2, $3, 'opus', $4, 10, $5)
                     ON CONFLICT DO NOTHING",
                    &[&id, &now.as_millisecond(), &kind, &prompts, &key],
                )
                .await
                .unwrap()
        }
    };
    let reserved = async || -> Vec<String> {
        admin
            .query("SELECT key FROM reservations ORDER BY key", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    assert_eq!(
        reserved().await,
        [format!("turn-{}", allowed[0]), "turn-100".to_owned()]
    );
    assert_eq!(
        store("e2", "request", format!("turn-{}", allowed[0]), 1).await,
        1
    );
    assert_eq!(reserved().await, ["turn-100"]);
    assert_eq!(
        store("e2", "request", format!("turn-{}", allowed[0]), 1).await,
        0
    );
    let denied = check(101, ModelFamily::Opus).await.unwrap();
    assert_eq!(denied.denial.map(|d| d.reason), Some(DenyReason::PerModel));
    store("e3", "turn_released", "turn-100".to_owned(), 0).await;
    assert!(reserved().await.is_empty());
}

#[tokio::test]
async fn window_usage_from_running_totals_equals_the_events_late_ones_included() {
    use ccgate_quota::ModelFamily;
    use ccgate_server::postgres::gate::recorded_usage;

    let postgres = Postgres::start().await;
    let url = postgres.create_database("ccgate").await;
    PgDb::open(&url, 1).await.unwrap();
    let client = postgres.connect("ccgate").await;
    client
        .batch_execute("INSERT INTO users (id, name, slug, created_at) VALUES (1, 'Mel', 'mel', 0)")
        .await
        .unwrap();
    let now: i64 = 1_800_000_000_000;
    let day = 86_400_000;
    let families = ["opus", "sonnet", "haiku", "other"];
    // 600 events over 10 days, in a scrambled order (late events too), one
    // in the future, and a few without a family.
    for n in 0..600i64 {
        let at = now - (n * 7_919_113) % (10 * day) + if n == 17 { 60_000 } else { 0 };
        let family = (n % 11 != 0).then(|| families[(n % 4) as usize]);
        client
            .execute(
                "INSERT INTO events (id, user_id, device_id, at, received_at, type, family,
                                     prompts, credits, input_tokens, output_tokens)
                 VALUES ($1, 1, 1, $2, $2, 'request', $3, 1, $4, $5, 7)",
                &[&format!("e{n}"), &at, &family, &(n % 5), &(100 + n)],
            )
            .await
            .unwrap();
    }
    // Window starts on and off bucket boundaries, and one before everything.
    let starts = vec![
        now - 11 * day,
        now - 7 * day + 123,
        now - day,
        now - 5 * 3_600_000 - 7,
        now - 900_000,
    ];
    let usage = recorded_usage(&client, 1, &starts, now).await.unwrap();
    for (since, usage) in starts.iter().zip(&usage) {
        for family in ModelFamily::ALL {
            let row = client
                .query_one(
                    "SELECT COALESCE(SUM(prompts), 0)::BIGINT, COALESCE(SUM(credits), 0)::BIGINT,
                            COALESCE(SUM(input_tokens), 0)::BIGINT, COALESCE(SUM(output_tokens), 0)::BIGINT
                     FROM events WHERE user_id = 1 AND family = $1 AND at >= $2 AND at <= $3",
                    &[&family.as_str(), since, &now],
                )
                .await
                .unwrap();
            let want: Vec<i64> = (0..4).map(|i| row.get(i)).collect();
            let got = usage[family];
            assert_eq!(
                [
                    got.prompts,
                    got.credits,
                    got.input_tokens,
                    got.output_tokens
                ]
                .map(|v| v as i64)
                .to_vec(),
                want,
                "{family:?} since {since}"
            );
        }
    }
}
