//! The browser context and page a capture runs in, and the spare one made
//! ahead of the next capture with the settings it most likely shares.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use thirtyfour::prelude::*;

use super::super::CaptureError;
use super::super::devtools::{DevTools, Event};
use super::{CARRIED_SETTINGS, SETUP_TIMEOUT, WINDOW, fetch::FetchHook};

/// A browser context of its own and the page in it, where one capture
/// runs: disposed after it with all the page left (storage, cookies, cache,
/// service workers, open connections).
pub(super) struct Page {
    pub(super) context: String,
    /// Our DevTools session on the page, which every CDP command of the
    /// capture goes through (a round trip on our own connection is cheaper
    /// than one through chromedriver's `goog:cdp`).
    pub(super) session: String,
    /// Settings in effect in this page, by CDP method: a capture only
    /// sends what differs (each call is a round trip).
    pub(super) applied: Mutex<HashMap<&'static str, Value>>,
    /// The prelude installed for new documents: its source and identifier.
    pub(super) prelude: Mutex<Option<(String, String)>>,
    /// The hook that adds extra headers, set up when first needed.
    pub(super) fetch: tokio::sync::Mutex<Option<FetchHook>>,
    /// How long moving to it (and applying the settings carried over)
    /// took: after the previous capture, so not part of the next capture's
    /// time unless that one had to wait for it.
    pub(super) made_in: Duration,
    /// The navigations of the page, as its DevTools events tell them.
    pub(super) navigations: Mutex<Navigations>,
}

/// Whether the page has a navigation under way, followed from the events
/// of its main frame: from its request (a script set `location`, a meta
/// refresh fired) or its start of loading until its new document commits
/// and reaches `DOMContentLoaded` (or stops loading). The renderer sends
/// those events as the navigation starts, on the connection its command
/// replies come back on, so after any reply from the page every
/// navigation it had started by then is known. A requested navigation
/// that never commits (cancelled, a download) stays pending: the caller
/// then asks chromedriver, which knows.
pub(super) struct Navigations {
    events: tokio::sync::broadcast::Receiver<Event>,
    session: String,
    main_frame: String,
    pending: bool,
    /// A navigation was requested and no new document has committed since.
    uncommitted: bool,
}

impl Navigations {
    fn new(
        events: tokio::sync::broadcast::Receiver<Event>,
        session: &str,
        main_frame: &str,
    ) -> Navigations {
        Navigations {
            events,
            session: session.to_string(),
            main_frame: main_frame.to_string(),
            pending: false,
            uncommitted: false,
        }
    }

