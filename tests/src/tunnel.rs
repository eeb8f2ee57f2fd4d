//! A plain HTTP CONNECT proxy on 127.0.0.1: it tunnels `api.anthropic.com:443`
//! to the fake upstream's address and refuses every other target. It stands
//! for "another machine with direct internet" (or a corporate proxy): a
//! client pointed at it reaches the fake without going through ccgate.
//! Every CONNECT it was asked for is recorded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The only target the tunnel opens.
pub const ANTHROPIC_TARGET: &str = "api.anthropic.com:443";

pub struct Tunnel {
    pub address: SocketAddr,
    connects: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tunnel {
    /// Starts on 127.0.0.1:0, tunnelling `api.anthropic.com:443` to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tunnel");
        let address = listener.local_addr().expect("tunnel address");
        let connects = Arc::new(Mutex::new(Vec::new()));
        let seen = connects.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let _ = serve(client, target, seen).await;
                });
            }
        });
        Self {
            address,
            connects,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`, for the proxy variables.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every CONNECT target asked for (`host:port`), in order, refused ones too.
    pub fn connects(&self) -> Vec<String> {
        self.connects.lock().unwrap().clone()
    }

    /// How many tunnels to api.anthropic.com were opened.
    pub fn anthropic_tunnels(&self) -> usize {
        self.connects()
            .iter()
            .filter(|t| t.eq_ignore_ascii_case(ANTHROPIC_TARGET))
            .count()
    }
}

async fn serve(
    mut client: TcpStream,
    target: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    // Read the request head (bounded: 16 KiB).
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let early = head.split_off(end);
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next().unwrap_or("").split_whitespace();
    let (method, authority) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if !method.eq_ignore_ascii_case("CONNECT") {
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await?;
        return Ok(());
    }
    seen.lock().unwrap().push(authority.to_owned());
    if !authority.eq_ignore_ascii_case(ANTHROPIC_TARGET) {
        client
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await?;
        return Ok(());
    }
    let mut upstream = match TcpStream::connect(target).await {
        Ok(stream) => stream,
        Err(_) => {
            client
                .write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await?;
            return Ok(());
        }
    };
    client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    if !early.is_empty() {
        upstream.write_all(&early).await?;
    }
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
