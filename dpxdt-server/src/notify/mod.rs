//! Notifications: when a release reaches review, its build's webhook gets a
//! Slack-compatible JSON POST, and (when the server has SMTP) each owner
//! with an e-mail address gets a message, all with the run counts and the
//! release link.
//!
//! A background task polls the database, so no release transition waits on
//! a remote server. Every channel (the webhook, each address) is a row of
//! its own: sent concurrently, and on failure logged and retried with
//! backoff independently of the others.
//!
//! Webhook URLs are set by build owners, so the server only calls public
//! addresses unless `Config::allow_private_webhooks` is on: otherwise an
//! owner could make it call services only it can reach (loopback, the
//! private network, a cloud metadata address). The host is resolved and
//! checked first, and the call is pinned to the checked addresses, so a
//! second DNS answer cannot send it elsewhere; redirects are not followed.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dpxdt_core::RunStatus;
use dpxdt_core::netpolicy::{AddressClass, classify, is_this_machine};

mod comments;
mod mail;

pub use mail::{MailConfig, MailConfigError};

use crate::AppState;
use crate::storage::notifications::{Channel, DueNotification};
use crate::storage::{notifications, statuses};
use mail::Mailer;

/// How often the notifier looks for releases that reached review.
const POLL: Duration = Duration::from_millis(500);
/// Tries per notification before it is given up.
pub const MAX_ATTEMPTS: i64 = 8;

/// The counts a notification tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Runs with a diff found.
    pub diffs: u64,
    /// Runs that failed.
    pub failed: u64,
    /// All runs.
    pub runs: u64,
}

impl Counts {
    /// The counts of `d`'s release.
    pub fn of(d: &DueNotification) -> Counts {
        let count = |s: RunStatus| {
            d.counts
                .iter()
                .find(|(x, _)| *x == s)
                .map_or(0, |(_, n)| *n)
        };
        Counts {
            diffs: count(RunStatus::DiffFound),
            failed: count(RunStatus::Failed),
            runs: d.counts.iter().map(|(_, n)| n).sum(),
        }
    }
}

/// The JSON body: Slack's `text`, plus the same facts as fields.
pub fn body(d: &DueNotification, link: &str) -> serde_json::Value {
    let Counts {
        diffs,
        failed,
        runs: total,
    } = Counts::of(d);
    serde_json::json!({
        "text": format!(
            "Release {} #{} of {} is ready for review: {diffs} diff(s), {failed} failed, {total} run(s). {link}",
            slack_escape(&d.name), d.number, slack_escape(&d.build_name)
        ),
        "build": d.build_name,
        "release_name": d.name,
        "release_number": d.number,
        "diffs": diffs,
        "failed": failed,
        "runs": total,
        "url": link,
        "branch": d.branch,
        "commit_sha": d.commit_sha,
    })
}

/// Text from a build owner, made inert in Slack's markup: `<!channel>`,
/// `<@user>` and `<url|label>` links need `<` and `>`, which Slack wants
/// escaped as entities (and so `&`).
pub(crate) fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// POSTs `body` to the webhook `url` (checked first, see
/// [`webhook_client`]); what failed, and whether for good.
pub(crate) async fn post_webhook(
    state: &AppState,
    url: &str,
    body: &serde_json::Value,
) -> Option<(String, bool)> {
    match webhook_client(url, state.config.allow_private_webhooks).await {
        Err(refused) => Some(refused),
        Ok(http) => match http.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some((format!("webhook answered {}", r.status()), false)),
            Err(e) => Some((format!("webhook failed: {e}"), false)),
        },
    }
}

/// When to try a failed send (`error`: what failed, and whether for good)
/// again after `attempts` failed tries: with a doubling backoff from 1 s,
/// unless the failure is permanent or the tries are used up.
pub(crate) fn retry_time(attempts: i64, error: &Option<(String, bool)>) -> Option<i64> {
    match error {
        Some((_, false)) if attempts + 1 < MAX_ATTEMPTS => {
            Some(crate::storage::now_ms() + (1000i64 << attempts.clamp(0, 8)))
        }
        _ => None,
    }
}

