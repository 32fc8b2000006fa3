//! Extra headers for the hosts they belong to: the capture's requests
//! that need them are paused through our DevTools session and continued
//! with the headers added.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::super::CaptureError;
use super::super::devtools::DevTools;
use super::super::headers::HeaderRules;

/// What pauses the requests of the capture's page that need extra headers
/// (through our DevTools session on it) and continues them with the
/// headers added.
pub(super) struct FetchHook {
    pub(super) devtools: DevTools,
    pub(super) session: String,
    /// `Fetch.enable` patterns in effect (empty: disabled).
    pub(super) patterns: Vec<String>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl Drop for FetchHook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FetchHook {
    /// Listens for paused requests of `session` (which pauses none until
    /// [`FetchHook::set_patterns`]).
    pub(super) fn new(
        devtools: &DevTools,
        session: &str,
        rules: Arc<Mutex<HeaderRules>>,
    ) -> FetchHook {
        let mut events = devtools.events();
        let (conn, ours) = (devtools.clone(), session.to_string());
        let task = tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                if event.session.as_deref() != Some(ours.as_str())
                    || event.method != "Fetch.requestPaused"
                {
                    continue;
                }
                let Some(continued) = continued_request(&event.params, &rules) else {
                    continue;
                };
                let (conn, ours) = (conn.clone(), ours.clone());
                // Each on its own, so one slow answer holds up no other request;
                // a request the page dropped meanwhile cannot be continued.
                tokio::spawn(async move {
                    let _ = conn
                        .send(Some(&ours), "Fetch.continueRequest", continued)
                        .await;
                });
            }
        });
        FetchHook {
            devtools: devtools.clone(),
            session: session.to_string(),
            patterns: Vec::new(),
            task,
        }
    }

    /// Pauses the requests matching `patterns` from now on (none: stops).
    pub(super) async fn set_patterns(&mut self, patterns: Vec<String>) -> Result<(), CaptureError> {
        if self.patterns == patterns {
            return Ok(());
        }
        let (method, params) = if patterns.is_empty() {
            ("Fetch.disable", json!({}))
        } else {
            let list: Vec<Value> = patterns
                .iter()
                .map(|p| json!({ "urlPattern": p, "requestStage": "Request" }))
                .collect();
            ("Fetch.enable", json!({ "patterns": list }))
        };
        self.devtools
            .send(Some(&self.session), method, params)
            .await?;
        self.patterns = patterns;
        Ok(())
    }
}

/// The `Fetch.continueRequest` parameters for a paused request: its
/// headers with the extra ones `rules` gives for its URL.
pub(super) fn continued_request(paused: &Value, rules: &Mutex<HeaderRules>) -> Option<Value> {
    let id = paused["requestId"].as_str()?;
    let url = paused["request"]["url"].as_str().unwrap_or_default();
    let extra = rules.lock().expect("header rules").for_url(url);
    let mut continued = json!({ "requestId": id });
    if !extra.is_empty() {
        let mut headers: Vec<Value> = paused["request"]["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(name, _)| !extra.keys().any(|k| k.eq_ignore_ascii_case(name)))
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
        headers.extend(
            extra
                .iter()
                .map(|(name, value)| json!({ "name": name, "value": value })),
        );
        continued["headers"] = json!(headers);
    }
    Some(continued)
}
