//! The filtering proxy every request of a captured page goes through.
//!
//! Each browser session gets its own proxy on a loopback port, and Chromium
//! is told to send everything through it, loopback included (`<-loopback>`),
//! with WebRTC kept off other paths. The proxy resolves each host itself,
//! checks every address against the [`NetworkPolicy`], and connects to the
//! address it checked (a second lookup cannot rebind the name).
//!
//! A client connection carries exactly one plain HTTP request: the proxy
//! parses its head, reads its body by its framing, forwards exactly that
//! with `Connection: close`, passes back exactly one response (by its
//! framing, also marked `Connection: close`) and closes both sides. Bytes
//! the client sends after its request are never forwarded, so no request
//! rides on a connection that was checked for another, even when the
//! upstream ignores `Connection: close`. HTTPS and WebSockets arrive as
//! `CONNECT` tunnels and are checked by their target; a plain-HTTP
//! WebSocket upgrade becomes a tunnel to its checked host once the host
//! answers 101. A refused request gets a 403 and is remembered, so the
//! capture can log it, and fail with
//! [`CaptureError::Refused`](super::CaptureError::Refused) when it was the
//! page itself.

use std::io::{Error, ErrorKind};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::netpolicy::NetworkPolicy;

/// Longest request or response head the proxy reads (also the longest
/// chunk-size or trailer line of a chunked body).
const MAX_HEAD: usize = 64 * 1024;

/// Most header lines in a head.
const MAX_HEADERS: usize = 128;

/// Longest wait for a connection to the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a closed exchange still reads (and drops) what the client
/// sends, so that closing with unread bytes does not reset the connection
/// before the client has read the response.
const LINGER: Duration = Duration::from_secs(2);

/// Headers that concern one connection and are never passed on (besides
/// those a `Connection` header names).
const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "upgrade",
];

/// A request the proxy did not pass on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// What the page asked for: a URL, or `host:port` for a tunnel.
    pub(crate) target: String,
    /// `host:port` of the target, to match it with the page's own URL.
    pub(crate) authority: String,
    /// Why: the policy's reason, or Chromium's name for a network error
    /// (`net::ERR_CONNECTION_REFUSED`).
    pub(crate) reason: String,
    /// The policy refused it (else the target could not be reached).
    pub(crate) by_policy: bool,
}

