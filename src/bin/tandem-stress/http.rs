//! The lean HTTP/1.1 keep-alive client behind `Api`: a small idle pool and
//! Content-Length framed responses.

use anyhow::Context as _;

use crate::{MAX_CONCURRENCY, REQUEST_TIMEOUT};

/// A minimal HTTP/1.1 keep-alive client for the measured requests: one write
/// and usually one read per request, no URL parsing, no per-request header
/// map. reqwest spent more CPU per request than the server it measured (57 %
/// of the machine in `flash-sale`, URL and IDNA parsing, header maps, its
/// pool), so the server never got the cores the ceiling assumes.
pub(crate) struct LeanHttp {
    nodes: Vec<Node>,
    /// The next request's node (round-robin).
    next: std::sync::atomic::AtomicUsize,
    max_idle: usize,
}

/// One target: its address and its idle connections.
struct Node {
    addr: std::net::SocketAddr,
    host: String,
    idle: parking_lot::Mutex<Vec<LeanConn>>,
}

struct LeanConn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

/// Largest response the harness accepts (the biggest it reads is `/metrics`).
const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// Headers parsed per response.
const MAX_RESPONSE_HEADERS: usize = 32;

impl LeanHttp {
    /// Requests go to the bases round-robin; `max_idle` idle connections
    /// are kept per base.
    pub(crate) fn new(bases: &[String], max_idle: usize) -> anyhow::Result<Self> {
        let nodes = bases
            .iter()
            .map(|b| Node::resolve(b))
            .collect::<anyhow::Result<Vec<Node>>>()?;
        Ok(LeanHttp {
            nodes,
            next: Default::default(),
            max_idle: max_idle.clamp(1, MAX_CONCURRENCY),
        })
    }

    /// Opens connections up to `n` idle ones per node before a measured run,
    /// so the first second does not measure TCP handshakes (setup, not load).
    pub(crate) async fn warm(&self, n: usize) -> Result<(), String> {
        for node in &self.nodes {
            let want = n.min(self.max_idle).saturating_sub(node.idle.lock().len());
            for _ in 0..want {
                let conn = LeanConn::connect(node.addr).await?;
                node.idle.lock().push(conn);
            }
        }
        Ok(())
    }

    /// One request: `(status, body)`. A reused connection the server has
    /// closed meanwhile (keep-alive timeout) fails before any byte of a
    /// response arrives; the request then goes once more on a new one.
    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), String> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let node = &self.nodes[i % self.nodes.len()];
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", node.host);
        for (k, v) in headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut wire = head.into_bytes();
        wire.extend_from_slice(body);
        let reused = node.idle.lock().pop();
        let retry_allowed = reused.is_some();
        let conn = match reused {
            Some(c) => c,
            None => LeanConn::connect(node.addr).await?,
        };
        let mut attempt = tokio::time::timeout(REQUEST_TIMEOUT, conn.exchange(&wire)).await;
        if retry_allowed && matches!(attempt, Ok(Err(Exchange::Stale))) {
            let fresh = LeanConn::connect(node.addr).await?;
            attempt = tokio::time::timeout(REQUEST_TIMEOUT, fresh.exchange(&wire)).await;
        }
        let (conn, status, body) = match attempt {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return Err(format!("{path}: {e}")),
            Err(_) => return Err(format!("{path}: timed out")),
        };
        if let Some(conn) = conn {
            let mut idle = node.idle.lock();
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
        Ok((status, body))
    }
}

impl Node {
    fn resolve(base: &str) -> anyhow::Result<Node> {
        use std::net::ToSocketAddrs;
        let host = base
            .strip_prefix("http://")
            .context("the target must be http://")?
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let addr = host
            .to_socket_addrs()
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        Ok(Node {
            addr,
            host,
            idle: parking_lot::Mutex::new(Vec::new()),
        })
    }
}

enum Exchange {
    /// The connection was closed before any response byte: safe to resend.
    Stale,
    Failed(String),
}

impl std::fmt::Display for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exchange::Stale => f.write_str("connection closed before a response"),
            Exchange::Failed(e) => f.write_str(e),
        }
    }
}

impl LeanConn {
    async fn connect(addr: std::net::SocketAddr) -> Result<LeanConn, String> {
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr}: timed out"))?
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(LeanConn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Writes the request and reads one response (Content-Length framed, as
    /// the server sends every body). Gives the connection back unless the
    /// server said it closes it.
    async fn exchange(mut self, wire: &[u8]) -> Result<(Option<LeanConn>, u16, Vec<u8>), Exchange> {
        use tokio::io::AsyncWriteExt;
        self.buf.clear();
        if self.stream.write_all(wire).await.is_err() {
            return Err(Exchange::Stale);
        }
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
            let mut res = httparse::Response::new(&mut headers);
            match res.parse(&self.buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let status = res.code.unwrap_or(0);
                    let mut length = None;
                    let mut close = res.version == Some(0);
                    for h in res.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse::<usize>().ok());
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            return Err(Exchange::Failed(
                                "a chunked response (the harness reads sized bodies only)".into(),
                            ));
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            close = h.value.eq_ignore_ascii_case(b"close");
                        }
                    }
                    let length = length.unwrap_or(0);
                    if head_len + length > MAX_RESPONSE_BYTES {
                        return Err(Exchange::Failed("response too large".into()));
                    }
                    while self.buf.len() < head_len + length {
                        self.read_more().await?;
                    }
                    let body = self.buf[head_len..head_len + length].to_vec();
                    let keep = (!close && self.buf.len() == head_len + length).then_some(self);
                    return Ok((keep, status, body));
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_RESPONSE_BYTES {
                        return Err(Exchange::Failed("response head too large".into()));
                    }
                    let first = self.buf.is_empty();
                    match self.read_more().await {
                        Err(_) if first => return Err(Exchange::Stale),
                        r => r?,
                    }
                }
                Err(e) => return Err(Exchange::Failed(format!("bad response: {e}"))),
            }
        }
    }

    async fn read_more(&mut self) -> Result<(), Exchange> {
        use tokio::io::AsyncReadExt;
        // Into the vector's spare capacity: nothing is zero-filled per read.
        self.buf.reserve(8192);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(Exchange::Failed("connection closed mid-response".into())),
            Ok(_) => Ok(()),
            Err(e) => Err(Exchange::Failed(e.to_string())),
        }
    }
}
