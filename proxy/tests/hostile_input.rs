//! Property tests over the parsers that read what others send: the meter
//! over Anthropic's replies (SSE and JSON, cut anywhere into chunks), the
//! request classifier over any body a client makes up, and the merge of
//! ccgate's entries into managed settings an admin may have filled with
//! anything. The tracker's own properties live in `src/turns/properties.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use ccgate_proxy::classify::RequestFacts;
use ccgate_proxy::guard::settings::{self, Unmerged};
use ccgate_proxy::meter::{Meter, Reading};
use http::HeaderMap;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Feeds `bytes` to a fresh meter, cut at `cuts` (positions, any order).
fn read(content_type: &str, bytes: &[u8], cuts: &[usize]) -> Reading {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut meter = Meter::new(Some(content_type));
    let mut start = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        meter.feed(&bytes[start..cut]);
        start = cut;
    }
    meter.finish()
}

/// One content block of a reply.
#[derive(Debug, Clone)]
enum Block {
    Text(Vec<String>),
    ToolUse(String),
}

/// A Messages stream as Anthropic sends it, with the figures it carries.
#[derive(Debug, Clone)]
struct Stream {
    input_tokens: u64,
    output_tokens: u64,
    stop_reason: String,
    blocks: Vec<Block>,
    crlf: bool,
    space_after_colon: bool,
    pings: bool,
}

fn stream() -> impl Strategy<Value = Stream> {
    let text =
        prop::collection::vec("[a-zA-Z0-9 \\n\"\\\\é漢🙂:]{0,40}", 0..6).prop_map(Block::Text);
    let tool = "toolu_[a-zA-Z0-9]{8,24}".prop_map(Block::ToolUse);
    let block = prop_oneof![3 => text, 1 => tool];
    (
        0u64..1_000_000,
        0u64..100_000,
        prop::sample::select(vec!["end_turn", "tool_use", "max_tokens"]),
        prop::collection::vec(block, 0..5),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(input_tokens, output_tokens, stop, blocks, crlf, space, pings)| Stream {
                input_tokens,
                output_tokens,
                stop_reason: stop.to_owned(),
                blocks,
                crlf,
                space_after_colon: space,
                pings,
            },
        )
}

impl Stream {
    fn events(&self) -> Vec<(&'static str, Value)> {
        let mut events = vec![(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "usage": {
                "input_tokens": self.input_tokens, "output_tokens": 1}}}),
        )];
        for (index, block) in self.blocks.iter().enumerate() {
            let start = match block {
                Block::Text(_) => json!({"type": "text", "text": ""}),
                Block::ToolUse(id) => {
                    json!({"type": "tool_use", "id": id, "name": "Bash", "input": {}})
                }
            };
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": start}),
            ));
            if let Block::Text(deltas) = block {
                for delta in deltas {
                    events.push((
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index,
                            "delta": {"type": "text_delta", "text": delta}}),
                    ));
                }
            }
            events.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
            if self.pings {
                events.push(("ping", json!({"type": "ping"})));
            }
        }
        events.push((
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": self.stop_reason},
                "usage": {"output_tokens": self.output_tokens}}),
        ));
        events.push(("message_stop", json!({"type": "message_stop"})));
        events
    }

    fn bytes(&self) -> Vec<u8> {
        let newline = if self.crlf { "\r\n" } else { "\n" };
        let colon = if self.space_after_colon { ": " } else { ":" };
        let mut text = String::new();
        for (name, data) in self.events() {
            if self.pings {
                text.push_str(&format!(": keep-alive{newline}"));
            }
            text.push_str(&format!(
                "event{colon}{name}{newline}data{colon}{data}{newline}{newline}"
            ));
        }
        text.into_bytes()
    }

    /// What a meter must read from it.
    fn expected(&self) -> Reading {
        let deltas: Vec<String> = self
            .events()
            .into_iter()
            .filter(|(name, _)| *name == "content_block_delta")
            .map(|(_, data)| data.to_string())
            .collect();
        Reading {
            usage: ccgate_quota::wire::TokenUsage {
                input_tokens: self.input_tokens,
                output_tokens: self.output_tokens,
                ..Default::default()
            },
            stop_reason: Some(self.stop_reason.clone()),
            started: true,
            finished: true,
            error: None,
            final_usage: true,
            tool_uses: self
                .blocks
                .iter()
                .filter_map(|b| match b {
                    Block::ToolUse(id) => Some(id.clone()),
                    Block::Text(_) => None,
                })
                .collect(),
            deltas: deltas.len() as u64,
            delta_bytes: deltas.iter().map(|d| d.len() as u64).sum(),
        }
    }
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[ -~é漢]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn ccgate_env() -> BTreeMap<String, String> {
    let listen: SocketAddr = "127.0.0.1:47770".parse().unwrap();
    settings::ccgate_env(listen, Path::new("/var/lib/ccgate/ca.pem"))
}