/// A running filtering proxy; stopped (with its connections) when dropped.
pub(crate) struct FilterProxy {
    port: u16,
    refusals: Arc<Mutex<Vec<Refusal>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FilterProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FilterProxy {
    /// Starts a proxy on a free loopback port that enforces `policy` (and
    /// refuses its own port).
    pub(crate) async fn start(policy: &NetworkPolicy) -> std::io::Result<FilterProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let mut policy = policy.clone();
        policy.denied_loopback_ports.push(port);
        let policy = Arc::new(policy);
        let refusals: Arc<Mutex<Vec<Refusal>>> = Arc::default();
        let log = Arc::clone(&refusals);
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) ends every connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let policy = Arc::clone(&policy);
                        let log = Arc::clone(&log);
                        connections.spawn(async move {
                            let _ = serve(stream, &policy, &log).await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(FilterProxy {
            port,
            refusals,
            task,
        })
    }

    /// The port Chromium is pointed at.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The refusals since the last call.
    pub(crate) fn take_refusals(&self) -> Vec<Refusal> {
        std::mem::take(&mut *self.refusals.lock().expect("refusals"))
    }
}

/// What the proxy answers itself instead of forwarding.
struct Answer {
    status: &'static str,
    text: String,
}

impl Answer {
    fn new(status: &'static str, text: impl Into<String>) -> Answer {
        Answer {
            status,
            text: text.into(),
        }
    }
}

/// One client connection: one request, or one tunnel.
async fn serve(
    client: TcpStream,
    policy: &NetworkPolicy,
    log: &Mutex<Vec<Refusal>>,
) -> std::io::Result<()> {
    // Pieces of a response are passed on as they come: without this, Nagle's
    // algorithm holds a small second piece until the first is acknowledged.
    client.set_nodelay(true)?;
    let mut client = Peer::new(client);
    let outcome = match read_request(&mut client).await? {
        None => return Ok(()),
        Some(Err(answer)) => Err(answer),
        Some(Ok(head)) => relay(&mut client, head, policy, log).await?,
    };
    if let Err(answer) = outcome {
        send_answer(&mut client.stream, &answer).await?;
    }
    close(client.stream).await
}

/// Checks and connects to what `head` asks for, and relays the request or
/// tunnel; an `Err` is what to answer the client instead.
async fn relay(
    client: &mut Peer,
    head: RequestHead,
    policy: &NetworkPolicy,
    log: &Mutex<Vec<Refusal>>,
) -> std::io::Result<Result<(), Answer>> {
    let dest = match Destination::of(&head) {
        Ok(dest) => dest,
        Err(answer) => return Ok(Err(answer)),
    };
    // Checked before connecting, so a refused body framing never opens a
    // connection to the target.
    let body_length = match request_body_length(&head) {
        Ok(n) => n,
        Err(answer) => return Ok(Err(answer)),
    };
    let mut server = match connect_checked(&dest, &head.target, policy, log).await {
        Ok(server) => server,
        Err(answer) => return Ok(Err(answer)),
    };
    server.set_nodelay(true)?;
    match dest.path {
        None => tunnel(client, &mut server).await.map(Ok),
        Some(path) => exchange(client, Peer::new(server), &head, &path, body_length).await,
    }
}

/// Where a request goes: a host and port, and the origin-form path of a
/// plain HTTP request (`None` for a `CONNECT` tunnel).
struct Destination {
    host: String,
    port: u16,
    path: Option<String>,
}

impl Destination {
    fn of(head: &RequestHead) -> Result<Destination, Answer> {
        if head.method.eq_ignore_ascii_case("CONNECT") {
            let (host, port) = split_authority(&head.target)
                .ok_or_else(|| Answer::new("400 Bad Request", "bad CONNECT target"))?;
            return Ok(Destination {
                host,
                port,
                path: None,
            });
        }
        let url = url::Url::parse(&head.target)
            .map_err(|_| Answer::new("400 Bad Request", "not an absolute URL"))?;
        if url.scheme() != "http" {
            return Err(Answer::new(
                "400 Bad Request",
                "only http URLs are forwarded",
            ));
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(Answer::new("400 Bad Request", "no host in the URL"));
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        Ok(Destination {
            host: host.trim_matches(['[', ']']).to_string(),
            port,
            path: Some(path),
        })
    }
}

/// Resolves, checks and connects to `dest`, recording why not.
async fn connect_checked(
    dest: &Destination,
    target: &str,
    policy: &NetworkPolicy,
    log: &Mutex<Vec<Refusal>>,
) -> Result<TcpStream, Answer> {
    let host = &dest.host;
    let record = |reason: String, by_policy: bool| {
        log.lock().expect("refusals").push(Refusal {
            target: target.to_string(),
            authority: format!("{host}:{}", dest.port),
            reason,
            by_policy,
        });
    };
    let addrs = match resolve(host, dest.port).await {
        Ok(addrs) if !addrs.is_empty() => addrs,
        _ => {
            record("net::ERR_NAME_NOT_RESOLVED".into(), false);
            return Err(Answer::new(
                "502 Bad Gateway",
                format!("cannot resolve {host}"),
            ));
        }
    };
    let addr = policy.check(host, &addrs).map_err(|reason| {
        let text = format!("refused by the capture network policy: {reason}");
        record(reason, true);
        Answer::new("403 Forbidden", text)
    })?;
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => {
            let name = match e.kind() {
                ErrorKind::ConnectionRefused => "net::ERR_CONNECTION_REFUSED".to_string(),
                ErrorKind::ConnectionReset => "net::ERR_CONNECTION_RESET".to_string(),
                _ => format!("net::ERR_CONNECTION_FAILED ({e})"),
            };
            record(name.clone(), false);
            Err(Answer::new("502 Bad Gateway", name))
        }
        Err(_) => {
            record("net::ERR_CONNECTION_TIMED_OUT".into(), false);
            Err(Answer::new("504 Gateway Timeout", "connection timed out"))
        }
    }
}

/// A `CONNECT` tunnel: everything both ways, to the one checked host and
/// port (Chromium never sends another host's traffic through a tunnel).
async fn tunnel(client: &mut Peer, server: &mut TcpStream) -> std::io::Result<()> {
    client
        .stream
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    server.write_all(&std::mem::take(&mut client.buf)).await?;
    copy_bidirectional(&mut client.stream, server).await?;
    Ok(())
}

/// One plain HTTP request and its response; a WebSocket upgrade the server
/// accepts becomes a tunnel to it.
async fn exchange(
    client: &mut Peer,
    mut server: Peer,
    head: &RequestHead,
    path: &str,
    body_length: u64,
) -> std::io::Result<Result<(), Answer>> {
    let upgrade = head.asks_upgrade();
    server
        .stream
        .write_all(&forwarded_request_head(head, path, upgrade))
        .await?;
    client.copy_exact(body_length, &mut server.stream).await?;
    // Whatever the client sent after its request is not forwarded (a
    // WebSocket's first frames are, once the upgrade is accepted).
    let pipelined = std::mem::take(&mut client.buf);
    let response = match read_final_response(&mut server, &mut client.stream).await? {
        Ok(response) => response,
        Err(answer) => return Ok(Err(answer)),
    };
    if response.code == 101 {
        if !upgrade {
            return Ok(Err(Answer::new(
                "502 Bad Gateway",
                "the server switched protocols unasked",
            )));
        }
        client.stream.write_all(&response.raw).await?;
        server.stream.write_all(&pipelined).await?;
        return tunnel_after_upgrade(client, server).await.map(Ok);
    }
    let framing = match response_framing(&head.method, &response) {
        Ok(framing) => framing,
        Err(why) => return Ok(Err(Answer::new("502 Bad Gateway", why))),
    };
    client
        .stream
        .write_all(&closing_response_head(&response, &framing))
        .await?;
    match framing {
        Framing::Empty => {}
        Framing::Length(n) => server.copy_exact(n, &mut client.stream).await?,
        Framing::Chunked => copy_chunked(&mut server, &mut client.stream).await?,
        Framing::UntilClose => server.copy_to_end(&mut client.stream).await?,
    }
    Ok(Ok(()))
}

/// After a 101: the bytes each side already sent, then everything both
/// ways (the tunnel goes to the host that was checked).
async fn tunnel_after_upgrade(client: &mut Peer, mut server: Peer) -> std::io::Result<()> {
    client
        .stream
        .write_all(&std::mem::take(&mut server.buf))
        .await?;
    copy_bidirectional(&mut client.stream, &mut server.stream).await?;
    Ok(())
}

/// The request line and headers as sent on: origin-form path, the
/// client's headers without hop-by-hop ones, and `Connection: close` (or
/// `Connection: Upgrade` with the client's `Upgrade`).
fn forwarded_request_head(head: &RequestHead, path: &str, upgrade: bool) -> Vec<u8> {
    let mut out = format!("{} {path} HTTP/1.{}\r\n", head.method, head.minor).into_bytes();
    let named = connection_tokens(&head.headers);
    for (name, value) in &head.headers {
        if is_hop_by_hop(name, &named) {
            continue;
        }
        push_header(&mut out, name, value);
    }
    if upgrade {
        for value in header_values(&head.headers, "upgrade") {
            push_header(&mut out, "Upgrade", value);
        }
        out.extend_from_slice(b"Connection: Upgrade\r\n\r\n");
    } else {
        out.extend_from_slice(b"Connection: close\r\n\r\n");
    }
    out
}

/// The response head as sent to the client: the status, the server's
/// headers without hop-by-hop ones, and `Connection: close`, so the client
/// never sends another request on this connection.
fn closing_response_head(response: &ResponseHead, framing: &Framing) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.{} {} {}\r\n",
        response.minor, response.code, response.reason
    )
    .into_bytes();
    let named = connection_tokens(&response.headers);
    for (name, value) in &response.headers {
        // With chunked framing a Content-Length is wrong, and a client
        // that trusted it could read the next response out of this one.
        let stale_length =
            matches!(framing, Framing::Chunked) && name.eq_ignore_ascii_case("content-length");
        if is_hop_by_hop(name, &named) || stale_length {
            continue;
        }
        push_header(&mut out, name, value);
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn is_hop_by_hop(name: &str, named_by_connection: &[String]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || named_by_connection
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
}

/// The header names a `Connection` header lists (`Connection: close,
/// X-Foo` makes `X-Foo` hop-by-hop).
fn connection_tokens(headers: &[(String, Vec<u8>)]) -> Vec<String> {
    list_values(headers, "connection")
}

/// The comma-separated items of every header called `name`, trimmed.
fn list_values(headers: &[(String, Vec<u8>)], name: &str) -> Vec<String> {
    let mut items = Vec::new();
    for value in header_values(headers, name) {
        let text = String::from_utf8_lossy(value);
        let listed = text.split(',').map(str::trim).filter(|t| !t.is_empty());
        items.extend(listed.map(str::to_string));
    }
    items
}

fn header_values<'a>(
    headers: &'a [(String, Vec<u8>)],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// The length of the request's body: its `Content-Length`, or none.
///
/// A `Transfer-Encoding` (chunked) request body is refused with 411
/// rather than decoded: Chromium streams a request body only over HTTP/2
/// and HTTP/3, never over HTTP/1.1 to a proxy, so no captured page needs
/// it, and refusing it leaves no chunked-framing parser (and no
/// `Transfer-Encoding` versus `Content-Length` disagreement) on the
/// request path for a request to be smuggled through.
fn request_body_length(head: &RequestHead) -> Result<u64, Answer> {
    if header_values(&head.headers, "transfer-encoding")
        .next()
        .is_some()
    {
        return Err(Answer::new(
            "411 Length Required",
            "request bodies must have a Content-Length",
        ));
    }
    Ok(content_length(&head.headers)
        .map_err(|why| Answer::new("400 Bad Request", why))?
        .unwrap_or(0))
}

/// The `Content-Length` of a head: `None` without one, an error when it is
/// not a number or its copies disagree.
fn content_length(headers: &[(String, Vec<u8>)]) -> Result<Option<u64>, &'static str> {
    let mut length = None;
    for value in header_values(headers, "content-length") {
        for part in value.split(|b| *b == b',') {
            let text = std::str::from_utf8(part).map_err(|_| "bad Content-Length")?;
            let text = text.trim_matches([' ', '\t']);
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err("bad Content-Length");
            }
            let n: u64 = text.parse().map_err(|_| "bad Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length headers");
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// How a response body ends (RFC 9112, section 6.3).
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// No body (`HEAD`, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunks up to the last chunk and the trailers.
    Chunked,
    /// Everything until the server closes.
    UntilClose,
}

fn response_framing(method: &str, response: &ResponseHead) -> Result<Framing, &'static str> {
    if method.eq_ignore_ascii_case("HEAD") || matches!(response.code, 204 | 304) {
        return Ok(Framing::Empty);
    }
    let codings = list_values(&response.headers, "transfer-encoding");
    if let Some(last) = codings.last() {
        // A Transfer-Encoding overrides any Content-Length.
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    Ok(match content_length(&response.headers)? {
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// Copies a chunked body as it is: chunks up to the last (empty) one, then
/// the trailer section up to its blank line.
async fn copy_chunked(from: &mut Peer, to: &mut TcpStream) -> std::io::Result<()> {
    loop {
        let line = from.copy_line(to).await?;
        let size = match httparse::parse_chunk_size(&line) {
            Ok(httparse::Status::Complete((_, size))) => size,
            _ => return Err(Error::new(ErrorKind::InvalidData, "bad chunk size")),
        };
        if size == 0 {
            break;
        }
        // The chunk's data and the CRLF after it.
        from.copy_exact(size.saturating_add(2), to).await?;
    }
    while from.copy_line(to).await? != b"\r\n" {}
    Ok(())
}

/// A parsed request head.
struct RequestHead {
    method: String,
    target: String,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    minor: u8,
    headers: Vec<(String, Vec<u8>)>,
}

impl RequestHead {
    /// A WebSocket (or other) upgrade: an `Upgrade` header that the
    /// `Connection` header names.
    fn asks_upgrade(&self) -> bool {
        header_values(&self.headers, "upgrade").next().is_some()
            && connection_tokens(&self.headers)
                .iter()
                .any(|t| t.eq_ignore_ascii_case("upgrade"))
    }
}

/// A parsed response head, with its bytes as received.
struct ResponseHead {
    minor: u8,
    code: u16,
    reason: String,
    headers: Vec<(String, Vec<u8>)>,
    raw: Vec<u8>,
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.to_string(), h.value.to_vec()))
        .collect()
}

/// What parsing the buffered bytes gave.
enum Parse<T> {
    /// A head, and how many bytes it took.
    Head(T, usize),
    /// Not a whole head yet.
    Partial,
    /// Not HTTP, or too many headers.
    Bad(httparse::Error),
}

fn parse_request(buf: &[u8]) -> Parse<RequestHead> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Parse::Head(
            RequestHead {
                method: request.method.unwrap_or_default().to_string(),
                target: request.path.unwrap_or_default().to_string(),
                minor: request.version.unwrap_or(1),
                headers: owned_headers(request.headers),
            },
            len,
        ),
        Ok(httparse::Status::Partial) => Parse::Partial,
        Err(e) => Parse::Bad(e),
    }
}

