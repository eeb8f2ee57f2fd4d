//! A client that talks to api.anthropic.com through the proxy, trusting only
//! the proxy's machine CA, and requests shaped like Claude Code's.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{Value, json};

#[derive(Clone)]
pub struct ProxyClient {
    http: reqwest::Client,
    /// The credential header every request carries (`x-api-key` by default).
    credential: Option<(String, String)>,
}

/// What came back through the proxy.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The reply's text: the text deltas of a stream, or a JSON message's text.
    pub fn text(&self) -> String {
        if let Some(content) = self.json()["content"].as_array() {
            return content.iter().filter_map(|b| b["text"].as_str()).collect();
        }
        self.body
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .filter_map(|data| serde_json::from_str::<Value>(data).ok())
            .filter_map(|event| event["delta"]["text"].as_str().map(str::to_owned))
            .collect()
    }

    /// The ids of the tool calls the reply asked for.
    pub fn tool_use_ids(&self) -> Vec<String> {
        let blocks: Vec<Value> = match self.json()["content"].as_array() {
            Some(content) => content.clone(),
            None => self
                .body
                .lines()
                .filter_map(|line| line.strip_prefix("data: "))
                .filter_map(|data| serde_json::from_str::<Value>(data).ok())
                .map(|event| event["content_block"].clone())
                .collect(),
        };
        blocks
            .iter()
            .filter(|block| block["type"] == "tool_use")
            .filter_map(|block| block["id"].as_str().map(str::to_owned))
            .collect()
    }

    /// The message of an error reply.
    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

/// Where Claude Code sends its Messages requests.
const MESSAGES_PATH: &str = "/v1/messages?beta=true";
/// The subscription account every lab request names, as Claude Code does
/// under an OAuth login (`account_uuid` in `metadata.user_id`).
pub const LAB_ACCOUNT: &str = "5e1ab000-0000-4000-8000-00000000acc7";

/// Reads a whole response.
async fn answer(response: reqwest::Response) -> Answer {
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap_or_default(),
    }
}

impl ProxyClient {
    pub fn new(proxy: SocketAddr, ca_pem: &Path) -> Self {
        let ca = std::fs::read(ca_pem).expect("read the proxy CA");
        let http = reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(format!("http://{proxy}")).unwrap())
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .build()
            .unwrap();
        Self {
            http,
            credential: Some(("x-api-key".into(), "sk-ant-test".into())),
        }
    }

    /// Sends `Authorization: Bearer TOKEN` instead of the test API key, as
    /// Claude Code does with `CLAUDE_CODE_OAUTH_TOKEN`.
    pub fn with_bearer(mut self, token: &str) -> Self {
        self.credential = Some(("authorization".into(), format!("Bearer {token}")));
        self
    }

    /// Sends no credential at all.
    pub fn without_credential(mut self) -> Self {
        self.credential = None;
        self
    }

    fn credentialed(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credential {
            Some((name, value)) => builder.header(name, value),
            None => builder,
        }
    }

    /// A request to `url` (any method, path or host) through the proxy, with
    /// the client's credential.
    pub async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut builder = self.credentialed(self.http.request(method, url));
        if let Some(body) = body {
            builder = builder
                .header("content-type", "application/json")
                .body(body);
        }
        answer(builder.send().await.expect("request through the proxy")).await
    }

    pub async fn get(&self, url: &str) -> Answer {
        self.request(reqwest::Method::GET, url, None).await
    }

    pub async fn post_json(&self, url: &str, body: &Value) -> Answer {
        let body = body.to_string().into_bytes();
        self.request(reqwest::Method::POST, url, Some(body)).await
    }

    /// A Claude Code turn sent to another spelling of the Messages path.
    pub async fn send_to(&self, path: &str, turn: &Turn) -> Answer {
        let body = turn.body().to_string().into_bytes();
        let request = self.messages_request(path, turn.headers(), body);
        answer(request.send().await.expect("request through the proxy")).await
    }

    pub async fn send(&self, request: &Turn) -> Answer {
        self.send_raw(request.headers(), request.body().to_string().into_bytes())
            .await
    }

    /// A Messages request to `path` with `headers` and `body`, as Claude Code
    /// sends it.
    fn messages_request(
        &self,
        path: &str,
        headers: Vec<(String, String)>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::RequestBuilder {
        let mut builder = self
            .credentialed(self.http.post(format!("https://api.anthropic.com{path}")))
            .header("content-type", "application/json")
            .header("anthropic-version", "2023-06-01");
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder.body(body)
    }

    /// Like [`Self::send`], but a broken connection is `None` instead of a panic.
    pub async fn try_send(&self, request: &Turn) -> Option<Answer> {
        let body = request.body().to_string().into_bytes();
        let response = self
            .messages_request(MESSAGES_PATH, request.headers(), body)
            .send()
            .await
            .ok()?;
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let body = response.text().await.ok()?;
        Some(Answer {
            status,
            headers,
            body,
        })
    }

    pub async fn send_raw(&self, headers: Vec<(String, String)>, body: Vec<u8>) -> Answer {
        let request = self.messages_request(MESSAGES_PATH, headers, body);
        answer(request.send().await.expect("request through the proxy")).await
    }

    /// A Messages request whose body comes from `body` as it is produced
    /// (no length given), as a slow or stalled client sends it.
    pub async fn send_streamed(&self, body: reqwest::Body) -> Option<Answer> {
        let response = self
            .messages_request(MESSAGES_PATH, Vec::new(), body)
            .send()
            .await
            .ok()?;
        Some(answer(response).await)
    }

    /// Starts a streaming request and returns the open response.
    pub async fn open(&self, request: &Turn) -> reqwest::Response {
        self.messages_request(
            MESSAGES_PATH,
            request.headers(),
            request.body().to_string().into_bytes(),
        )
        .send()
        .await
        .expect("request through the proxy")
    }
}