    /// Whether a navigation is under way, by the events received so far;
    /// when some were lost (the subscriber fell behind), it may be.
    pub(super) fn pending(&mut self) -> bool {
        use tokio::sync::broadcast::error::TryRecvError;
        let mut lost = false;
        loop {
            match self.events.try_recv() {
                Ok(e) if e.session.as_deref() == Some(self.session.as_str()) => self.follow(&e),
                Ok(_) => {}
                Err(TryRecvError::Lagged(_)) => lost = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        self.pending || lost
    }

    fn follow(&mut self, e: &Event) {
        let frame = e.params["frameId"]
            .as_str()
            .or_else(|| e.params["frame"]["id"].as_str());
        let main = frame == Some(self.main_frame.as_str());
        match e.method.as_str() {
            "Page.frameRequestedNavigation" | "Page.frameScheduledNavigation" if main => {
                self.pending = true;
                self.uncommitted = true;
            }
            "Page.frameStartedLoading" if main => self.pending = true,
            "Page.frameNavigated" if main => self.uncommitted = false,
            "Page.frameStoppedLoading" if main && !self.uncommitted => self.pending = false,
            "Page.domContentEventFired" if !self.uncommitted => self.pending = false,
            _ => {}
        }
    }
}

/// A browser context with a blank page and our DevTools session on it,
/// made ahead of the capture that will use it: a new context needs a
/// renderer process of its own, and starting one is most of what a fresh
/// context costs. It is started once the previous capture's page has
/// loaded, so that the renderer starts while that page settles (mostly
/// waiting) rather than while the next page loads.
pub(super) struct Spare {
    pub(super) context: String,
    pub(super) target: String,
    pub(super) session: String,
    /// Settings applied to it while it was made.
    pub(super) applied: HashMap<&'static str, Value>,
    /// The prelude installed in it: its source and identifier.
    pub(super) prelude: Option<(String, String)>,
}

/// What a spare page is given while it is made: the settings and prelude
/// of the capture before it, which the next one most likely shares.
#[derive(Default)]
pub(super) struct Carried {
    pub(super) settings: Vec<(&'static str, Value)>,
    pub(super) prelude: Option<String>,
}

/// A [`Spare`] being made.
pub(super) type SpareTask = tokio::task::JoinHandle<Result<Spare, CaptureError>>;

impl Spare {
    /// Makes one with `carried` applied. The context takes the browser's
    /// proxy settings (its command line), as no `proxyServer` is given, so
    /// its pages go through the filtering proxy too; it is disposed if our
    /// DevTools connection closes first (the session is being dropped).
    pub(super) async fn make(devtools: DevTools, carried: Carried) -> Result<Spare, CaptureError> {
        let made = devtools
            .send(
                None,
                "Target.createBrowserContext",
                json!({ "disposeOnDetach": true }),
            )
            .await?;
        let context = id_in(&made, "browserContextId")?;
        let made = devtools
            .send(
                None,
                "Target.createTarget",
                json!({
                    "url": "about:blank",
                    "browserContextId": context,
                    "width": WINDOW.0,
                    "height": WINDOW.1,
                }),
            )
            .await?;
        let target = id_in(&made, "targetId")?;
        let attached = devtools
            .send(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await?;
        let session = id_in(&attached, "sessionId")?;
        // Sent together (the page handles them in order): one wait for
        // the new renderer instead of one per command.
        let mut commands: Vec<(&str, Value)> = vec![
            ("Page.enable", json!({})),
            ("Network.enable", json!({})),
            ("Network.setCacheDisabled", json!({ "cacheDisabled": true })),
        ];
        commands.extend(carried.settings.iter().map(|(m, p)| (*m, p.clone())));
        if let Some(source) = &carried.prelude {
            commands.push((
                "Page.addScriptToEvaluateOnNewDocument",
                json!({ "source": source }),
            ));
        }
        let replies = futures_util::future::try_join_all(
            commands
                .into_iter()
                .map(|(method, params)| devtools.send(Some(&session), method, params)),
        )
        .await?;
        let prelude = match (carried.prelude, replies.last()) {
            (Some(source), Some(reply)) => Some((source, id_in(reply, "identifier")?)),
            _ => None,
        };
        let mut applied = fresh_page_settings();
        applied.extend(carried.settings);
        Ok(Spare {
            context,
            target,
            session,
            applied,
            prelude,
        })
    }

    /// Starts making one in the background. Once it is made, chromedriver
    /// is asked for its windows, which makes it attach to the new page now
    /// (about 10 ms) rather than when the session switches to it.
    pub(super) fn start(devtools: &DevTools, driver: &WebDriver, carried: Carried) -> SpareTask {
        let (devtools, driver) = (devtools.clone(), driver.clone());
        tokio::spawn(async move {
            let spare = Spare::make(devtools, carried).await?;
            // Only a head start: if it fails, the switch attaches.
            let _ = driver.windows().await;
            Ok(spare)
        })
    }

    /// The one `task` made.
    pub(super) async fn finish(task: SpareTask) -> Result<Spare, CaptureError> {
        task.await
            .map_err(|e| CaptureError::browser_from("making a browser context", e))?
    }
}

impl Page {
    /// What of this page's settings the next page is given (see
    /// [`CARRIED_SETTINGS`]), and its prelude.
    pub(super) fn carried(&self) -> Carried {
        let applied = self.applied.lock().expect("applied");
        Carried {
            settings: CARRIED_SETTINGS
                .iter()
                .filter_map(|m| Some((*m, applied.get(m)?.clone())))
                .collect(),
            prelude: self
                .prelude
                .lock()
                .expect("prelude")
                .as_ref()
                .map(|(source, _)| source.clone()),
        }
    }

    /// Makes the page of `spare` chromedriver's current window (the one
    /// it navigates).
    pub(super) async fn open(
        driver: &WebDriver,
        devtools: &DevTools,
        spare: Spare,
    ) -> Result<Page, CaptureError> {
        // Subscribed before chromedriver moves to it, ahead of any load.
        let navigations = Navigations::new(devtools.events(), &spare.session, &spare.target);
        // chromedriver names a window by its target's id.
        driver
            .switch_to_window(WindowHandle::from(spare.target.clone()))
            .await
            .map_err(|e| CaptureError::browser_from("switching to a fresh page", e))?;
        Ok(Page {
            context: spare.context,
            session: spare.session,
            applied: Mutex::new(spare.applied),
            prelude: Mutex::new(spare.prelude),
            fetch: Default::default(),
            made_in: Duration::ZERO,
            navigations: Mutex::new(navigations),
        })
    }
}

/// Settings a fresh page starts with, as [`super::Session::cdp_setting`] would
/// send them: a capture that asks for these sends nothing.
pub(super) fn fresh_page_settings() -> HashMap<&'static str, Value> {
    HashMap::from([
        ("Network.setBlockedURLs", json!({ "urls": [] })),
        ("Network.setExtraHTTPHeaders", json!({ "headers": {} })),
        (
            "Emulation.setTouchEmulationEnabled",
            json!({ "enabled": false, "maxTouchPoints": 1 }),
        ),
        (
            "Emulation.setScriptExecutionDisabled",
            json!({ "value": false }),
        ),
    ])
}

/// The string `field` of a CDP result.
pub(super) fn id_in(result: &Value, field: &str) -> Result<String, CaptureError> {
    result[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| CaptureError::browser(format!("no {field} in {result}")))
}

/// Our DevTools connection to the browser behind `driver`, and the first
/// page, in a browser context of its own.
pub(super) async fn first_page(driver: &WebDriver) -> Result<(DevTools, Page), CaptureError> {
    let opened = async {
        let devtools = DevTools::connect(driver).await?;
        let spare = Spare::make(devtools.clone(), Carried::default()).await?;
        let page = Page::open(driver, &devtools, spare).await?;
        Ok((devtools, page))
    };
    match tokio::time::timeout(SETUP_TIMEOUT, opened).await {
        Ok(opened) => opened,
        Err(_) => Err(CaptureError::browser("the browser did not answer in time")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends the main frame's (`F`) events, in order, and answers whether
    /// a navigation is pending after them.
    fn pending_after(events: &[(&str, Value)]) -> bool {
        let (send, receive) = tokio::sync::broadcast::channel(16);
        let mut navigations = Navigations::new(receive, "S", "F");
        for (method, params) in events {
            let event = Event {
                session: Some("S".into()),
                method: method.to_string(),
                params: params.clone(),
            };
            send.send(event).expect("sent");
        }
        navigations.pending()
    }

    #[test]
    fn a_navigation_is_pending_from_its_request_to_its_new_document() {
        let main = json!({ "frameId": "F" });
        let committed = ("Page.frameNavigated", json!({ "frame": { "id": "F" } }));
        let requested = ("Page.frameRequestedNavigation", main.clone());
        let loading = ("Page.frameStartedLoading", main.clone());
        let dom = ("Page.domContentEventFired", json!({}));
        let stopped = ("Page.frameStoppedLoading", main.clone());
        // The capture's own load, to its end.
        let load = [loading.clone(), committed.clone(), dom.clone()];
        assert!(!pending_after(&load));
        assert!(
            pending_after(&load[..2]),
            "loading, before DOMContentLoaded"
        );
        // A script sets `location` in a DOMContentLoaded handler: the old
        // document's event comes after the request and ends nothing.
        assert!(pending_after(&[
            loading.clone(),
            requested.clone(),
            dom.clone()
        ]));
        assert!(pending_after(&[requested.clone(), stopped.clone()]));
        // Its new document commits and loads.
        let moved = [
            requested.clone(),
            dom.clone(),
            committed.clone(),
            dom.clone(),
        ];
        assert!(!pending_after(&moved));
        let moved = [requested.clone(), committed.clone(), stopped.clone()];
        assert!(!pending_after(&moved));
        // A frame's navigation, or another page's, is not the page's.
        let child = json!({ "frameId": "child" });
        assert!(!pending_after(&[("Page.frameRequestedNavigation", child)]));
        let (send, receive) = tokio::sync::broadcast::channel(16);
        let mut navigations = Navigations::new(receive, "S", "F");
        let other = Event {
            session: Some("other".into()),
            method: requested.0.into(),
            params: main.clone(),
        };
        send.send(other).expect("sent");
        assert!(!navigations.pending());
    }

    #[test]
    fn lost_events_count_as_a_pending_navigation() {
        let (send, receive) = tokio::sync::broadcast::channel(2);
        let mut navigations = Navigations::new(receive, "S", "F");
        for _ in 0..3 {
            let event = Event {
                session: Some("S".into()),
                method: "Network.dataReceived".into(),
                params: json!({}),
            };
            send.send(event).expect("sent");
        }
        assert!(navigations.pending());
        assert!(!navigations.pending(), "known again once caught up");
    }
}