fn parse_response(buf: &[u8]) -> Parse<ResponseHead> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Parse::Head(
            ResponseHead {
                minor: response.version.unwrap_or(1),
                code: response.code.unwrap_or(0),
                reason: response.reason.unwrap_or_default().to_string(),
                headers: owned_headers(response.headers),
                raw: buf[..len].to_vec(),
            },
            len,
        ),
        Ok(httparse::Status::Partial) => Parse::Partial,
        Err(e) => Parse::Bad(e),
    }
}

/// Reads one request head: `None` when the client closed without sending
/// one, an answer when it is not one the proxy takes.
async fn read_request(client: &mut Peer) -> std::io::Result<Option<Result<RequestHead, Answer>>> {
    loop {
        match parse_request(&client.buf) {
            Parse::Head(head, len) => {
                client.consume(len);
                return Ok(Some(Ok(head)));
            }
            Parse::Bad(httparse::Error::TooManyHeaders) => {
                return Ok(Some(Err(too_large())));
            }
            Parse::Bad(e) => {
                let why = format!("not an HTTP request: {e}");
                return Ok(Some(Err(Answer::new("400 Bad Request", why))));
            }
            Parse::Partial if client.buf.len() > MAX_HEAD => return Ok(Some(Err(too_large()))),
            Parse::Partial => {
                if !client.fill().await? {
                    return Ok(None);
                }
            }
        }
    }
}

