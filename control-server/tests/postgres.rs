//! The PostgreSQL backend's foundation against a real PostgreSQL: the
//! schema migrates once however many replicas start together, a newer
//! schema is refused, the schema keeps SQLite's uniqueness rules, and the
//! one-statement check reads the usage and decides as the engine does.

mod common;

use std::time::Duration;

use ccgate_server::postgres::fanout::{Heard, Listener};
use ccgate_server::postgres::{PgDb, PgError, SCHEMA_VERSION, Target};
use common::postgres::{Postgres, one_opus_rule_policy, proxy_prompt};
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

async fn next(listener: &mut Listener<Ping>) -> Heard<Ping> {
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
    let mut heard_by_a = Listener::<Ping>::start(&Target::new(&url, None).unwrap(), a)
        .await
        .unwrap();
    let mut heard_by_b = Listener::<Ping>::start(&Target::new(&url, None).unwrap(), b)
        .await
        .unwrap();

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
    assert_eq!(next(&mut heard_by_b).await, Heard::Event(small));
    assert_eq!(next(&mut heard_by_b).await, Heard::Event(large));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), heard_by_a.recv())
            .await
            .is_err(),
        "a replica does not hear itself"
    );

    // A listener whose connection is cut connects again by itself, and
    // says first that it may have missed events meanwhile.
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
    let mut heard = Vec::new();
    for _ in 0..50 {
        replica_a.notify(a, &again).await.unwrap();
        if let Ok(Some(ping)) =
            tokio::time::timeout(Duration::from_millis(200), heard_by_b.recv()).await
        {
            heard.push(ping);
            if heard.len() == 2 {
                break;
            }
        }
    }
    assert_eq!(heard, [Heard::Missed, Heard::Event(again)]);
}

#[tokio::test]
async fn fifty_checks_over_two_replicas_give_away_the_last_prompt_once() {
    use ccgate_quota::{DenyReason, ModelFamily};
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
                .check(&policy, &proxy_prompt(1, 7, &key, family, now))
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
    // The check's reading (it reserves nothing: no prompt asked for).
    let family_names: Vec<&str> = ModelFamily::ALL.map(ModelFamily::as_str).to_vec();
    let usage: Vec<i64> = client
        .query_one(
            "SELECT usage FROM ccgate_check(1, 1, 'probe', $1, FALSE, NULL, 'opus', 'claude-opus',
                                           $2, $3, FALSE, 0, 0, '{}', '{}', '{}', '{}')",
            &[&now, &family_names, &starts],
        )
        .await
        .unwrap()
        .get(0);
    for (start_index, since) in starts.iter().enumerate() {
        for (family_index, family) in ModelFamily::ALL.into_iter().enumerate() {
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
            // Six figures per family and start: prompts, credits, input,
            // output, cache creation, cache read.
            let first = (start_index * ModelFamily::ALL.len() + family_index) * 6;
            assert_eq!(usage[first..first + 4], want, "{family:?} since {since}");
        }
    }
}

