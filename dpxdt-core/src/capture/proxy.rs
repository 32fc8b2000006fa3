//! The filtering proxy every request of a captured page goes through.
//!
//! Each browser session gets its own proxy on a loopback port, and Chromium
//! is told to send everything through it, loopback included (`<-loopback>`),
//! with WebRTC kept off other paths. The proxy resolves each host itself,
//! checks every address against the [`NetworkPolicy`], and connects to the
//! address it checked (a second lookup cannot rebind the name). Plain HTTP
//! requests are forwarded one per connection; HTTPS and WebSockets arrive as
//! `CONNECT` tunnels and are checked by their target. A refused request gets
//! a 403 and is remembered, so the capture can log it, and fail with
//! [`CaptureError::Refused`](super::CaptureError::Refused) when it was the
//! page itself.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::netpolicy::NetworkPolicy;

/// Longest request head the proxy reads.
const MAX_HEAD: usize = 64 * 1024;

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

/// Longest wait for a connection to the target.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What the proxy saw since it was last asked.
#[derive(Debug, Default)]
struct Journal {
    refusals: Vec<Refusal>,
    /// Origins the page reached (`http://h:8000`, `https://h`): the ones
    /// whose storage the next capture clears.
    origins: BTreeSet<String>,
}

/// A running filtering proxy; stopped (with its connections) when dropped.
pub(crate) struct FilterProxy {
    port: u16,
    journal: Arc<Mutex<Journal>>,
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
        let journal: Arc<Mutex<Journal>> = Arc::default();
        let log = Arc::clone(&journal);
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
            journal,
            task,
        })
    }

    /// The port Chromium is pointed at.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The refusals since the last call.
    pub(crate) fn take_refusals(&self) -> Vec<Refusal> {
        std::mem::take(&mut self.journal.lock().expect("journal").refusals)
    }

    /// The origins pages reached since the last call.
    pub(crate) fn take_origins(&self) -> BTreeSet<String> {
        std::mem::take(&mut self.journal.lock().expect("journal").origins)
    }
}

/// One client connection: one request, or one tunnel.
async fn serve(
    mut client: TcpStream,
    policy: &NetworkPolicy,
    log: &Mutex<Journal>,
) -> std::io::Result<()> {
    // Pieces of a response are passed on as they come: without this, Nagle's
    // algorithm holds a small second piece until the first is acknowledged.
    client.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return answer(&mut client, "431 Request Header Fields Too Large", "").await;
        }
    };
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        return answer(
            &mut client,
            "400 Bad Request",
            "the request head is not UTF-8",
        )
        .await;
    };
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return answer(&mut client, "400 Bad Request", "no request line").await;
    };
    let (host, port, forward_line) = if method.eq_ignore_ascii_case("CONNECT") {
        let Some((host, port)) = split_authority(target) else {
            return answer(&mut client, "400 Bad Request", "bad CONNECT target").await;
        };
        (host, port, None)
    } else {
        let Ok(url) = url::Url::parse(target) else {
            return answer(&mut client, "400 Bad Request", "not an absolute URL").await;
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return answer(&mut client, "400 Bad Request", "no host in the URL").await;
        };
        if url.scheme() != "http" {
            return answer(
                &mut client,
                "400 Bad Request",
                "only http URLs are forwarded",
            )
            .await;
        }
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let host = host.trim_matches(['[', ']']).to_string();
        (host, port, Some(format!("{method} {path} {version}\r\n")))
    };
    let record = |reason: String, by_policy: bool| {
        log.lock().expect("journal").refusals.push(Refusal {
            target: target.to_string(),
            authority: format!("{host}:{port}"),
            reason,
            by_policy,
        });
    };
    let addrs = match resolve(&host, port).await {
        Ok(addrs) if !addrs.is_empty() => addrs,
        _ => {
            record("net::ERR_NAME_NOT_RESOLVED".into(), false);
            let why = format!("cannot resolve {host}");
            return answer(&mut client, "502 Bad Gateway", &why).await;
        }
    };
    let addr = match policy.check(&host, &addrs) {
        Ok(addr) => addr,
        Err(reason) => {
            let body = format!("refused by the capture network policy: {reason}");
            record(reason, true);
            return answer(&mut client, "403 Forbidden", &body).await;
        }
    };
    let scheme = if forward_line.is_some() {
        "http"
    } else {
        "https"
    };
    let shown = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let origin = match (scheme, port) {
        ("http", 80) | ("https", 443) => format!("{scheme}://{shown}"),
        _ => format!("{scheme}://{shown}:{port}"),
    };
    log.lock().expect("journal").origins.insert(origin);
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await;
    let mut server = match connected {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let name = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "net::ERR_CONNECTION_REFUSED".to_string(),
                std::io::ErrorKind::ConnectionReset => "net::ERR_CONNECTION_RESET".to_string(),
                _ => format!("net::ERR_CONNECTION_FAILED ({e})"),
            };
            record(name.clone(), false);
            return answer(&mut client, "502 Bad Gateway", &name).await;
        }
        Err(_) => {
            record("net::ERR_CONNECTION_TIMED_OUT".into(), false);
            return answer(&mut client, "504 Gateway Timeout", "connection timed out").await;
        }
    };
    server.set_nodelay(true)?;
    match forward_line {
        None => {
            client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await?;
        }
        Some(line) => {
            // One request per connection: the next request may be for
            // another host, and must be checked on its own.
            let mut out = line;
            for header in lines.filter(|l| !l.is_empty()) {
                let name = header.split(':').next().unwrap_or_default().trim();
                if [
                    "connection",
                    "proxy-connection",
                    "keep-alive",
                    "proxy-authorization",
                ]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h))
                {
                    continue;
                }
                out.push_str(header);
                out.push_str("\r\n");
            }
            out.push_str("Connection: close\r\n\r\n");
            server.write_all(out.as_bytes()).await?;
        }
    }
    server.write_all(&buf[head_end..]).await?;
    copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
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

/// Answers with a status and a short text, and closes.
async fn answer(client: &mut TcpStream, status: &str, text: &str) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