fn too_large() -> Answer {
    Answer::new("431 Request Header Fields Too Large", "")
}

/// Reads the server's response head, passing informational (1xx) responses
/// other than 101 on to the client as they come.
async fn read_final_response(
    server: &mut Peer,
    client: &mut TcpStream,
) -> std::io::Result<Result<ResponseHead, Answer>> {
    loop {
        match parse_response(&server.buf) {
            Parse::Head(head, len) => {
                server.consume(len);
                if (100..200).contains(&head.code) && head.code != 101 {
                    client.write_all(&head.raw).await?;
                    continue;
                }
                return Ok(Ok(head));
            }
            Parse::Bad(e) => {
                let why = format!("the server's answer is not HTTP: {e}");
                return Ok(Err(Answer::new("502 Bad Gateway", why)));
            }
            Parse::Partial if server.buf.len() > MAX_HEAD => {
                let why = "the server's response head is too long";
                return Ok(Err(Answer::new("502 Bad Gateway", why)));
            }
            Parse::Partial => {
                if !server.fill().await? {
                    let why = "the server closed the connection without answering";
                    return Ok(Err(Answer::new("502 Bad Gateway", why)));
                }
            }
        }
    }
}

/// A connection and the bytes read from it that are not used yet.
struct Peer {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Peer {
    fn new(stream: TcpStream) -> Peer {
        Peer {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Reads more into the buffer; false at the end of the stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    /// Copies exactly `n` bytes to `to`; an error if the stream ends first.
    async fn copy_exact(&mut self, mut n: u64, to: &mut TcpStream) -> std::io::Result<()> {
        while n > 0 {
            if self.buf.is_empty() && !self.fill().await? {
                return Err(Error::new(ErrorKind::UnexpectedEof, "the body ended early"));
            }
            let take = usize::try_from(n).unwrap_or(usize::MAX).min(self.buf.len());
            to.write_all(&self.buf[..take]).await?;
            self.consume(take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Copies one line, its CRLF included, to `to` and returns it.
    async fn copy_line(&mut self, to: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                to.write_all(&line).await?;
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Error::new(
                    ErrorKind::InvalidData,
                    "a chunk line is too long",
                ));
            }
            if !self.fill().await? {
                return Err(Error::new(ErrorKind::UnexpectedEof, "the body ended early"));
            }
        }
    }

    /// Copies everything up to the end of the stream to `to`.
    async fn copy_to_end(&mut self, to: &mut TcpStream) -> std::io::Result<()> {
        to.write_all(&std::mem::take(&mut self.buf)).await?;
        tokio::io::copy(&mut self.stream, to).await?;
        Ok(())
    }
}

/// `host:port` of a CONNECT target (`[::1]:443` for IPv6).
fn split_authority(target: &str) -> Option<(String, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let host = host.trim_matches(['[', ']']);
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

async fn resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    Ok(tokio::net::lookup_host((host, port)).await?.collect())
}

/// Answers with a status and a short text.
async fn send_answer(client: &mut TcpStream, answer: &Answer) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        answer.status,
        answer.text.len(),
        answer.text
    );
    client.write_all(response.as_bytes()).await
}

/// Ends the client connection: no more bytes from us, and what the client
/// still sends is read and dropped for a moment (closing with unread bytes
/// would reset the connection, and the client could lose the response).
async fn close(mut client: TcpStream) -> std::io::Result<()> {
    // A tunnel has shut its side down already.
    let _ = client.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 4096];
        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    #[test]
    fn connect_targets_split_into_host_and_port() {
        assert_eq!(
            split_authority("example.com:443"),
            Some(("example.com".into(), 443))
        );
        assert_eq!(split_authority("[::1]:8080"), Some(("::1".into(), 8080)));
        assert_eq!(split_authority("example.com"), None);
        assert_eq!(split_authority(":80"), None);
    }

