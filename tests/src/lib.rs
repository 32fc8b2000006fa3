//! Shared helpers for Depicted's end-to-end tests: a tiny HTTP server that
//! serves pages on 127.0.0.1 for real Chromium (and the crawler) to load.
//!
//! It is deliberately small and blocking (a thread per connection, one
//! request per connection unless started with
//! [`PageServer::start_keep_alive`]): enough for a browser and an HTTP
//! client, with routes that tests can change while it runs, optional basic
//! auth, delays and hanging responses, and a log of the requests it saw.
#![deny(missing_docs)]

pub mod certs;
pub mod garage;
pub mod postgres;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::Duration;

/// One response the server gives for a path.
#[derive(Debug, Clone)]
pub struct Page {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header.
    pub content_type: String,
    /// Response body.
    pub body: Vec<u8>,
    /// When set, requests without these basic-auth credentials get 401.
    pub basic_auth: Option<(String, String)>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Never answer (until the server is dropped).
    pub hang: bool,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

impl Page {
    /// A 200 response with a content type and body.
    pub fn new(content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Page {
            status: 200,
            content_type: content_type.to_string(),
            body: body.into(),
            basic_auth: None,
            delay: None,
            hang: false,
            headers: Vec::new(),
        }
    }

    /// A 200 HTML page.
    pub fn html(body: &str) -> Self {
        Page::new("text/html; charset=utf-8", body)
    }

    /// A response with another status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Requires basic auth.
    pub fn with_basic_auth(mut self, user: &str, password: &str) -> Self {
        self.basic_auth = Some((user.to_string(), password.to_string()));
        self
    }

    /// Delays the answer.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Never answers.
    pub fn hanging(mut self) -> Self {
        self.hang = true;
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path with query string, as sent.
    pub target: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Which connection it came on: the server numbers its connections
    /// from 0 as it accepts them.
    pub connection: usize,
}

impl Request {
    /// The path without the query string (also of a target in absolute
    /// form, `GET http://host/path`, which servers must accept).
    pub fn path(&self) -> &str {
        let target = self.target.split('?').next().unwrap_or("");
        match target.strip_prefix("http://") {
            Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => target,
        }
    }

    /// The first header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    routes: RwLock<HashMap<String, Page>>,
    requests: Mutex<Vec<Request>>,
    stop: AtomicBool,
    /// Serve every request a connection brings, and say `keep-alive`.
    keep_alive: bool,
}

/// A page server on `127.0.0.1:<free port>`, stopped when dropped.
pub struct PageServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl PageServer {
    /// Starts a server on `127.0.0.1` with no routes (every path answers 404).
    pub fn start() -> Self {
        Self::start_with("127.0.0.1:0", false)
    }

    /// Starts a server listening on `bind` (`[::]:0`: every interface, IPv4
    /// and IPv6, as a server started with `--listen 0.0.0.0` would be).
    pub fn start_on(bind: &str) -> Self {
        Self::start_with(bind, false)
    }

    /// Like [`PageServer::start`], but the server keeps each connection
    /// open for more requests and answers `Connection: keep-alive`, even
    /// to a request that says `Connection: close` (as some servers do).
    pub fn start_keep_alive() -> Self {
        Self::start_with("127.0.0.1:0", true)
    }

    fn start_with(bind: &str, keep_alive: bool) -> Self {
        let listener = TcpListener::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            routes: RwLock::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            keep_alive,
        });
        let accept_shared = Arc::clone(&shared);
        thread::spawn(move || {
            for (connection, stream) in listener.incoming().enumerate() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let conn_shared = Arc::clone(&accept_shared);
                thread::spawn(move || {
                    let _ = serve_connection(stream, connection, &conn_shared);
                });
            }
        });
        PageServer { addr, shared }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    /// Serves `page` at `path` (matched against the path without the query),
    /// replacing what was there.
    pub fn set(&self, path: &str, page: Page) {
        self.shared
            .routes
            .write()
            .expect("routes lock")
            .insert(path.to_string(), page);
    }

    /// Serves an HTML page at `path`.
    pub fn set_html(&self, path: &str, html: &str) {
        self.set(path, Page::html(html));
    }

    /// Stops serving `path` (it answers 404 again).
    pub fn remove(&self, path: &str) {
        self.shared
            .routes
            .write()
            .expect("routes lock")
            .remove(path);
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    /// The requests received for `path` (without query).
    pub fn requests_for(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path() == path)
            .collect()
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve_connection(stream: TcpStream, connection: usize, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    while let Some(request) = read_request(&mut reader, connection)? {
        answer(&mut stream, &request, shared)?;
        if !shared.keep_alive {
            break;
        }
    }
    Ok(())
}

/// Reads one request (its body is read and dropped); `None` at the end of
/// the connection.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    connection: usize,
) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let (method, target) = (method.to_string(), target.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let request = Request {
        method,
        target,
        headers,
        connection,
    };
    if let Some(len) = request
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::io::copy(&mut reader.by_ref().take(len), &mut std::io::sink())?;
    }
    Ok(Some(request))
}

fn answer(stream: &mut TcpStream, request: &Request, shared: &Shared) -> std::io::Result<()> {
    shared
        .requests
        .lock()
        .expect("requests lock")
        .push(request.clone());

    let page = shared
        .routes
        .read()
        .expect("routes lock")
        .get(request.path())
        .cloned();
    let keep_alive = shared.keep_alive;
    let Some(page) = page else {
        return respond(stream, keep_alive, 404, "text/plain", b"not found", &[]);
    };
    if page.hang {
        while !shared.stop.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(50));
        }
        return Ok(());
    }
    if let Some(delay) = page.delay {
        thread::sleep(delay);
    }
    if let Some((user, password)) = &page.basic_auth {
        let expected = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        if request.header("authorization") != Some(expected.as_str()) {
            let challenge = [(
                "WWW-Authenticate".to_string(),
                "Basic realm=\"test\"".to_string(),
            )];
            return respond(
                stream,
                keep_alive,
                401,
                "text/plain",
                b"unauthorized",
                &challenge,
            );
        }
    }
    respond(
        stream,
        keep_alive,
        page.status,
        &page.content_type,
        &page.body,
        &page.headers,
    )
}

fn respond(
    stream: &mut TcpStream,
    keep_alive: bool,
    status: u16,
    content_type: &str,
    body: &[u8],
    headers: &[(String, String)],
) -> std::io::Result<()> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {connection}\r\nCache-Control: no-store\r\n",
        reason(status),
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// Standard base64 with padding (for basic-auth headers).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A port free on 127.0.0.1 right now, for a server the harness starts.
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(server: &PageServer, path: &str, auth: Option<&str>) -> String {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nX-Probe: 1\r\n{auth}\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_routes_records_requests_and_checks_auth() {
        let server = PageServer::start();
        server.set_html("/a", "<p>hello</p>");
        let resp = get(&server, "/a?x=1", None);
        assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
        assert!(resp.ends_with("<p>hello</p>"));
        assert!(get(&server, "/missing", None).starts_with("HTTP/1.1 404"));

        server.set("/secret", Page::html("s").with_basic_auth("u", "p"));
        assert!(get(&server, "/secret", None).starts_with("HTTP/1.1 401"));
        let ok = get(
            &server,
            "/secret",
            Some(&format!("Basic {}", base64(b"u:p"))),
        );
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");

        let seen = server.requests_for("/a");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].target, "/a?x=1");
        assert_eq!(seen[0].header("x-probe"), Some("1"));
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