/// Starts the notifier; it stops when `stop` turns true.
pub fn spawn_notifier(
    state: AppState,
    addr: SocketAddr,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let base = state
        .config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let base = base.trim_end_matches('/').to_string();
    tokio::spawn(async move {
        let mailer = state.config.mail.as_ref().map(Mailer::new);
        if let Some(m) = &state.config.mail {
            tracing::info!(smtp = ?m, "e-mail notifications on");
        }
        loop {
            if let Err(e) = run_once(&state, mailer.as_ref(), &base).await {
                tracing::warn!(error = %e, "notifier");
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}

/// Mails `name` their invitation `link` at `to`, once (the person who
/// invited them sees the link too, should it not arrive).
pub async fn mail_invitation(
    config: &MailConfig,
    to: &str,
    name: &str,
    link: &str,
) -> Result<(), String> {
    let body = format!(
        "An account called {name} was made for you on Depicted, the visual review server.\n\
         \n\
         Choose your password here (the link works once, for seven days):\n\
         {link}\n"
    );
    let mailer = Mailer::new(config);
    let send = mailer.send_text(to, "[Depicted] Your account", body);
    match tokio::time::timeout(Duration::from_secs(20), send).await {
        Ok(sent) => sent,
        Err(_) => Err("the mail server did not answer within 20 seconds".into()),
    }
}

/// Sends every due notification once, all channels concurrently; returns
/// how many were tried. Without a mailer no e-mail is queued or sent.
pub(crate) async fn run_once(
    state: &AppState,
    mailer: Option<&Mailer>,
    base: &str,
) -> Result<usize, crate::storage::StoreError> {
    let mail = mailer.is_some();
    let due = state
        .store
        .call(move |c| notifications::due_notifications(c, mail))
        .await?;
    let statuses = state.store.call(|c| statuses::due_statuses(c)).await?;
    let n = due.len() + statuses.len();
    let sends = due.into_iter().map(|d| send_one(state, mailer, base, d));
    for result in futures_util::future::join_all(sends).await {
        result?;
    }
    let posts = statuses.into_iter().map(|d| send_status(state, base, d));
    for result in futures_util::future::join_all(posts).await {
        result?;
    }
    let comments = comments::run_once(state, mailer, base).await?;
    Ok(n + comments)
}

/// Posts one commit status (`POST {api}/repos/{repo}/statuses/{sha}`, as
/// GitHub's statuses API takes it) and records the outcome: sent, retried
/// with backoff, or given up (refused by the API, or after MAX_ATTEMPTS).
async fn send_status(
    state: &AppState,
    base: &str,
    d: statuses::DueStatus,
) -> Result<(), crate::storage::StoreError> {
    let link = format!(
        "{base}{}",
        crate::storage::results_url_path(d.build_id, &d.name, d.number)
    );
    let url = format!(
        "{}/repos/{}/statuses/{}",
        d.api.trim_end_matches('/'),
        d.repo,
        d.commit_sha
    );
    let token = state
        .store
        .secret_key()
        .and_then(|k| statuses::open_token(k, &d.token, d.build_id, &d.api))
        .map(|t| String::from_utf8_lossy(&t).into_owned());
    // (error, permanent)
    let error = match token {
        Err(e) => Some((format!("the token cannot be read: {e}"), true)),
        Ok(token) => match webhook_client(&url, state.config.allow_private_webhooks).await {
            Err(refused) => Some(refused),
            Ok(http) => {
                let body = serde_json::json!({
                    "state": d.state,
                    "target_url": link,
                    "description": d.description,
                    "context": format!("depicted/{}", d.build_name),
                });
                let sent = http
                    .post(&url)
                    .bearer_auth(token)
                    .header("accept", "application/vnd.github+json")
                    .header("user-agent", "depicted")
                    .header("x-github-api-version", "2022-11-28")
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => None,
                    // Refused for good (bad token, no such repository or
                    // commit), except when it asks us to slow down.
                    Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                        Some((format!("the statuses API answered {}", r.status()), true))
                    }
                    Ok(r) => Some((format!("the statuses API answered {}", r.status()), false)),
                    Err(e) => Some((format!("the statuses API failed: {e}"), false)),
                }
            }
        },
    };
    let retry_at = match &error {
        Some((e, false)) if d.attempts + 1 < MAX_ATTEMPTS => {
            tracing::warn!(release = %d.release_id, error = %e, "commit status failed; will retry");
            Some(crate::storage::now_ms() + (1000i64 << d.attempts.clamp(0, 8)))
        }
        Some((e, _)) => {
            tracing::error!(release = %d.release_id, error = %e, "commit status given up");
            None
        }
        None => None,
    };
    let error = error.map(|(e, _)| e);
    state
        .store
        .call(move |c| statuses::status_done(c, &d, error.as_deref(), retry_at))
        .await
}

/// Sends one notification and records the outcome.
async fn send_one(
    state: &AppState,
    mailer: Option<&Mailer>,
    base: &str,
    d: DueNotification,
) -> Result<(), crate::storage::StoreError> {
    let link = format!(
        "{base}{}",
        crate::storage::results_url_path(d.build_id, &d.name, d.number)
    );
    // (error, permanent)
    let error = match (&d.channel, mailer) {
        (Channel::Webhook(url), _) => post_webhook(state, url, &body(&d, &link)).await,
        (Channel::Mail(to), Some(mailer)) => match mailer.send(&d, to, &link).await {
            Ok(()) => None,
            Err(e) => Some((e.message, e.permanent)),
        },
        // Not queued without a mailer.
        (Channel::Mail(_), None) => return Ok(()),
    };
    let channel = match &d.channel {
        // A webhook URL is often a secret: not in the log.
        Channel::Webhook(_) => "webhook".to_string(),
        Channel::Mail(to) => format!("mail to {to}"),
    };
    let retry_at = match &error {
        Some((e, false)) if d.attempts + 1 < MAX_ATTEMPTS => {
            tracing::warn!(release = %d.release_id, %channel, error = %e, "notification failed; will retry");
            let backoff = 1000i64 << d.attempts.clamp(0, 8);
            Some(crate::storage::now_ms() + backoff)
        }
        Some((e, _)) => {
            tracing::error!(release = %d.release_id, %channel, error = %e, "notification given up");
            None
        }
        None => None,
    };
    let error = error.map(|(e, _)| e);
    state
        .store
        .call(move |c| notifications::notification_done(c, &d, error.as_deref(), retry_at))
        .await
}

/// Checks a commit-status target before it is saved: `GET
/// {api}/repos/{repo}` with the token must answer 2xx. The error says what
/// went wrong in words for the person who typed it.
pub(crate) async fn probe_status_api(
    api: &str,
    repo: &str,
    token: &str,
    allow_private: bool,
) -> Result<(), String> {
    let url = format!("{}/repos/{repo}", api.trim_end_matches('/'));
    let http = webhook_client(&url, allow_private)
        .await
        .map_err(|(e, _)| e)?;
    let answer = http
        .get(&url)
        .bearer_auth(token)
        .header("accept", "application/vnd.github+json")
        .header("user-agent", "depicted")
        .send()
        .await
        .map_err(|e| format!("cannot reach {api}: {e}"))?;
    match answer.status().as_u16() {
        200..=299 => Ok(()),
        401 | 403 => Err(format!(
            "{api} refused the token ({}) for {repo}",
            answer.status()
        )),
        404 => Err(format!(
            "{api} has no repository {repo} (or the token cannot see it)"
        )),
        _ => Err(format!("{api} answered {} for {repo}", answer.status())),
    }
}

/// A client for one call to the webhook at `url`, pinned to the addresses
/// its host resolves to now, after checking they are public (unless
/// `allow_private`). The error says why not and whether that is permanent.
pub(crate) async fn webhook_client(
    url: &str,
    allow_private: bool,
) -> Result<reqwest::Client, (String, bool)> {
    let parsed =
        url::Url::parse(url).map_err(|e| (format!("webhook URL is invalid: {e}"), true))?;
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| ("webhook URL has no port".to_string(), true))?;
    let (name, addrs): (String, Vec<SocketAddr>) = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
        Some(url::Host::Domain(domain)) => {
            let found = tokio::net::lookup_host((domain, port))
                .await
                .map_err(|e| (format!("webhook host {domain} not found: {e}"), false))?;
            (domain.to_string(), found.collect())
        }
        None => return Err(("webhook URL has no host".to_string(), true)),
    };
    if !allow_private && let Some(a) = addrs.iter().find(|a| is_internal(a.ip())) {
        return Err((
            format!(
                "webhook host {name} is at {}, an internal address (loopback, private or \
                 link-local network); the server calls only public addresses unless \
                 started with --allow-private-webhooks",
                a.ip()
            ),
            true,
        ));
    }
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(url::Host::Domain(domain)) = parsed.host() {
        builder = builder.resolve_to_addrs(domain, &addrs);
    }
    builder
        .build()
        .map_err(|e| (format!("webhook client: {e}"), false))
}