    /// A request the test upstream received: its request line, head
    /// (lowercased) and body.
    #[derive(Debug)]
    struct Seen {
        line: String,
        head: String,
        body: Vec<u8>,
    }

    /// How the test upstream answers a request (given its head): the bytes
    /// to send, and whether to echo what comes next (after a 101) instead
    /// of reading another request.
    type Answerer = fn(&str) -> (Vec<u8>, bool);

    /// A server that answers every request on a connection and waits for
    /// the next one, whatever `Connection: close` says (as some servers
    /// do). When a connection ends, the requests it carried are sent on
    /// the returned channel. (Written without the proxy's own parser, so
    /// that a bug there cannot hide here.)
    async fn keep_alive_upstream(answer: Answerer) -> (u16, mpsc::UnboundedReceiver<Vec<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let _ = upstream_connection(stream, answer, &mut seen).await;
                    let _ = tx.send(seen);
                });
            }
        });
        (port, rx)
    }

    async fn upstream_connection(
        mut stream: TcpStream,
        answer: Answerer,
        seen: &mut Vec<Seen>,
    ) -> std::io::Result<()> {
        let mut buf = Vec::new();
        loop {
            let end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end);
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < length {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body: Vec<u8> = buf.drain(..length).collect();
            seen.push(Seen {
                line: head.split(" HTTP/").next().unwrap_or_default().to_string(),
                head: head.to_ascii_lowercase(),
                body,
            });
            let (bytes, echo) = answer(&head);
            stream.write_all(&bytes).await?;
            if echo {
                let (mut rd, mut wr) = stream.split();
                wr.write_all(&buf).await?;
                tokio::io::copy(&mut rd, &mut wr).await?;
                return Ok(());
            }
        }
    }

    /// Reads a head byte by byte (so nothing after it is taken).
    async fn read_head(stream: &mut TcpStream) -> String {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            let n = stream.read(&mut byte).await.expect("read");
            assert_eq!(n, 1, "closed before the end of a head");
            head.push(byte[0]);
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    const OK_KEEP_ALIVE: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\n\r\nok";

    fn ok_keep_alive(_: &str) -> (Vec<u8>, bool) {
        (OK_KEEP_ALIVE.as_bytes().to_vec(), false)
    }

    /// A proxy that lets pages reach loopback (where the test upstream
    /// is) but not link-local addresses.
    async fn proxy() -> FilterProxy {
        FilterProxy::start(&NetworkPolicy::local())
            .await
            .expect("proxy")
    }

    /// Sends `bytes` to the proxy and reads until it closes the connection.
    async fn through(proxy: &FilterProxy, bytes: &[u8]) -> String {
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port()))
            .await
            .expect("connect");
        client.write_all(bytes).await.expect("send");
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), client.read_to_end(&mut out))
            .await
            .expect("the proxy closes the connection after one exchange")
            .expect("read");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn a_pipelined_second_request_is_never_forwarded() {
        let (port, mut connections) = keep_alive_upstream(ok_keep_alive).await;
        let proxy = proxy().await;
        let sent = format!(
            "GET http://127.0.0.1:{port}/first HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nProxy-Connection: keep-alive\r\n\r\n\
             GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n\
             GET http://127.0.0.1:{port}/third HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        );
        let got = through(&proxy, sent.as_bytes()).await;
        assert_eq!(got.matches("HTTP/1.1").count(), 1, "{got}");
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.contains("\r\nConnection: close\r\n"), "{got}");
        assert!(!got.to_ascii_lowercase().contains("keep-alive"), "{got}");
        assert!(got.ends_with("\r\n\r\nok"), "{got}");
        let seen = connections.recv().await.expect("one upstream connection");
        let lines: Vec<&str> = seen.iter().map(|s| s.line.as_str()).collect();
        assert_eq!(lines, ["GET /first"], "{seen:?}");
        assert!(seen[0].head.contains("connection: close"), "{seen:?}");
        assert!(!seen[0].head.contains("proxy-connection"), "{seen:?}");
        assert!(
            connections.try_recv().is_err(),
            "no other upstream connection"
        );
    }

    #[tokio::test]
    async fn a_refused_request_is_answered_403_and_recorded() {
        let proxy = proxy().await;
        let got = through(
            &proxy,
            b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
        )
        .await;
        assert!(got.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{got}");
        let refusals = proxy.take_refusals();
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        assert_eq!(refusals[0].authority, "169.254.169.254:80");
        assert!(refusals[0].by_policy);
    }

    #[tokio::test]
    async fn a_request_body_is_forwarded_by_its_length_and_nothing_after_it() {
        let (port, mut connections) = keep_alive_upstream(ok_keep_alive).await;
        let proxy = proxy().await;
        let sent = format!(
            "POST http://127.0.0.1:{port}/form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
             GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let got = through(&proxy, sent.as_bytes()).await;
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        let seen = connections.recv().await.expect("one upstream connection");
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].line, "POST /form");
        assert_eq!(seen[0].body, b"hello");

        let chunked = format!(
            "POST http://127.0.0.1:{port}/form HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let got = through(&proxy, chunked.as_bytes()).await;
        assert!(got.starts_with("HTTP/1.1 411 "), "{got}");
    }

    fn framed(head: &str) -> (Vec<u8>, bool) {
        let path = head.split(' ').nth(1).unwrap_or_default();
        let response = match path {
            "/chunked" => {
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
            }
            "/empty" => "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
            "/same" => "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            "/head" => "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            _ => {
                "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\nbody"
            }
        };
        (response.as_bytes().to_vec(), false)
    }

    #[tokio::test]
    async fn each_response_framing_ends_the_exchange_on_a_kept_alive_upstream() {
        let (port, mut connections) = keep_alive_upstream(framed).await;
        let proxy = proxy().await;
        let get = |method: &str, path: &str| {
            format!("{method} http://127.0.0.1:{port}{path} HTTP/1.1\r\nHost: x\r\n\r\n")
        };
        let got = through(&proxy, get("GET", "/chunked").as_bytes()).await;
        assert!(
            got.ends_with("\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"),
            "{got}"
        );
        assert!(!got.contains("Content-Length"), "{got}");
        for (method, path, status) in [
            ("GET", "/empty", "204"),
            ("GET", "/same", "304"),
            ("HEAD", "/head", "200"),
        ] {
            let got = through(&proxy, get(method, path).as_bytes()).await;
            assert!(got.starts_with(&format!("HTTP/1.1 {status} ")), "{got}");
            assert!(got.ends_with("Connection: close\r\n\r\n"), "{got}");
        }
        let got = through(&proxy, get("GET", "/hinted").as_bytes()).await;
        assert!(got.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{got}");
        assert!(got.contains("\r\n\r\nHTTP/1.1 200 OK\r\n"), "{got}");
        assert!(!got.contains("X-Hop"), "named by Connection: {got}");
        assert!(got.ends_with("Connection: close\r\n\r\nbody"), "{got}");
        for _ in 0..5 {
            let seen = connections.recv().await.expect("an upstream connection");
            assert_eq!(seen.len(), 1, "{seen:?}");
        }
    }

    #[tokio::test]
    async fn a_response_without_length_lasts_until_the_upstream_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let _ = read_head(&mut stream).await;
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nall of it").await;
        });
        let proxy = proxy().await;
        let got = through(
            &proxy,
            format!("GET http://127.0.0.1:{port}/ HTTP/1.0\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(got.starts_with("HTTP/1.0 200 OK\r\n"), "{got}");
        assert!(got.ends_with("\r\n\r\nall of it"), "{got}");
    }

    fn switching(head: &str) -> (Vec<u8>, bool) {
        let asked = head
            .to_ascii_lowercase()
            .contains("\r\nupgrade: websocket\r\n");
        let response =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        (response.as_bytes().to_vec(), asked)
    }

    #[tokio::test]
    async fn a_plain_http_websocket_upgrade_becomes_a_tunnel_to_the_checked_host() {
        let (port, mut connections) = keep_alive_upstream(switching).await;
        let proxy = proxy().await;
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port()))
            .await
            .expect("connect");
        let upgrade = format!(
            "GET http://127.0.0.1:{port}/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        client.write_all(upgrade.as_bytes()).await.expect("send");
        let head = read_head(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        client.write_all(b"frames both ways").await.expect("send");
        let mut echoed = vec![0u8; 16];
        client.read_exact(&mut echoed).await.expect("echo");
        assert_eq!(echoed, b"frames both ways");
        drop(client);
        let seen = connections.recv().await.expect("the upstream connection");
        assert!(seen[0].head.contains("upgrade: websocket"), "{seen:?}");
        assert!(seen[0].head.contains("connection: upgrade"), "{seen:?}");
    }

    #[tokio::test]
    async fn a_connect_tunnel_reaches_its_checked_target() {
        let (port, mut connections) = keep_alive_upstream(ok_keep_alive).await;
        let proxy = proxy().await;
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port()))
            .await
            .expect("connect");
        let connect =
            format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        client.write_all(connect.as_bytes()).await.expect("send");
        let established = b"HTTP/1.1 200 Connection Established\r\n\r\n";
        let mut reply = vec![0u8; established.len()];
        client.read_exact(&mut reply).await.expect("reply");
        assert_eq!(reply, established);
        client
            .write_all(b"GET /inside HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send");
        let mut response = vec![0u8; OK_KEEP_ALIVE.len()];
        client.read_exact(&mut response).await.expect("response");
        assert!(response.ends_with(b"ok"));
        drop(client);
        let seen = connections.recv().await.expect("the upstream connection");
        assert_eq!(seen[0].line, "GET /inside");
    }
}