/// A small deterministic generator, so a failing case can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[tokio::test]
async fn checks_decide_as_the_engine_does_on_the_same_usage() {
    use ccgate_quota::{
        CompiledPolicy, CreditWeights, GateKind, GateRequest, Limit, ModelFamily, Rule, RuleSpec,
        TokenKind, Totals, UsageIndex, Window, evaluate,
    };

    let postgres = Postgres::start().await;
    let url = postgres.create_database("ccgate").await;
    let db = PgDb::open(&url, 2).await.unwrap();
    let admin = postgres.connect("ccgate").await;
    // Whole minutes, as the engine's index keeps usage by the minute (it
    // counts the minute a window starts in whole).
    let minute = 60_000;
    let now = jiff::Timestamp::from_millisecond(
        jiff::Timestamp::now().as_millisecond() / minute * minute,
    )
    .unwrap();
    let windows = Window::ALL;
    let kinds = [
        TokenKind::Input,
        TokenKind::Output,
        TokenKind::CacheCreation,
        TokenKind::CacheRead,
        TokenKind::Total,
    ];
    let weights = CreditWeights::default();
    let mut random = Lcg(13);
    let (mut allowed, mut refused) = (0, 0);
    for person in 1..=120i64 {
        let pick_family = |random: &mut Lcg| ModelFamily::ALL[random.below(4) as usize];
        let rules: Vec<Rule> = (0..1 + random.below(3))
            .map(|_| {
                let window = windows[random.below(6) as usize];
                let model = (random.below(2) == 0).then(|| pick_family(&mut random));
                Rule::new(match random.below(3) {
                    0 => RuleSpec::PerModel {
                        model,
                        window,
                        limit: Limit::AtMost(1 + random.below(12)),
                    },
                    1 => RuleSpec::Credits {
                        window,
                        limit: Limit::AtMost(1 + random.below(80)),
                    },
                    _ => RuleSpec::Tokens {
                        model,
                        window,
                        limit: Limit::AtMost(1 + random.below(40_000)),
                        kind: kinds[random.below(5) as usize],
                    },
                })
            })
            .collect();
        let zone = ["UTC", "Europe/Berlin", "Asia/Kolkata"][person as usize % 3];
        let policy: ccgate_quota::Policy = serde_json::from_value(serde_json::json!({
            "version": 1,
            "team": "Team",
            "user": { "id": person, "name": "P", "slug": format!("p{person}") },
            "status": "active",
            "time_zone": zone,
            "credit_weights": weights,
            "rules": rules,
        }))
        .unwrap();
        let policy = CompiledPolicy::new(policy).unwrap();
        admin
            .execute(
                "INSERT INTO users (id, name, slug, created_at) VALUES ($1, 'P', $2, 0)",
                &[&person, &format!("p{person}")],
            )
            .await
            .unwrap();
        // The same history in PostgreSQL and in the engine's own index.
        let mut index = UsageIndex::new();
        for n in 0..random.below(25) {
            let at = now.as_millisecond() - random.below(9 * 24 * 60) as i64 * minute;
            let family = pick_family(&mut random);
            let totals = Totals {
                prompts: random.below(2),
                input_tokens: random.below(4_000),
                output_tokens: random.below(2_000),
                cache_creation_input_tokens: random.below(1_000),
                cache_read_input_tokens: random.below(8_000),
                ..Totals::default()
            };
            let totals = Totals {
                credits: totals.prompts * weights.weight(family),
                ..totals
            };
            let figure = |value: u64| value as i64;
            admin
                .execute(
                    "INSERT INTO events (id, user_id, device_id, at, received_at, type, family,
                         prompts, credits, input_tokens, output_tokens,
                         cache_creation_input_tokens, cache_read_input_tokens)
                     VALUES ($1, $2, $2, $3, $3, 'request', $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        &format!("p{person}-e{n}"),
                        &person,
                        &at,
                        &family.as_str(),
                        &figure(totals.prompts),
                        &figure(totals.credits),
                        &figure(totals.input_tokens),
                        &figure(totals.output_tokens),
                        &figure(totals.cache_creation_input_tokens),
                        &figure(totals.cache_read_input_tokens),
                    ],
                )
                .await
                .unwrap();
            index.add(
                jiff::Timestamp::from_millisecond(at).unwrap(),
                family,
                totals,
            );
        }
        // A few prompts in a row: each one allowed is held, and counts in
        // the next one's usage.
        for turn in 0..4 {
            let family = pick_family(&mut random);
            let request = GateRequest {
                family,
                kind: GateKind::Prompt,
                now,
            };
            let want = evaluate(&policy, &index, request);
            let key = format!("turn-{turn}");
            let got = db
                .check(&policy, &proxy_prompt(person, person, &key, family, now))
                .await
                .unwrap();
            assert_eq!(
                got.decision.denial.as_ref().map(|d| d.reason),
                want.denial.as_ref().map(|d| d.reason),
                "person {person}, turn {turn}, {family:?}, rules {:?}",
                policy.policy.rules
            );
            assert_eq!(got.reservation_expires_at.is_some(), want.allowed());
            if want.allowed() {
                allowed += 1;
                index.add(
                    now,
                    family,
                    Totals {
                        prompts: 1,
                        credits: want.cost,
                        ..Totals::default()
                    },
                );
            } else {
                refused += 1;
            }
        }
    }
    // The database held exactly what the engine allowed (its safety net
    // never had to step in), and both answers were exercised.
    assert_eq!(db.caps_disagreements(), 0);
    assert!(
        allowed > 20 && refused > 20,
        "{allowed} allowed, {refused} refused"
    );
}
