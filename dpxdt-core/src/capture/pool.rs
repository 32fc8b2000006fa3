//! One engine's pool of browser sessions: a capture borrows one, gives it
//! back renewed (a fresh browser context) or replaces it when it may be
//! broken, and retries what may be transient.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::engines::Session;
use super::process::DriverProcess;
use super::{BrowserOptions, Capture, CaptureError, Probe, RENEW_TIMEOUT, SESSION_WAIT};
use crate::config::{CaptureConfig, Engine};

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) options: BrowserOptions,
    /// False once the browser is shutting down.
    pub(crate) open: AtomicBool,
    /// The engine's shared driver (chromedriver), if it has one.
    pub(crate) process: Mutex<Option<DriverProcess>>,
    pub(crate) driver_url: String,
    /// Idle sessions. A capture waits here for one; sessions come back
    /// after each capture, and broken ones are replaced in the background.
    pub(crate) pool_tx: mpsc::UnboundedSender<Session>,
    pub(crate) pool_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Session>>,
    /// Why the last session start failed, for a capture that waits in vain.
    pub(crate) last_start_error: Mutex<Option<String>>,
}

/// A session taken from the pool for one capture. Given back or replaced
/// explicitly; dropped without either (the capture was cancelled halfway),
/// it is replaced, since the browser may still be busy with the page.
struct Borrowed<'a> {
    inner: &'a Arc<Inner>,
    session: Option<Session>,
}

impl Borrowed<'_> {
    fn get(&self) -> &Session {
        self.session
            .as_ref()
            .expect("a borrowed session until returned")
    }

    /// Moves the session to a fresh browser context and then puts it back
    /// into the pool (or replaces it, if that fails), in the background:
    /// the capture's caller need not wait for it.
    fn renew_then_give_back(mut self) {
        let Some(mut session) = self.session.take() else {
            return;
        };
        let inner = Arc::clone(self.inner);
        tokio::spawn(async move {
            match tokio::time::timeout(RENEW_TIMEOUT, session.renew()).await {
                Ok(Ok(())) => inner.give_back(session),
                Ok(Err(e)) => {
                    if inner.open.load(Ordering::SeqCst) {
                        tracing::warn!(error = %e, "cannot renew a browser session");
                    } else {
                        // Killed under it as the browser shuts down (the
                        // end of every run): nothing went wrong.
                        tracing::debug!(error = %e, "browser shut down while renewing a session");
                    }
                    inner.replace(session);
                }
                Err(_) => {
                    tracing::warn!("renewing a browser session timed out");
                    inner.replace(session);
                }
            }
        });
    }

    /// Quits the session and starts another in its place (as dropping does).
    fn replace(self) {
        drop(self);
    }
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.inner.replace(s);
        }
    }
}

impl Inner {
    /// Starts `engine`'s pool with one session (so a broken install fails
    /// here, not at the first capture), and the others in the background.
    pub(crate) async fn launch(
        engine: Engine,
        options: BrowserOptions,
    ) -> Result<Arc<Inner>, CaptureError> {
        let process = match engine {
            Engine::Chromium => {
                let user = (super::process::is_root()
                    && options.as_root == super::AsRoot::Unprivileged)
                    .then(super::process::User::nobody);
                Some(
                    DriverProcess::start(
                        super::process::Driver::Chromedriver,
                        &options.chromedriver,
                        user.as_ref(),
                    )
                    .await?,
                )
            }
            // Each Firefox session has a geckodriver of its own.
            Engine::Firefox => None,
            Engine::Webkit => {
                return Err(CaptureError::launch(
                    "the webkit engine is not available yet: capture with \
                     \"browser\": \"chromium\" or \"firefox\"",
                ));
            }
        };
        let driver_url = process.as_ref().map(|p| p.url.clone()).unwrap_or_default();
        let first = Session::start(engine, &driver_url, &options).await?;
        let sessions = options.sessions.max(1);
        let (pool_tx, pool_rx) = mpsc::unbounded_channel();
        let _ = pool_tx.send(first);
        let inner = Arc::new(Inner {
            engine,
            options: BrowserOptions {
                sessions,
                ..options
            },
            open: AtomicBool::new(true),
            driver_url,
            process: Mutex::new(process),
            pool_tx,
            pool_rx: tokio::sync::Mutex::new(pool_rx),
            last_start_error: Mutex::new(None),
        });
        // Warm the other sessions up while the caller gets ready.
        for _ in 1..sessions {
            tokio::spawn(Arc::clone(&inner).add_session());
        }
        Ok(inner)
    }

    pub(crate) fn kill(&self) {
        self.open.store(false, Ordering::SeqCst);
        if let Ok(mut rx) = self.pool_rx.try_lock() {
            rx.close();
            while let Ok(s) = rx.try_recv() {
                s.abandon();
            }
        }
        if let Some(mut p) = self.process.lock().expect("process").take() {
            p.kill();
        }
    }