/// One request of a Claude Code turn, with the fields the real CLI sends.
#[derive(Debug, Clone)]
pub struct Turn {
    pub session: String,
    pub turn_index: u64,
    pub origin: &'static str,
    pub class: &'static str,
    pub model: String,
    pub text: Option<String>,
    /// The tool call whose result this request sends back.
    pub tool_result: Option<String>,
    /// What the tool result says.
    pub result_text: String,
    /// A message typed while the turn ran, riding with the tool result.
    pub typed: Option<String>,
    pub stream: bool,
    pub extra_headers: Vec<(String, String)>,
}

impl Turn {
    /// A person's prompt (`-p`): origin sdk, class main.
    pub fn prompt(session: &str, turn_index: u64, text: &str) -> Self {
        Self {
            session: session.to_owned(),
            turn_index,
            origin: "sdk",
            class: "main",
            model: "claude-opus-5-5".into(),
            text: Some(text.to_owned()),
            tool_result: None,
            result_text: "lab".into(),
            typed: None,
            stream: true,
            extra_headers: Vec::new(),
        }
    }

    /// The same turn sending back the result of the tool call `answer`
    /// (this turn's reply) asked for.
    pub fn continuation(&self, answer: &Answer) -> Self {
        let id = answer
            .tool_use_ids()
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("the reply asked for no tool: {}", answer.body));
        self.with_tool_result(&id)
    }

    /// The same turn sending back a result for tool call `id`.
    pub fn with_tool_result(&self, id: &str) -> Self {
        Self {
            tool_result: Some(id.to_owned()),
            ..self.clone()
        }
    }

    /// A turn the agent started (`scheduled`, `task_notification`, `peer`).
    pub fn origin(mut self, origin: &'static str) -> Self {
        self.origin = origin;
        self
    }

    /// Another request class (`subagent`, `compaction`, `auxiliary`).
    pub fn class(mut self, class: &'static str) -> Self {
        self.class = class;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.extra_headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// What the tool result says (a person could put anything there).
    pub fn result_text(mut self, text: &str) -> Self {
        self.result_text = text.to_owned();
        self
    }

    /// A message typed while the turn ran, as Claude Code passes it on.
    pub fn typed(mut self, text: &str) -> Self {
        self.typed = Some(text.to_owned());
        self
    }

    pub fn model(mut self, model: &str) -> Self {
        self.model = model.to_owned();
        self
    }

    pub fn not_streaming(mut self) -> Self {
        self.stream = false;
        self
    }

    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![
            ("x-claude-code-session-id".into(), self.session.clone()),
            ("x-claude-code-request-class".into(), self.class.into()),
            ("x-app".into(), "cli".into()),
        ];
        headers.extend(self.extra_headers.iter().cloned());
        headers
    }

    pub fn body(&self) -> Value {
        let billing = format!(
            "x-anthropic-billing-header: cc_version=2.1.330.abc; cc_entrypoint=sdk-cli; cch=00000; cc_turn_origin={}; cc_prompt_index=0; cc_turn_index={};",
            self.origin, self.turn_index
        );
        let mut messages = vec![
            json!({"role": "user", "content": [{"type": "text", "text": self.text.clone().unwrap_or_else(|| "earlier".into())}]}),
        ];
        if let Some(id) = &self.tool_result {
            messages.push(json!({"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "Bash", "input": {"command": "echo lab"}}]}));
            let mut blocks = vec![
                json!({"type": "tool_result", "tool_use_id": id, "content": self.result_text}),
            ];
            if let Some(typed) = &self.typed {
                blocks.push(json!({"type": "text", "text": format!("The user sent a new message while you were working:\n{typed}")}));
            }
            messages.push(json!({"role": "user", "content": blocks}));
        }
        json!({
            "model": self.model,
            "max_tokens": 128000,
            "stream": self.stream,
            "system": [{"type": "text", "text": billing}, {"type": "text", "text": "You are Claude Code."}],
            "messages": messages,
            "metadata": {"user_id": json!({"device_id": "d", "account_uuid": LAB_ACCOUNT, "session_id": self.session}).to_string()},
        })
    }
}
