//! A minimal SMTP receiver (RFC 5321 subset) on 127.0.0.1: greeting, EHLO,
//! AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT. No STARTTLS: it is
//! what the plain `none` mode talks to, and what a `starttls` client must
//! refuse.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::net::tcp::OwnedReadHalf;

/// One accepted message.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub ehlo: String,
    /// (username, password) after a successful AUTH.
    pub auth: Option<(String, String)>,
    pub mechanism: String,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, CRLF line ends.
    pub data: String,
}

impl Mail {
    /// A header's (unfolded) value from the message.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_owned());
            }
        }
        value
    }

    pub fn body(&self) -> &str {
        self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }
}

#[derive(Clone, Default)]
pub struct Options {
    /// AUTH mechanisms to advertise, e.g. "PLAIN LOGIN"; empty for none.
    pub mechanisms: &'static str,
    /// Credentials AUTH accepts; when set, MAIL requires AUTH.
    pub credentials: Option<(&'static str, &'static str)>,
    /// Reply to every RCPT instead of 250 (e.g. "550 5.1.1 No such user").
    pub rcpt_reply: Option<&'static str>,
}

pub struct SmtpServer {
    pub port: u16,
    received: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpServer {
    pub fn received(&self) -> Vec<Mail> {
        self.received.lock().unwrap().clone()
    }
}

pub async fn start(options: Options) -> SmtpServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::clone(&received);
    tokio::spawn(async move {
        // Bounded: no test opens more than a few connections.
        for _ in 0..20 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (options, store) = (options.clone(), Arc::clone(&store));
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), session(stream, options, store))
                        .await;
            });
        }
    });
    SmtpServer { port, received }
}

async fn read_line(reader: &mut BufReader<OwnedReadHalf>) -> Option<String> {
    let mut line = String::new();
    match reader.read_line(&mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
    }
}

fn decode(b64: &str) -> String {
    String::from_utf8_lossy(&B64.decode(b64.trim()).unwrap_or_default()).into_owned()
}

/// The address inside `MAIL FROM:<a@b> PARAMS` / `RCPT TO:<a@b>`.
fn path_arg(rest: &str) -> String {
    rest.split_once('<')
        .and_then(|(_, r)| r.split_once('>'))
        .map(|(a, _)| a.to_owned())
        .unwrap_or_default()
}

async fn session(stream: tokio::net::TcpStream, options: Options, store: Arc<Mutex<Vec<Mail>>>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut mail = Mail::default();
    let mut in_transaction = false;
    macro_rules! reply {
        ($($arg:tt)*) => {
            if write.write_all(format!($($arg)*).as_bytes()).await.is_err() {
                return;
            }
        };
    }
    reply!("220 localhost ESMTP ccgate-test\r\n");
    // Bounded: a session is a handful of commands.
    for _ in 0..100 {
        let Some(line) = read_line(&mut reader).await else {
            return;
        };
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("");
        match verb {
            "EHLO" => {
                mail.ehlo = line[4..].trim().to_owned();
                if options.mechanisms.is_empty() {
                    reply!("250-localhost greets you\r\n250 8BITMIME\r\n");
                } else {
                    reply!(
                        "250-localhost greets you\r\n250-8BITMIME\r\n250 AUTH {}\r\n",
                        options.mechanisms
                    );
                }
            }
            "HELO" => reply!("250 localhost\r\n"),
            "AUTH" => {
                let args: Vec<&str> = line.split_whitespace().skip(1).collect();
                let mechanism = args
                    .first()
                    .map(|m| m.to_ascii_uppercase())
                    .unwrap_or_default();
                if !options
                    .mechanisms
                    .split_whitespace()
                    .any(|m| m == mechanism)
                {
                    reply!("504 5.5.4 Unrecognized authentication type\r\n");
                    continue;
                }
                let (user, pass) = if mechanism == "PLAIN" {
                    let initial = match args.get(1) {
                        Some(i) => (*i).to_owned(),
                        None => {
                            reply!("334 \r\n");
                            let Some(l) = read_line(&mut reader).await else {
                                return;
                            };
                            l
                        }
                    };
                    let decoded = decode(&initial);
                    let mut parts = decoded.split('\0').skip(1);
                    (
                        parts.next().unwrap_or("").to_owned(),
                        parts.next().unwrap_or("").to_owned(),
                    )
                } else {
                    reply!("334 VXNlcm5hbWU6\r\n");
                    let Some(u) = read_line(&mut reader).await else {
                        return;
                    };
                    reply!("334 UGFzc3dvcmQ6\r\n");
                    let Some(p) = read_line(&mut reader).await else {
                        return;
                    };
                    (decode(&u), decode(&p))
                };
                if options.credentials == Some((user.as_str(), pass.as_str())) {
                    mail.auth = Some((user, pass));
                    mail.mechanism = mechanism;
                    reply!("235 2.7.0 Authentication successful\r\n");
                } else {
                    reply!("535 5.7.8 Authentication credentials invalid\r\n");
                }
            }
            "MAIL" => {
                if options.credentials.is_some() && mail.auth.is_none() {
                    reply!("530 5.7.0 Authentication required\r\n");
                    continue;
                }
                mail.mail_from = path_arg(&line);
                mail.rcpt_to.clear();
                in_transaction = true;
                reply!("250 2.1.0 Ok\r\n");
            }
            "RCPT" => {
                if !in_transaction {
                    reply!("503 5.5.1 Error: need MAIL command\r\n");
                } else if let Some(r) = options.rcpt_reply {
                    reply!("{r}\r\n");
                } else {
                    mail.rcpt_to.push(path_arg(&line));
                    reply!("250 2.1.5 Ok\r\n");
                }
            }
            "DATA" => {
                if mail.rcpt_to.is_empty() {
                    reply!("554 5.5.1 Error: no valid recipients\r\n");
                    continue;
                }
                reply!("354 End data with <CR><LF>.<CR><LF>\r\n");
                let mut data = String::new();
                for _ in 0..10_000 {
                    let Some(l) = read_line(&mut reader).await else {
                        return;
                    };
                    if l == "." {
                        break;
                    }
                    // Dot-unstuffing (RFC 5321 §4.5.2).
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    data.push_str("\r\n");
                }
                mail.data = data;
                store.lock().unwrap().push(mail.clone());
                in_transaction = false;
                reply!("250 2.0.0 Ok: queued as 4F2A1\r\n");
            }
            "RSET" => {
                in_transaction = false;
                mail.rcpt_to.clear();
                reply!("250 2.0.0 Ok\r\n");
            }
            "NOOP" => reply!("250 2.0.0 Ok\r\n"),
            "QUIT" => {
                reply!("221 2.0.0 Bye\r\n");
                return;
            }
            "STARTTLS" => reply!("502 5.5.1 STARTTLS not offered\r\n"),
            _ => reply!("502 5.5.2 Error: command not recognized\r\n"),
        }
    }
}