    pub(crate) async fn capture_with_retries(
        self: &Arc<Self>,
        url: &str,
        config: &CaptureConfig,
        probe: &Probe,
    ) -> Result<Capture, CaptureError> {
        let attempts = self.options.attempts.max(1);
        let mut earlier = String::new();
        let mut attempt = 1;
        loop {
            match self.capture_once(url, config, probe).await {
                Ok(mut c) => {
                    if !earlier.is_empty() {
                        c.log = format!("{earlier}{}", c.log);
                    }
                    return Ok(c);
                }
                Err(e) if attempt < attempts && e.is_retryable() => {
                    tracing::debug!(url, attempt, error = %e, "capture failed, retrying");
                    earlier.push_str(&format!("attempt {attempt} failed: {e}\n"));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Puts `session` back into the pool (forgets it when the browser is
    /// shutting down).
    fn give_back(&self, session: Session) {
        if let Err(mpsc::error::SendError(s)) = self.pool_tx.send(session) {
            s.abandon();
        }
    }

    /// Quits `session` in the background and starts another into the pool
    /// (only forgets it when the browser is shutting down).
    fn replace(self: &Arc<Self>, session: Session) {
        if self.pool_tx.is_closed() || tokio::runtime::Handle::try_current().is_err() {
            session.abandon();
            return;
        }
        session.discard();
        tokio::spawn(Arc::clone(self).add_session());
    }

    /// Starts one more session into the pool (retrying a little).
    pub(crate) async fn add_session(self: Arc<Self>) {
        for attempt in 0..3 {
            if !self.open.load(Ordering::SeqCst) {
                return; // shut down
            }
            match Session::start(self.engine, &self.driver_url, &self.options).await {
                Ok(s) => {
                    // A closed pool means the browser is shutting down.
                    if let Err(mpsc::error::SendError(s)) = self.pool_tx.send(s) {
                        s.abandon();
                    }
                    return;
                }
                Err(e) => {
                    if self.pool_tx.is_closed() || !self.open.load(Ordering::SeqCst) {
                        // The browser is shutting down.
                        return;
                    }
                    tracing::warn!(attempt, error = %e, "cannot start a browser session");
                    *self.last_start_error.lock().expect("error") = Some(e.to_string());
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Captures `configs[0]` as [`Inner::capture_with_retries`] does, then
    /// each further config (which differs from the one before only in media
    /// features) from the same load while the page cannot tell. Returns the
    /// results it has: fewer than `configs` when the page can tell or a
    /// re-take failed (the caller captures the rest on their own).
    pub(crate) async fn capture_one_load(
        self: &Arc<Self>,
        url: &str,
        configs: &[CaptureConfig],
    ) -> Vec<Result<Capture, CaptureError>> {
        let first = &configs[0];
        let session = match self.borrow().await {
            Ok(s) => s,
            Err(e) => return vec![Err(e)],
        };
        let timeout = first.page_timeout();
        let probe = Probe::default();
        let result = tokio::time::timeout(timeout, session.get().capture(url, first, &probe)).await;
        let mut out = Vec::new();
        let keep = match result {
            Ok(Ok(c)) => {
                out.push(Ok(c));
                true
            }
            Ok(Err(e)) => {
                let keep = e.keeps_session();
                out.push(Err(e));
                keep
            }
            Err(_) => {
                out.push(Err(CaptureError::Timeout {
                    url: url.to_string(),
                    timeout_ms: timeout.as_millis() as u64,
                }));
                false
            }
        };
        let mut broken = !keep;
        if out[0].is_ok() {
            for config in &configs[1..] {
                match session.get().media_blind().await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
                let again = tokio::time::timeout(
                    config.page_timeout(),
                    session.get().recapture_media(config),
                )
                .await;
                match again {
                    Ok(Ok(c)) => out.push(Ok(c)),
                    _ => {
                        broken = true;
                        break;
                    }
                }
            }
        }
        if broken {
            session.replace();
        } else {
            session.renew_then_give_back();
        }
        if out[0].as_ref().is_err_and(|e| e.is_retryable()) {
            // As a capture of its own would be: tried again.
            out[0] = self.capture_with_retries(url, first, &probe).await;
        }
        out
    }

    /// Takes a session from the pool, waiting for a free one.
    async fn borrow(self: &Arc<Self>) -> Result<Borrowed<'_>, CaptureError> {
        // Waiting for a busy pool is queueing, not the page's fault: the
        // capture's own timeout starts once it has a session.
        let mut rx = self.pool_rx.lock().await;
        match tokio::time::timeout(SESSION_WAIT, rx.recv()).await {
            Ok(Some(s)) => Ok(Borrowed {
                inner: self,
                session: Some(s),
            }),
            Ok(None) => Err(CaptureError::Closed),
            Err(_) => {
                let why = self.last_start_error.lock().expect("error").clone();
                Err(CaptureError::browser(format!(
                    "no browser session became free within {} s{}",
                    SESSION_WAIT.as_secs(),
                    why.map(|w| format!(" (last session start failed: {w})"))
                        .unwrap_or_default()
                )))
            }
        }
    }

    async fn capture_once(
        self: &Arc<Self>,
        url: &str,
        config: &CaptureConfig,
        probe: &Probe,
    ) -> Result<Capture, CaptureError> {
        let timeout = config.page_timeout();
        let session = self.borrow().await?;
        let result = tokio::time::timeout(timeout, session.get().capture(url, config, probe)).await;
        let keep = match &result {
            Ok(Ok(_)) => true,
            // A page-level failure leaves a usable session; anything else
            // may have broken it, so it is replaced.
            Ok(Err(e)) => e.keeps_session(),
            Err(_) => false,
        };
        if keep {
            session.renew_then_give_back();
        } else {
            session.replace();
        }
        match result {
            Ok(r) => r,
            Err(_) => Err(CaptureError::Timeout {
                url: url.to_string(),
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }
}

impl CaptureError {
    pub(crate) fn keeps_session(&self) -> bool {
        matches!(
            self,
            CaptureError::Load { .. }
                | CaptureError::Refused { .. }
                | CaptureError::HttpStatus { .. }
                | CaptureError::Selector(_)
                | CaptureError::Script(_)
        )
    }
}
