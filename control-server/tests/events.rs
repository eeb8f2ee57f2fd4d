//! What devices report about each request since issue 8 (why a prompt
//! counted, estimated usage, the credential used) and the new block
//! reasons: stored, listed by the admin API and sent live.

mod common;

use std::time::Duration;

use common::{TestServer, request_event};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn event(id: &str, turn: &str, counted: bool, extra: Value) -> Value {
    let mut event = request_event(
        id,
        &jiff::Timestamp::now().to_string(),
        "claude-opus-4-5",
        turn,
        counted,
        120,
    );
    for (key, value) in extra.as_object().unwrap() {
        event[key] = value.clone();
    }
    event
}

fn blocked(id: &str, reason: &str) -> Value {
    json!({
        "id": id, "at": jiff::Timestamp::now(), "type": "blocked", "model": "claude-opus-4-5",
        "kind": "background", "reason": reason, "message": format!("refused: {reason}"),
    })
}

#[tokio::test]
async fn count_reasons_estimates_and_credentials_are_stored_listed_and_sent_live() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Ada", json!([])).await;
    let ws_url = format!(
        "{}/ws?token={}",
        server.url.replace("http://", "ws://"),
        server.admin_token
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let typed = event(
        "10000000-0000-4000-8000-000000000001",
        "s:1",
        true,
        json!({ "count_reason": "typed_during_turn", "estimated": true, "credential": "team",
                "outcome": "client_aborted" }),
    );
    // A reason on a request that counted nothing means nothing and is dropped.
    let continuation = event(
        "10000000-0000-4000-8000-000000000002",
        "s:1",
        false,
        json!({ "count_reason": "agent_turn", "credential": "personal_api_key" }),
    );
    // A device from before issue 8 sends none of the fields.
    let older = event(
        "10000000-0000-4000-8000-000000000003",
        "s:2",
        true,
        json!({}),
    );
    let batch = json!({ "events": [
        typed, continuation, older,
        blocked("10000000-0000-4000-8000-000000000004", "path_not_allowed"),
        blocked("10000000-0000-4000-8000-000000000005", "credential"),
    ] });
    let (status, answer) = server.agent(&token, "/events", batch).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 5);

    let requests = server
        .events(&format!("user_id={user_id}&type=request"))
        .await;
    let by_id = |id: &str| {
        requests
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("event {id}"))
            .clone()
    };
    let typed = by_id("10000000-0000-4000-8000-000000000001");
    assert_eq!(typed["count_reason"], "typed_during_turn");
    assert_eq!(typed["estimated"], true);
    assert_eq!(typed["credential"], "team");
    assert_eq!(typed["prompts"], 1);
    let continuation = by_id("10000000-0000-4000-8000-000000000002");
    assert_eq!(continuation["count_reason"], Value::Null);
    assert_eq!(continuation["estimated"], false);
    assert_eq!(continuation["credential"], "personal_api_key");
    let older = by_id("10000000-0000-4000-8000-000000000003");
    assert_eq!(older["count_reason"], Value::Null);
    assert_eq!(older["estimated"], false);
    assert_eq!(older["credential"], Value::Null);

    let blocks = server
        .events(&format!("user_id={user_id}&type=blocked"))
        .await;
    let mut reasons: Vec<&str> = blocks
        .iter()
        .map(|e| e["detail"]["reason"].as_str().unwrap())
        .collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["credential", "path_not_allowed"]);

    // The live messages carry the same facts.
    let counted = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let Some(Ok(Message::Text(text))) = socket.next().await else {
                continue;
            };
            let message: Value = serde_json::from_str(&text).unwrap();
            if message["type"] == "user_counted" && message["estimated"] == true {
                return message;
            }
        }
    })
    .await
    .expect("the counted prompt arrived live");
    assert_eq!(counted["countReason"], "typed_during_turn");
    assert_eq!(counted["output_tokens"], 7);
    assert_eq!(counted["credential"], "team");

    // An unknown reason or credential refuses that event alone, by id.
    let bad = event(
        "10000000-0000-4000-8000-000000000006",
        "s:3",
        true,
        json!({ "count_reason": "because" }),
    );
    let (status, answer) = server
        .agent(&token, "/events", json!({ "events": [bad] }))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 0);
    assert_eq!(
        answer["refused"][0]["id"],
        "10000000-0000-4000-8000-000000000006"
    );
}