/// Managed settings an admin may have written: any keys, and perhaps an
/// `env` with any entries, some of them ccgate's own names.
fn managed_settings() -> impl Strategy<Value = Map<String, Value>> {
    let names: Vec<String> = ccgate_env().into_keys().collect();
    let env_name = prop_oneof![
        prop::sample::select(names),
        "[A-Z_]{1,12}".prop_map(String::from),
    ];
    let env = prop::option::of(prop::collection::btree_map(env_name, json_value(), 0..6));
    (
        prop::collection::btree_map("[a-zA-Z]{1,10}", json_value(), 0..5),
        env,
    )
        .prop_map(|(others, env)| {
            let mut map: Map<String, Value> =
                others.into_iter().filter(|(k, _)| k != "env").collect();
            if let Some(env) = env {
                map.insert("env".into(), Value::Object(env.into_iter().collect()));
            }
            map
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_stream_reads_the_same_however_it_is_cut(
        stream in stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let bytes = stream.bytes();
        let whole = read("text/event-stream", &bytes, &[]);
        prop_assert_eq!(&whole, &stream.expected());
        prop_assert_eq!(read("text/event-stream", &bytes, &cuts), whole);
    }

    #[test]
    fn any_bytes_read_the_same_however_cut_and_never_panic(
        bytes in prop::collection::vec(
            prop_oneof![
                any::<u8>(),
                Just(b'\n'),
                Just(b'\r'),
                Just(b':'),
            ],
            0..400,
        ),
        prefix in prop::sample::select(vec!["", "event: message_delta\ndata: ", "data:", "event:content_block_delta\n"]),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let bytes = [prefix.as_bytes(), &bytes].concat();
        for content_type in ["text/event-stream", "application/json"] {
            let whole = read(content_type, &bytes, &[]);
            prop_assert_eq!(read(content_type, &bytes, &cuts), whole);
        }
    }

    #[test]
    fn any_request_body_is_read_or_refused_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        value in json_value(),
    ) {
        let headers = HeaderMap::new();
        let _ = RequestFacts::read(&headers, &bytes);
        let _ = RequestFacts::read(&headers, value.to_string().as_bytes());
    }

    #[test]
    fn any_well_typed_body_is_read_with_its_model(
        model in "[a-z0-9-]{1,30}",
        anything in prop::collection::btree_map(
            prop::sample::select(vec!["messages", "system", "tools", "other"]),
            json_value(),
            0..4,
        ),
        stream in prop::option::of(any::<bool>()),
        max_tokens in prop::option::of(any::<u64>()),
        user_id in prop::option::of(prop_oneof![json_value().prop_map(|v| v.to_string()), "[ -~]{0,30}"]),
        class in prop::option::of("[ -~]{0,20}"),
    ) {
        let mut body: Map<String, Value> =
            anything.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        body.insert("model".into(), Value::String(model.clone()));
        body.insert("stream".into(), json!(stream));
        body.insert("max_tokens".into(), json!(max_tokens));
        body.insert("metadata".into(), json!({"user_id": user_id}));
        let mut headers = HeaderMap::new();
        if let Some(class) = class.and_then(|c| c.parse().ok()) {
            headers.insert("x-claude-code-request-class", class);
        }
        let facts = RequestFacts::read(&headers, Value::Object(body).to_string().as_bytes());
        prop_assert_eq!(facts.map(|f| f.model).ok(), Some(model));
    }

    #[test]
    fn merging_then_unmerging_gives_the_admins_file_back_byte_for_byte(
        original in managed_settings(),
        pretty in any::<bool>(),
    ) {
        let env = ccgate_env();
        let mut bytes = if pretty {
            serde_json::to_vec_pretty(&original).unwrap()
        } else {
            serde_json::to_vec(&original).unwrap()
        };
        if pretty {
            bytes.extend_from_slice(b"\n\n");
        }
        let merged = settings::merge(Some(&bytes), &env).unwrap();
        prop_assert!(settings::drifted_keys(&merged, &env).unwrap().is_empty());
        prop_assert_eq!(
            settings::unmerge(Some(&merged), &env, Some(&bytes)),
            Unmerged::Write(bytes.clone())
        );
    }

    #[test]
    fn what_the_admin_adds_after_setup_survives_uninstall(
        original in prop::option::of(managed_settings()),
        added in "[a-z]{1,8}",
        value in json_value(),
    ) {
        let env = ccgate_env();
        let before = original.map(|m| serde_json::to_vec(&m).unwrap());
        let merged = settings::merge(before.as_deref(), &env).unwrap();
        let mut now: Map<String, Value> = serde_json::from_slice(&merged).unwrap();
        let key = format!("added_{added}");
        now.insert(key.clone(), value.clone());
        let now = serde_json::to_vec(&now).unwrap();
        let Unmerged::Write(after) = settings::unmerge(Some(&now), &env, before.as_deref()) else {
            panic!("uninstall dropped the file");
        };
        let after: Map<String, Value> = serde_json::from_slice(&after).unwrap();
        prop_assert_eq!(after.get(&key), Some(&value));
        // ccgate's entries are gone, or back to what the admin had.
        let had = before
            .as_deref()
            .map(|b| serde_json::from_slice::<Map<String, Value>>(b).unwrap());
        for name in env.keys() {
            let was = had.as_ref().and_then(|m| m.get("env")).and_then(|e| e.get(name));
            let left = after.get("env").and_then(|e| e.get(name));
            prop_assert_eq!(left, was, "{}", name);
        }
    }

    #[test]
    fn any_bytes_as_managed_settings_are_refused_or_merged(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let env = ccgate_env();
        if let Ok(merged) = settings::merge(Some(&bytes), &env) {
            prop_assert!(settings::drifted_keys(&merged, &env).unwrap().is_empty());
        }
        let _ = settings::unmerge(Some(&bytes), &env, None);
    }
}
