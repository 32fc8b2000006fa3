//! A DevTools connection of our own to the browser as a whole (not to one
//! page, as chromedriver's `goog:cdp` commands are): it creates and
//! disposes the browser context each capture runs in, and carries the
//! commands of a capture to its page (cheaper than a round trip through
//! chromedriver) and the paused requests that get extra headers.
//!
//! One WebSocket per browser; commands for a page go in a flat session
//! (`Target.attachToTarget` with `flatten`), named by its `sessionId`.
//! Firefox's WebDriver BiDi socket frames its commands, replies and events
//! the same way (no sessions; errors as a code and a message), so the same
//! connection carries it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use thirtyfour::WebDriver;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::CaptureError;

/// Events kept for a subscriber that falls behind.
const EVENT_BUFFER: usize = 1024;

/// An event of a session, or of the browser (`session` is `None`).
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) session: Option<String>,
    pub(crate) method: String,
    pub(crate) params: Value,
}

type Replies = Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>;

/// A command the browser did not carry out.
#[derive(Debug)]
pub(crate) struct CommandError {
    method: String,
    /// The browser's message, or why there was no answer.
    message: String,
}

impl CommandError {
    /// The page navigated (or was closed) while the command ran, so it ran
    /// in a document that is gone; in the new one it may succeed.
    pub(crate) fn aborted_by_navigation(&self) -> bool {
        [
            "Inspected target navigated or closed",
            "Execution context was destroyed",
            "Cannot find default execution context",
            "Not attached to an active page",
        ]
        .iter()
        .any(|m| self.message.contains(m))
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.method, self.message)
    }
}

impl From<CommandError> for CaptureError {
    fn from(e: CommandError) -> CaptureError {
        CaptureError::browser(e.to_string())
    }
}

/// A browser-level DevTools connection; cheap to clone. The connection
/// closes when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct DevTools {
    inner: Arc<Inner>,
}

struct Inner {
    out: mpsc::UnboundedSender<String>,
    replies: Arc<Replies>,
    events: broadcast::Sender<Event>,
    next_id: AtomicU64,
    /// Set when the browser closed the connection: nothing will answer.
    closed: Arc<AtomicBool>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer ends with the last sender; the reader would wait for
        // the browser to close the socket.
        self.reader.abort();
    }
}

impl DevTools {
    /// Connects to the browser behind chromedriver's session `driver`.
    pub(crate) async fn connect(driver: &WebDriver) -> Result<DevTools, CaptureError> {
        let url = browser_socket_url(driver).await?;
        DevTools::connect_to(&url).await
    }

    /// Connects to the WebSocket at `url`: a DevTools or a WebDriver BiDi
    /// endpoint (the two frame commands, replies and events alike).
    pub(crate) async fn connect_to(url: &str) -> Result<DevTools, CaptureError> {
        // No size limits: a screenshot comes back as one message, and a tall
        // tile can be larger than tungstenite's default limits. The peer is
        // the browser itself. No Nagle delay: commands are small and each
        // waits for its answer.
        let config = WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|e| CaptureError::browser_from("cannot open a DevTools connection", e))?;
        let (mut sink, mut stream) = socket.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(text) = outgoing.recv().await {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let replies: Arc<Replies> = Arc::default();
        let closed: Arc<AtomicBool> = Arc::default();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let reader = {
            let (replies, events) = (Arc::clone(&replies), events.clone());
            let closed = Arc::clone(&closed);
            tokio::spawn(async move {
                while let Some(Ok(message)) = stream.next().await {
                    if let Message::Text(text) = message {
                        dispatch(text.as_str(), &replies, &events);
                    }
                }
                // Whoever still waits for an answer gets an error instead;
                // a command sent from now on sees `closed` (set first).
                closed.store(true, Ordering::SeqCst);
                replies.lock().expect("replies").clear();
            })
        };
        Ok(DevTools {
            inner: Arc::new(Inner {
                out,
                replies,
                events,
                next_id: AtomicU64::new(1),
                closed,
                reader,
            }),
        })
    }

    /// Sends a command to the browser (`session` `None`) or to an attached
    /// target, and waits for its result.
    pub(crate) async fn send(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, CommandError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            frame["sessionId"] = json!(session);
        }
        let failed = |message: &str| CommandError {
            method: method.to_string(),
            message: message.to_string(),
        };
        let closed = || failed("the DevTools connection closed");
        let (tx, rx) = oneshot::channel();
        self.inner.replies.lock().expect("replies").insert(id, tx);
        if self.inner.closed.load(Ordering::SeqCst)
            || self.inner.out.send(frame.to_string()).is_err()
        {
            self.inner.replies.lock().expect("replies").remove(&id);
            return Err(closed());
        }
        match rx.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(message)) => Err(failed(&message)),
            Err(_) => Err(closed()),
        }
    }

    /// Every event from now on, of every session.
    pub(crate) fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }
}

/// Hands a reply to whoever waits for it, or an event to the subscribers.
fn dispatch(text: &str, replies: &Replies, events: &broadcast::Sender<Event>) {
    let Ok(mut message) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if let Some(id) = message.get("id").and_then(Value::as_u64) {
        let Some(waiting) = replies.lock().expect("replies").remove(&id) else {
            return;
        };
        let reply = match message.get("error") {
            // WebDriver BiDi: an error code, and the message beside it.
            Some(Value::String(code)) => Err(format!(
                "{code}: {}",
                message["message"].as_str().unwrap_or("failed")
            )),
            Some(error) => Err(error["message"].as_str().unwrap_or("failed").to_string()),
            None => Ok(message["result"].take()),
        };
        let _ = waiting.send(reply);
        return;
    }
    if let Some(method) = message["method"].as_str() {
        let _ = events.send(Event {
            session: message["sessionId"].as_str().map(str::to_string),
            method: method.to_string(),
            params: message["params"].take(),
        });
    }
}

/// The browser's DevTools WebSocket (`ws://127.0.0.1:<port>/devtools/browser/<id>`),
/// from the debugging address chromedriver reports for the session.
async fn browser_socket_url(driver: &WebDriver) -> Result<String, CaptureError> {
    let address = driver
        .capabilities()
        .get("goog:chromeOptions")
        .and_then(|o| o.get("debuggerAddress"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| CaptureError::browser("chromedriver reports no debuggerAddress"))?;
    // The browser's own port on this machine: never through a proxy the
    // environment may name.
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| CaptureError::browser_from("cannot make an HTTP client", e))?;
    let version: Value = client
        .get(format!("http://{address}/json/version"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| {
            CaptureError::browser_from("cannot ask the browser for its DevTools address", e)
        })?
        .json()
        .await
        .map_err(|e| CaptureError::browser_from("cannot read the browser's DevTools address", e))?;
    version["webSocketDebuggerUrl"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| CaptureError::browser("the browser named no DevTools WebSocket"))
}