/// Whether `ip` is an address a server should not be made to call on a
/// build owner's word: anything but a public address (loopback, private,
/// shared, link-local where cloud metadata lives, reserved; IPv4 addresses
/// inside IPv6 by the address they carry), and any address of this
/// machine's own interfaces, public or not.
fn is_internal(ip: IpAddr) -> bool {
    classify(ip) != AddressClass::Public || is_this_machine(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_markup_in_names_is_inert() {
        assert_eq!(
            slack_escape("<!channel> & <http://x|y>"),
            "&lt;!channel&gt; &amp; &lt;http://x|y&gt;"
        );
    }

    #[test]
    fn internal_addresses_are_told_from_public_ones() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
            "198.18.0.1",
            "240.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip} is internal");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[tokio::test]
    async fn a_webhook_url_naming_an_internal_host_is_refused_before_any_call() {
        // This machine's own interface addresses too, however public they
        // are (the server itself, and whatever listens on 0.0.0.0 beside it).
        let own: Vec<String> = if_addrs::get_if_addrs()
            .unwrap()
            .iter()
            .filter(|i| !i.ip().is_loopback())
            .map(|i| match i.ip() {
                IpAddr::V4(v4) => format!("http://{v4}:9/x"),
                IpAddr::V6(v6) => format!("http://[{v6}]:9/x"),
            })
            .collect();
        assert!(
            !own.is_empty(),
            "this test needs a non-loopback interface address"
        );
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::1]:9/x",
            "http://localhost:9/x",
            "http://169.254.169.254/latest",
            "http://0.0.0.0:9/x",
        ]
        .into_iter()
        .chain(own.iter().map(String::as_str))
        {
            let Err((why, permanent)) = webhook_client(url, false).await else {
                panic!("{url} was allowed");
            };
            assert!(
                permanent && why.contains("internal address"),
                "{url}: {why}"
            );
            assert!(
                webhook_client(url, true).await.is_ok(),
                "{url} with private allowed"
            );
        }
    }
}
