//! Subscriptions whose credential the server holds (team-credential mode):
//! enrolment, validation, roles, assignment to users, rotation and
//! deletion reaching the devices' policies and open streams.

mod common;

use std::time::Duration;

use common::sse::SseReader;
use common::{TestServer, expect_status};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "sk-ant-oat01-Zq4cRkT8vYw2mN7pL0sX9dF3hJ6gB1aE5uI-8oKtYrWn-wxyz";
const ROTATED: &str = "sk-ant-oat01-Hh3jKl9Pq2Rs8Tu4Vw6Xy0Za1Bc7De5Fg-Mn2oP4qR-abcd";
const API_KEY: &str = "sk-ant-api03-Gf5dS4aQ3wE2rT1yU0iO9pL8kJ7hG6fD-2bNmV-k3y9";

async fn subscriptions(server: &TestServer) -> Vec<Value> {
    let (status, body) = server.admin_get("/api/admin/subscriptions").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["subscriptions"].as_array().unwrap().clone()
}

/// Every key of a subscription in the admin API, in order.
fn keys(subscription: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = subscription
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn enrolment_answers_the_hint_and_the_kind_never_the_credential() {
    let server = TestServer::start().await;
    let (status, body) = server
        .post_subscription(json!({ "name": "Team Max", "credential": TOKEN }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created = &body["subscription"];
    assert_eq!(
        keys(created),
        [
            "account_uuid",
            "created_at",
            "credential_hint",
            "credential_version",
            "id",
            "kind",
            "latest",
            "name",
            "origin",
            "updated_at",
            "users",
            "windows"
        ]
    );
    assert_eq!(created["name"], "Team Max");
    assert_eq!(created["kind"], "oauth_token", "detected from the prefix");
    assert_eq!(created["credential_hint"], "wxyz");
    assert_eq!(created["credential_version"], 1);
    assert_eq!(created["users"], 0);
    assert_eq!(created["origin"], "enrolled");
    let id = created["id"].as_i64().unwrap();

    // An API key, its kind given; the list is ordered by name.
    let (status, body) = server
        .post_subscription(json!({ "name": "API pool", "credential": API_KEY, "kind": "api_key" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let names: Vec<Value> = subscriptions(&server)
        .await
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, [json!("API pool"), json!("Team Max")]);
    let (status, one) = server
        .admin_get(&format!("/api/admin/subscriptions/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["subscription"], *created);
    let (status, body) = server.admin_get("/api/admin/subscriptions/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // The audit log names the subscription, its kind and hint.
    let (_, audit) = server
        .admin_get("/api/admin/audit?kind=subscription_created")
        .await;
    let detail = &audit["entries"][1]["detail"];
    assert_eq!(detail["name"], "Team Max");
    assert_eq!(detail["credential_hint"], "wxyz");
    assert!(!audit.to_string().contains(&TOKEN[..20]), "{audit}");
}

#[tokio::test]
async fn viewers_read_subscriptions_but_cannot_change_them() {
    let server = TestServer::start().await;
    let id = server.create_subscription("Team Max", TOKEN).await;
    server
        .add_account("vera", "viewer password", "viewer")
        .await;
    let login = server.login(Some("vera"), "viewer password").await;
    let viewer = login["token"].as_str().unwrap();
    let path = format!("/api/admin/subscriptions/{id}");
    let as_viewer = |method: Method, path: &str| server.request(method, path).bearer_auth(viewer);
    expect_status(
        as_viewer(Method::GET, "/api/admin/subscriptions"),
        StatusCode::OK,
    )
    .await;
    expect_status(as_viewer(Method::GET, &path), StatusCode::OK).await;
    let create = as_viewer(Method::POST, "/api/admin/subscriptions")
        .json(&json!({ "name": "Mine", "credential": ROTATED }));
    expect_status(create, StatusCode::FORBIDDEN).await;
    let rotate = as_viewer(Method::PUT, &path).json(&json!({ "credential": ROTATED }));
    expect_status(rotate, StatusCode::FORBIDDEN).await;
    expect_status(as_viewer(Method::DELETE, &path), StatusCode::FORBIDDEN).await;
    let stored = subscriptions(&server).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["credential_version"], 1);
    assert_eq!(stored[0]["credential_hint"], "wxyz");
}

#[tokio::test]
async fn bad_enrolments_are_clear_400s_and_store_nothing() {
    let server = TestServer::start().await;
    let long = format!("sk-ant-oat01-{}", "a".repeat(4090));
    let cases = [
        (
            json!({ "name": "A", "credential": "opaque-0123456789-secret" }),
            "kind",
        ),
        (
            json!({ "name": "A", "credential": long }),
            "longer than 4096",
        ),
        (
            json!({ "name": "A", "credential": "sk-ant-oat01-abc def-0123456789" }),
            "without spaces",
        ),
        (
            json!({ "name": "A", "credential": "sk-ant-oat01-abc\ndef-0123456789" }),
            "line breaks",
        ),
        (
            json!({ "name": "A", "credential": "sk-ant-oat01-abc\u{7}def-0123456789" }),
            "control characters",
        ),
        (
            json!({ "name": "A", "credential": "sk-ant-oat01-ä-0123456789" }),
            "printable ASCII",
        ),
        (
            json!({ "name": "A", "credential": "sk-ant-oat01" }),
            "shorter than 16",
        ),
        (json!({ "name": "A", "credential": "   " }), "empty"),
        (
            json!({ "name": "A", "credential": TOKEN, "kind": "api_key" }),
            "looks like an oauth_token",
        ),
        (
            json!({ "name": "A", "credential": TOKEN, "kind": "cookie" }),
            "unknown variant",
        ),
        (json!({ "name": " ", "credential": TOKEN }), "name must be"),
        (json!({ "name": "A" }), "credential"),
    ];
    for (body, expected) in cases {
        let (status, answer) = server.post_subscription(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
        assert!(
            !message.contains("0123456789"),
            "no echo of the credential: {message}"
        );
    }
    assert!(subscriptions(&server).await.is_empty(), "nothing stored");

    // Surrounding whitespace from pasting is trimmed; the kind can be given
    // for a credential without a known prefix; names are unique.
    let (status, body) = server
        .post_subscription(json!({ "name": "Team Max", "credential": format!("  {TOKEN}\n") }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["subscription"]["credential_hint"], "wxyz");
    let (status, body) = server
        .post_subscription(json!({ "name": "Gateway", "credential": "opaque-0123456789-secret", "kind": "api_key" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server
        .post_subscription(json!({ "name": "team max", "credential": ROTATED }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(subscriptions(&server).await.len(), 2);
}

#[tokio::test]
async fn users_are_assigned_by_id_and_show_the_subscriptions_name() {
    let server = TestServer::start().await;
    let id = server.create_subscription("Team Max", TOKEN).await;

    // An unknown subscription is refused and nothing is stored.
    let (status, body) = server
        .post_user(json!({ "name": "Ada", "subscription_id": 999 }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "unknown_subscription");
    let (_, users) = server.admin_get("/api/admin/users").await;
    assert_eq!(users["users"], json!([]));

    let (status, body) = server
        .post_user(json!({ "name": "Ada", "subscription_id": id }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user = &body["user"];
    assert_eq!(user["subscription_id"], id);
    assert_eq!(
        user["subscription"],
        json!({ "id": id, "name": "Team Max", "kind": "oauth_token" })
    );
    let user_id = user["id"].as_i64().unwrap();
    assert_eq!(subscriptions(&server).await[0]["users"], 1);

    let (status, body) = server
        .put_user(user_id, json!({ "subscription_id": 999 }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        server.user(user_id).await["subscription_id"],
        id,
        "unchanged"
    );
    let (status, body) = server
        .put_user(user_id, json!({ "subscription_id": "Team Max" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Other changes leave the assignment alone; null is the person's own login.
    let (status, _) = server.put_user(user_id, json!({ "name": "Ada L." })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.user(user_id).await["subscription_id"], id);
    let (status, body) = server
        .put_user(user_id, json!({ "subscription_id": null }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["subscription_id"], Value::Null);
    assert_eq!(body["user"]["subscription"], Value::Null);
    assert_eq!(subscriptions(&server).await[0]["users"], 0);
    let (_, audit) = server
        .admin_get(&format!(
            "/api/admin/audit?kind=user_updated&user_id={user_id}"
        ))
        .await;
    assert_eq!(
        audit["entries"][0]["detail"]["subscription"],
        "personal login"
    );
}

fn credential_mode(policy: &Value) -> &Value {
    &policy["credential"]
}

#[tokio::test]
async fn assignment_rotation_and_deletion_reach_the_policy_and_the_open_stream() {
    let server = TestServer::start().await;
    let id = server.create_subscription("Team Max", TOKEN).await;
    let (user_id, token) = server.user_with_proxy("Ada", json!([])).await;
    let (other_id, other_token) = server.user_with_proxy("Bob", json!([])).await;
    assert_eq!(
        *credential_mode(&server.policy(&token).await),
        json!({ "mode": "personal_login" })
    );
    let mut stream = SseReader::open(&server, &token).await;
    let first = stream.next_sync().await;
    let mut version = first["policy"]["version"].as_u64().unwrap();

    // Assignment.
    server
        .put_user(user_id, json!({ "subscription_id": id }))
        .await;
    let sync = stream
        .sync_where(Duration::from_secs(1), |s| {
            s["policy"]["credential"]["mode"] == "team_credential"
        })
        .await;
    let team = json!({ "mode": "team_credential", "subscription_id": id, "kind": "oauth_token", "version": 1 });
    assert_eq!(*credential_mode(&sync["policy"]), team);
    assert!(sync["policy"]["version"].as_u64().unwrap() > version);
    version = sync["policy"]["version"].as_u64().unwrap();

    // A rename changes no policy; a rotation does, within a second.
    let (status, body) = server
        .put_subscription(id, json!({ "name": "Team Max (2027)" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["subscription"]["credential_version"], 1);
    let (status, body) = server
        .put_subscription(id, json!({ "credential": ROTATED }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["subscription"]["credential_version"], 2);
    assert_eq!(body["subscription"]["credential_hint"], "abcd");
    assert_eq!(body["subscription"]["name"], "Team Max (2027)");
    let sync = stream
        .sync_where(Duration::from_secs(1), |s| {
            s["policy"]["credential"]["version"] == 2
        })
        .await;
    assert!(sync["policy"]["version"].as_u64().unwrap() > version);
    version = sync["policy"]["version"].as_u64().unwrap();
    assert_eq!(
        *credential_mode(&server.policy(&other_token).await),
        json!({ "mode": "personal_login" }),
        "users of other subscriptions are untouched"
    );
    let (_, audit) = server
        .admin_get("/api/admin/audit?kind=subscription_rotated")
        .await;
    assert_eq!(audit["entries"][0]["detail"]["credential_version"], 2);

    // Nothing to change is a 400; an unknown one a 404.
    let (status, _) = server.put_subscription(id, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = server
        .put_subscription(999, json!({ "credential": TOKEN }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deletion: the user is back on their own login, at once.
    let status = server
        .admin_delete(&format!("/api/admin/subscriptions/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let sync = stream
        .sync_where(Duration::from_secs(1), |s| {
            s["policy"]["credential"]["mode"] == "personal_login"
        })
        .await;
    assert!(sync["policy"]["version"].as_u64().unwrap() > version);
    let user = server.user(user_id).await;
    assert_eq!(user["subscription_id"], Value::Null);
    assert!(subscriptions(&server).await.is_empty());
    let status = server
        .admin_delete(&format!("/api/admin/subscriptions/{id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(server.user(other_id).await["subscription_id"], Value::Null);
}

#[tokio::test]
async fn settings_and_user_overrides_reach_the_compiled_policy() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Ada", json!([])).await;
    let (_, settings) = server.admin_get("/api/admin/settings").await;
    let settings = &settings["settings"];
    assert_eq!(settings["agent_turns"], "count");
    assert_eq!(
        settings["turn_limits"],
        json!({ "max_requests_per_turn": 250, "max_tokens_per_turn": 2_000_000 })
    );
    assert_eq!(settings["personal_api_keys"], "deny");
    let policy = server.policy(&token).await;
    assert_eq!(policy["agent_turns"], "count");
    assert_eq!(policy["turn_limits"]["max_requests_per_turn"], 250);
    assert_eq!(policy["personal_api_keys"], "deny");

    // A cap left out keeps its value.
    let (status, body) = server
        .put_settings(json!({
            "agent_turns": "free", "personal_api_keys": "allow",
            "turn_limits": { "max_requests_per_turn": 100 },
        }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let policy = server.policy(&token).await;
    assert_eq!(policy["agent_turns"], "free");
    assert_eq!(policy["personal_api_keys"], "allow");
    assert_eq!(
        policy["turn_limits"],
        json!({ "max_requests_per_turn": 100, "max_tokens_per_turn": 2_000_000 })
    );

    // The person's override wins over the team's; null returns to it.
    let (status, body) = server
        .put_user(user_id, json!({ "agent_turns": "count" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["agent_turns"], "count");
    assert_eq!(body["user"]["effective_agent_turns"], "count");
    assert_eq!(server.policy(&token).await["agent_turns"], "count");
    let (status, body) = server
        .put_user(user_id, json!({ "agent_turns": null }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["agent_turns"], Value::Null);
    assert_eq!(server.policy(&token).await["agent_turns"], "free");

    // Bad values are clear 400s and change nothing.
    let bad = [
        json!({ "turn_limits": { "max_requests_per_turn": 5 } }),
        json!({ "turn_limits": { "max_tokens_per_turn": 10 } }),
        json!({ "turn_limits": { "max_requests": 100 } }),
        json!({ "agent_turns": "sometimes" }),
        json!({ "personal_api_keys": "maybe", "team_name": "Changed" }),
        json!({ "turn_limits": { "max_requests_per_turn": 120 }, "admin_password": "short" }),
    ];
    for body in bad {
        let (status, answer) = server.put_settings(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    let (status, answer) = server
        .put_settings(json!({ "turn_limits": { "max_requests_per_turn": 5 } }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["code"], "invalid_turn_limits");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("between 10 and 100000")
    );
    let (status, answer) = server
        .put_user(user_id, json!({ "agent_turns": "often" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (_, after) = server.admin_get("/api/admin/settings").await;
    assert_eq!(after["settings"]["team_name"], "My team");
    assert_eq!(
        after["settings"]["turn_limits"]["max_requests_per_turn"],
        100
    );
    assert_eq!(server.policy(&token).await["agent_turns"], "free");
}
