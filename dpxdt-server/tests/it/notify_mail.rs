//! E-mail notifications over a real SMTP conversation: a tiny SMTP
//! receiver on `127.0.0.1:0` records what the server sends when a release
//! reported through the API reaches review, refuses on demand (451 once,
//! 550 for good) to prove retries and that each channel goes on its own.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::ui::{Browser, Page, UiServer};
use dpxdt_core::api::ReportRunRequest;
use dpxdt_core::{BuildId, ReleaseKey};
use dpxdt_server::Config;
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);

/// One message the receiver accepted.
#[derive(Debug, Clone, Default)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

/// What the receiver saw.
#[derive(Debug, Default, Clone)]
struct Seen {
    connections: usize,
    mails: Vec<Mail>,
    /// Decoded AUTH PLAIN payloads.
    auth: Vec<String>,
    /// Recipients refused, with the code.
    refused: Vec<(String, u16)>,
}

/// How the receiver answers.
#[derive(Debug, Default)]
struct Rules {
    /// Refuse this many RCPT commands with 451 (try again later) first.
    temp_failures: usize,
    /// Addresses refused with 550 (no such mailbox) every time.
    reject: Vec<String>,
}

/// A minimal SMTP server (RFC 5321: greeting, EHLO/HELO, AUTH PLAIN, MAIL,
/// RCPT, DATA with dot-stuffing, RSET, NOOP, QUIT).
struct SmtpReceiver {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    changed: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpReceiver {
    async fn start(rules: Rules) -> SmtpReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let rules = Arc::new(Mutex::new(rules));
        let (tx, changed) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let state = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (seen, rules, tx) = (state.clone(), rules.clone(), tx.clone());
                tokio::spawn(async move {
                    seen.lock().unwrap().connections += 1;
                    tx.send_modify(|n| *n += 1);
                    let _ = converse(stream, &seen, &rules, &tx).await;
                });
            }
        });
        SmtpReceiver {
            port,
            seen,
            changed,
            task,
        }
    }

    /// A copy of what the receiver saw so far.
    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `cond` holds for what the receiver saw.
    async fn until(&self, what: &str, cond: impl Fn(&Seen) -> bool) {
        let mut rx = self.changed.clone();
        let waited = tokio::time::timeout(WAIT, async {
            loop {
                rx.borrow_and_update();
                if cond(&self.seen.lock().unwrap()) {
                    return;
                }
                rx.changed().await.unwrap();
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "timed out waiting for {what}: {:?}",
            self.seen.lock().unwrap()
        );
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn converse(
    stream: tokio::net::TcpStream,
    seen: &Mutex<Seen>,
    rules: &Mutex<Rules>,
    tx: &watch::Sender<usize>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 mail.test ESMTP ready\r\n").await?;
    let mut mail = Mail::default();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-mail.test\r\n250-8BITMIME\r\n250 AUTH PLAIN".into()
        } else if upper.starts_with("HELO") {
            "250 mail.test".into()
        } else if upper.starts_with("AUTH PLAIN") {
            let mut payload = line[10..].trim().to_string();
            if payload.is_empty() {
                write.write_all(b"334 \r\n").await?;
                payload = lines.next_line().await?.unwrap_or_default();
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(payload.trim())
                .unwrap_or_default();
            seen.lock()
                .unwrap()
                .auth
                .push(String::from_utf8_lossy(&decoded).into_owned());
            "235 2.7.0 authenticated".into()
        } else if upper.starts_with("MAIL FROM:") {
            mail = Mail {
                from: angle(&line),
                ..Mail::default()
            };
            "250 2.1.0 ok".into()
        } else if upper.starts_with("RCPT TO:") {
            let to = angle(&line);
            let code = {
                let mut rules = rules.lock().unwrap();
                if rules.reject.contains(&to) {
                    550
                } else if rules.temp_failures > 0 {
                    rules.temp_failures -= 1;
                    451
                } else {
                    250
                }
            };
            if code == 250 {
                mail.to.push(to);
                "250 2.1.5 ok".into()
            } else {
                seen.lock().unwrap().refused.push((to, code));
                tx.send_modify(|n| *n += 1);
                if code == 451 {
                    "451 4.3.0 try again later".into()
                } else {
                    "550 5.1.1 no such mailbox".into()
                }
            }
        } else if upper == "DATA" {
            if mail.to.is_empty() {
                "503 5.5.1 no recipients".into()
            } else {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                while let Some(l) = lines.next_line().await? {
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    data.push('\n');
                }
                mail.data = data;
                seen.lock().unwrap().mails.push(std::mem::take(&mut mail));
                tx.send_modify(|n| *n += 1);
                "250 2.0.0 queued".into()
            }
        } else if upper == "RSET" {
            mail = Mail::default();
            "250 ok".into()
        } else if upper == "NOOP" {
            "250 ok".into()
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 not implemented".into()
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
    Ok(())
}

/// The address between `<` and `>` of a MAIL or RCPT command.
fn angle(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| i + start);
    line[start..end].to_string()
}

/// A webhook receiver that accepts every call.
struct Webhook {
    url: String,
    calls: Arc<Mutex<Vec<serde_json::Value>>>,
    changed: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Webhook {
    async fn start() -> Webhook {
        use warp::Filter;
        let calls: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let (tx, changed) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let seen = calls.clone();
        let hook = warp::post()
            .and(warp::body::json())
            .map(move |body: serde_json::Value| {
                seen.lock().unwrap().push(body);
                tx.send_modify(|n| *n += 1);
                "ok"
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(warp::serve(hook).incoming(listener).run());
        Webhook {
            url,
            calls,
            changed,
            task,
        }
    }

    async fn until_calls(&self, n: usize) {
        let mut rx = self.changed.clone();
        let waited = tokio::time::timeout(WAIT, rx.wait_for(|c| *c >= n)).await;
        assert!(waited.is_ok(), "webhook not called {n} time(s)");
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server with workers off and users `alice`, `bob`, `carol` (password
/// `NAME-password`), with the given e-mail addresses; `tweak` adjusts the config.
async fn start(emails: &[(&str, &str)], tweak: impl FnOnce(&mut Config)) -> UiServer {
    let users = [("alice", false), ("bob", false), ("carol", false)];
    let server = UiServer::start(&users, tweak).await;
    for (name, email) in emails {
        dpxdt_server::ui::set_user_email(&server.store, name, email).unwrap();
    }
    server
}

/// Waits until the build's activity log contains `needle`; returns the page.
async fn until_logged(b: &mut Browser, build: i64, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = b.get(&format!("/build?id={build}")).await.body;
        if page.contains(needle) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{needle} not in the activity log: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Entries of type `log_type` in a build page's activity log.
fn log_entries(page: &str, log_type: &str) -> Vec<String> {
    let needle = format!("<strong>{log_type}</strong>");
    page.split("<li>")
        .filter(|li| li.contains(&needle))
        .map(|li| li.split("</li>").next().unwrap().to_string())
        .collect()
}

/// Sets `build`'s webhook (keeping its name `name`), then reports release
/// `r1` with a new key of the build (see [`report_release`]).
async fn hook_and_report(
    server: &UiServer,
    owner: &mut Browser,
    build: i64,
    name: &str,
    hook: &str,
) {
    let bs = build.to_string();
    let Page { status, body, .. } = owner
        .act(
            "/build/settings",
            &[("build_id", &bs), ("name", name), ("webhook_url", hook)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let key = owner.create_key(build).await;
    report_release(&server.base, build, &key).await;
}

/// Reports release `r1` through the API: one run with a diff, one failed,
/// one the same as its reference, then runs_done (so it reaches review).
async fn report_release(base: &str, build: i64, key: &(String, String)) {
    let client = dpxdt_client::Client::builder(base)
        .api_key(&key.0, &key.1)
        .retries(0)
        .build()
        .unwrap();
    let b = BuildId(build);
    let rel = client
        .create_release(b, "r1", "https://ci.example/1")
        .await
        .unwrap();
    let white = client
        .upload_bytes(b, "ref.png", common::png(4, 4, [255; 4], None))
        .await
        .unwrap();
    let red = client
        .upload_bytes(b, "new.png", common::png(4, 4, [255, 0, 0, 255], None))
        .await
        .unwrap();
    let runs = [
        ("/diff", Some(red.sha1sum.clone()), None),
        ("/broken", None, Some("page did not load".to_string())),
        ("/same", Some(white.sha1sum.clone()), None),
    ];
    for (run, image, failed) in runs {
        let diff = run == "/diff";
        client
            .report_run(&ReportRunRequest {
                build_id: b,
                release_name: "r1".into(),
                release_number: rel.release_number,
                run_name: run.into(),
                url: Some(format!("https://site.example{run}")),
                image,
                ref_image: Some(white.sha1sum.clone()),
                diff_image: diff.then(|| red.sha1sum.clone()),
                distortion: failed.is_none().then_some(if diff { 1.0 } else { 0.0 }),
                run_failed: failed,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    client
        .runs_done(&ReleaseKey {
            build_id: b,
            release_name: "r1".into(),
            release_number: rel.release_number,
        })
        .await
        .unwrap();
}

fn mail_config(port: u16) -> dpxdt_server::notify::MailConfig {
    dpxdt_server::notify::MailConfig::new(
        &format!("smtp://dpxdt:p%40ss%3Aw0rd@127.0.0.1:{port}"),
        "Depicted <dpxdt@example.test>",
    )
    .unwrap()
}

#[tokio::test]
async fn an_owner_is_mailed_the_counts_and_link_after_one_refused_attempt() {
    let smtp = SmtpReceiver::start(Rules {
        temp_failures: 1,
        ..Rules::default()
    })
    .await;
    let server = start(&[], |c| {
        c.mail = Some(mail_config(smtp.port));
        c.public_url = Some("https://review.example.test/".into());
    })
    .await;
    let mut alice = server.login("alice").await;

    // Alice gives her address on her account page (CSRF-checked, validated).
    let Page {
        status, body: page, ..
    } = alice.get("/account").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("no SMTP configured"), "{page}");
    let Page { status, .. } = alice
        .post("/account", &[("email", "alice@example.test")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token");
    let Page { status, .. } = alice.act("/account", &[("email", "not an address")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let Page { status, .. } = alice
        .act("/account", &[("email", "Alice@Example.test")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let Page { body: page, .. } = alice.get("/account?saved=1").await;
    assert!(page.contains("value=\"Alice@Example.test\""), "{page}");
    // An address only says where mail goes and grants nothing, so
    // setting one never reveals that another account has it.
    let mut bob = server.login("bob").await;
    let Page { status, .. } = bob
        .act("/account", &[("email", "alice@example.TEST")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // Logged out, the account page asks to log in.
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = anon
        .get(format!("{}/account", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let build = alice.create_build("shop", false).await;
    let key = alice.create_key(build).await;
    report_release(&server.base, build, &key).await;

    smtp.until("the mail", |s| !s.mails.is_empty()).await;
    let seen = smtp.seen();
    // The first try was refused with 451, the second delivered.
    assert_eq!(seen.refused, vec![("Alice@Example.test".to_string(), 451)]);
    assert_eq!(seen.connections, 2);
    assert_eq!(seen.auth[0], "\0dpxdt\0p@ss:w0rd");
    assert_eq!(seen.mails.len(), 1);
    let mail = &seen.mails[0];
    assert_eq!(mail.from, "dpxdt@example.test");
    assert_eq!(mail.to, vec!["Alice@Example.test".to_string()]);
    let data = &mail.data;
    assert!(
        data.contains("Subject: [Depicted] shop: release r1 #1 is ready for review (1 diff)"),
        "{data}"
    );
    assert!(
        data.contains("From: Depicted <dpxdt@example.test>"),
        "{data}"
    );
    assert!(data.contains("To: Alice@Example.test"), "{data}");
    assert!(data.contains("Content-Type: text/plain"), "{data}");
    assert!(data.contains("Diffs found: 1\n"), "{data}");
    assert!(data.contains("Failed runs: 1\n"), "{data}");
    assert!(data.contains("Runs:        3\n"), "{data}");
    assert!(
        data.contains(&format!(
            "\nhttps://review.example.test/release?build_id={build}&name=r1&number=1\n"
        )),
        "{data}"
    );

    // Both tries are in the activity log, with the address.
    let page = until_logged(&mut alice, build, "<strong>notify_mail</strong>").await;
    let retries = log_entries(&page, "notify_retry");
    assert_eq!(retries.len(), 1, "{page}");
    assert!(retries[0].contains("r1 #1 to Alice@Example.test: mail failed"));
    assert!(retries[0].contains("451"), "{}", retries[0]);
    let sent = log_entries(&page, "notify_mail");
    assert_eq!(sent.len(), 1, "{page}");
    assert!(
        sent[0].ends_with("<strong>notify_mail</strong> r1 #1 to Alice@Example.test"),
        "{}",
        sent[0]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_refused_address_and_an_owner_without_one_stop_neither_the_webhook_nor_the_others() {
    let smtp = SmtpReceiver::start(Rules {
        reject: vec!["bounce@example.test".into()],
        ..Rules::default()
    })
    .await;
    let hook = Webhook::start().await;
    let server = start(
        &[
            ("alice", "alice@example.test"),
            ("carol", "bounce@example.test"),
        ],
        |c| c.mail = Some(mail_config(smtp.port)),
    )
    .await;
    let mut alice = server.login("alice").await;
    let build = alice.create_build("shared", false).await;
    let bs = build.to_string();
    // Bob (no address) and Carol are invited by name and accept.
    for user in ["bob", "carol"] {
        let Page {
            status, body: page, ..
        } = alice
            .act(
                "/build/owners",
                &[("build_id", &bs), ("user", user), ("action", "add")],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        let mut them = server.login(user).await;
        let Page { status, body, .. } = them
            .act(
                "/account/invite",
                &[("build_id", &bs), ("answer", "accept")],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    }
    let Page { body: page, .. } = alice.get(&format!("/build?id={build}")).await;
    assert!(
        page.contains("<strong>accept_invite</strong> carol"),
        "{page}"
    );
    assert!(page.contains("carol <span class=\"who\">&lt;bounce@example.test&gt;</span>"));
    hook_and_report(&server, &mut alice, build, "shared", &hook.url).await;

    hook.until_calls(1).await;
    smtp.until("alice's mail and carol's refusal", |s| {
        !s.mails.is_empty() && !s.refused.is_empty()
    })
    .await;
    let body = hook.calls.lock().unwrap()[0].clone();
    assert_eq!(
        (body["diffs"].as_u64(), body["failed"].as_u64()),
        (Some(1), Some(1))
    );
    // A permanent refusal (550) is given up at once, not retried.
    let page = until_logged(&mut alice, build, "<strong>notify_failed</strong>").await;
    let failed = log_entries(&page, "notify_failed");
    assert_eq!(failed.len(), 1, "{page}");
    assert!(
        failed[0].contains("to bounce@example.test: mail failed"),
        "{}",
        failed[0]
    );
    assert!(failed[0].contains("550"), "{}", failed[0]);
    assert!(log_entries(&page, "notify_retry").is_empty(), "{page}");
    assert_eq!(log_entries(&page, "notify_webhook").len(), 1, "{page}");
    let page = until_logged(&mut alice, build, "<strong>notify_mail</strong>").await;
    let sent = log_entries(&page, "notify_mail");
    assert_eq!(sent.len(), 1, "{page}");
    assert!(sent[0].contains("to alice@example.test"));
    let seen = smtp.seen();
    assert_eq!(seen.refused, vec![("bounce@example.test".to_string(), 550)]);
    assert_eq!(seen.mails.len(), 1);
    assert_eq!(seen.mails[0].to, vec!["alice@example.test".to_string()]);
    server.stop().await;
}

/// By default the server calls only public addresses: a build owner must
/// not be able to point it at services only it can reach.
#[tokio::test]
async fn a_webhook_at_an_internal_address_is_refused_unless_allowed() {
    let hook = Webhook::start().await; // on 127.0.0.1
    let server = start(&[], |c| c.allow_private_webhooks = false).await;
    let mut alice = server.login("alice").await;
    let build = alice.create_build("guarded", false).await;
    hook_and_report(&server, &mut alice, build, "guarded", &hook.url).await;
    let page = until_logged(&mut alice, build, "<strong>notify_failed</strong>").await;
    let failed = log_entries(&page, "notify_failed");
    assert_eq!(failed.len(), 1, "{page}");
    assert!(
        failed[0].contains("127.0.0.1") && failed[0].contains("--allow-private-webhooks"),
        "{}",
        failed[0]
    );
    assert!(log_entries(&page, "notify_retry").is_empty(), "{page}");
    assert!(
        hook.calls.lock().unwrap().is_empty(),
        "the webhook was called"
    );
    server.stop().await;
}

#[tokio::test]
async fn without_smtp_the_webhook_is_still_called_and_no_mail_is_sent() {
    let smtp = SmtpReceiver::start(Rules::default()).await;
    let hook = Webhook::start().await;
    let server = start(&[("alice", "alice@example.test")], |_| {}).await;
    let mut alice = server.login("alice").await;
    let Page { body: page, .. } = alice.get("/account").await;
    assert!(page.contains("value=\"alice@example.test\""), "{page}");
    assert!(page.contains("no SMTP configured"), "{page}");
    let build = alice.create_build("quiet", false).await;
    hook_and_report(&server, &mut alice, build, "quiet", &hook.url).await;
    hook.until_calls(1).await;
    let page = until_logged(&mut alice, build, "<strong>notify_webhook</strong>").await;
    assert_eq!(hook.calls.lock().unwrap()[0]["runs"], 3);
    for absent in ["notify_mail", "notify_retry", "notify_failed"] {
        assert!(log_entries(&page, absent).is_empty(), "{absent}: {page}");
    }
    assert_eq!(smtp.seen.lock().unwrap().connections, 0);
    server.stop().await;
}

#[test]
fn smtp_settings_are_checked_and_the_password_is_never_shown() {
    use dpxdt_server::notify::MailConfig;
    let c = MailConfig::new("smtp://relay.internal", "dpxdt@example.test").unwrap();
    let shown = format!("{c:?}");
    assert!(
        shown.contains("relay.internal") && shown.contains("port: 25"),
        "{shown}"
    );
    let c = MailConfig::new("smtp://u:s%65cret@relay:2525", "D <d@example.test>").unwrap();
    let shown = format!("{c:?}");
    assert!(shown.contains("2525") && !shown.contains("secret") && !shown.contains("s%65"));
    #[cfg(not(feature = "mail-tls"))]
    {
        let e = MailConfig::new("smtps://u:hunter2@relay", "d@example.test")
            .unwrap_err()
            .to_string();
        assert!(e.contains("TLS is not built into this server"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
    #[cfg(feature = "mail-tls")]
    for (url, shown) in [
        ("smtps://relay.example", "port: 465, security: \"tls\""),
        (
            "smtp+starttls://relay.example",
            "port: 587, security: \"starttls\"",
        ),
    ] {
        let c = MailConfig::new(url, "d@example.test").unwrap();
        assert!(format!("{c:?}").contains(shown), "{c:?}");
    }
    for (url, why) in [
        ("http://relay", "scheme must be smtp"),
        ("smtp://relay/path", "no path"),
        ("not a url", "SMTP URL"),
    ] {
        let e = MailConfig::new(url, "d@example.test")
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{url}: {e}");
    }
    let e = MailConfig::new("smtp://u:hunter2@relay/x", "d@example.test")
        .unwrap_err()
        .to_string();
    assert!(!e.contains("hunter2"), "{e}");
    let e = MailConfig::new("smtp://relay", "nobody")
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"nobody\" is not an e-mail address"), "{e}");
}

#[tokio::test]
async fn a_webhook_that_never_answers_does_not_hold_the_mail_back() {
    let smtp = SmtpReceiver::start(Rules::default()).await;
    // A webhook that accepts the connection and then says nothing.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", hang.local_addr().unwrap());
    let (conn_tx, conn_rx) = tokio::sync::oneshot::channel();
    let holder = tokio::spawn(async move {
        let (stream, _) = hang.accept().await.unwrap();
        let _ = conn_tx.send(stream);
    });
    let server = start(&[("alice", "alice@example.test")], |c| {
        c.mail = Some(mail_config(smtp.port));
    })
    .await;
    let mut alice = server.login("alice").await;
    let build = alice.create_build("slow-hook", false).await;
    hook_and_report(&server, &mut alice, build, "slow-hook", &hook_url).await;

    // The mail arrives while the webhook call is still waiting for an answer.
    smtp.until("the mail", |s| !s.mails.is_empty()).await;
    let stream = tokio::time::timeout(WAIT, conn_rx)
        .await
        .expect("the webhook is called")
        .unwrap();
    let page = until_logged(&mut alice, build, "<strong>notify_mail</strong>").await;
    assert!(log_entries(&page, "notify_webhook").is_empty(), "{page}");
    assert!(log_entries(&page, "notify_retry").is_empty(), "{page}");
    // Hanging up fails the call, which is then retried later.
    drop(stream);
    let page = until_logged(&mut alice, build, "<strong>notify_retry</strong>").await;
    assert!(
        log_entries(&page, "notify_retry")[0].contains("webhook failed"),
        "{page}"
    );
    holder.await.unwrap();
    server.stop().await;
}

/// A superuser invites someone with an address: the one-time link is
/// mailed and shown; the invited person chooses a password through it and
/// is logged in; the link then works no more, and the password logs in.
#[tokio::test]
async fn a_superuser_invites_someone_by_mail_and_the_link_works_once() {
    let smtp = SmtpReceiver::start(Rules::default()).await;
    let server = UiServer::start(&[("root", true)], |c| {
        c.mail = Some(mail_config(smtp.port));
        c.public_url = Some("https://review.example.test".into());
    })
    .await;
    let mut root = server.login("root").await;
    let page = root
        .act(
            "/users/invite",
            &[("name", "dana"), ("email", "dana@example.test")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("The link was mailed to dana@example.test."),
        "{}",
        page.body
    );
    let link = page.text_of("invite-link").replace("&#x3D;", "=");
    let path = link
        .strip_prefix("https://review.example.test")
        .expect("the link starts with the public URL")
        .to_string();
    let seen = smtp.seen();
    assert_eq!(seen.mails.len(), 1);
    assert_eq!(seen.mails[0].to, vec!["dana@example.test".to_string()]);
    // The body is quoted-printable: soft line breaks and `=3D` for `=`.
    let body = seen.mails[0]
        .data
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    assert!(body.contains(&link), "{body}");
    // The name is taken now.
    let again = root.act("/users/invite", &[("name", "dana")]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);

    let mut dana = server.browser();
    let form = dana.get(&path).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let (t, csrf) = (form.input("token"), form.input("csrf"));
    // Without the form's own CSRF token (another site's post): refused.
    let forged = server
        .browser()
        .post(
            "/welcome",
            &[
                ("token", &t),
                ("password", "a-long-secret"),
                ("password_again", "a-long-secret"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let differ = dana
        .post(
            "/welcome",
            &[
                ("token", &t),
                ("csrf", &csrf),
                ("password", "a-long-secret"),
                ("password_again", "a-long-secrex"),
            ],
        )
        .await;
    assert_eq!(differ.status, StatusCode::BAD_REQUEST);
    let done = dana
        .post(
            "/welcome",
            &[
                ("token", &t),
                ("csrf", &csrf),
                ("password", "a-long-secret"),
                ("password_again", "a-long-secret"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let home = dana.get("/").await;
    assert!(home.body.contains(">dana</a>"), "logged in: {}", home.body);
    let used = server.browser().get(&path).await;
    assert_eq!(used.status, StatusCode::GONE);
    assert!(
        used.body.contains("it was used, it expired"),
        "{}",
        used.body
    );
    let mut other = server.browser();
    let fresh = other.get("/login").await.input("csrf");
    let replay = other
        .post(
            "/welcome",
            &[
                ("token", &t),
                ("csrf", &fresh),
                ("password", "takeover-pw"),
                ("password_again", "takeover-pw"),
            ],
        )
        .await;
    assert_eq!(replay.status, StatusCode::GONE);
    let mut later = server.browser();
    assert_eq!(
        later.login("dana", "a-long-secret").await.status,
        StatusCode::SEE_OTHER
    );
    server.stop().await;
}

/// A comment is announced to the build's webhook and mailed to every other
/// owner, with the text and a link to the thread; its author is not mailed.
#[tokio::test]
async fn a_comment_is_announced_to_the_webhook_and_the_other_owners() {
    let smtp = SmtpReceiver::start(Rules::default()).await;
    let hook = Webhook::start().await;
    let server = start(
        &[("alice", "alice@example.test"), ("bob", "bob@example.test")],
        |c| {
            c.mail = Some(mail_config(smtp.port));
            c.allow_private_webhooks = true;
            c.public_url = Some("https://review.example.test".into());
        },
    )
    .await;
    let mut alice = server.login("alice").await;
    let build = alice.create_build("shop", false).await;
    let bs = build.to_string();
    let invited = alice
        .act(
            "/build/owners",
            &[("build_id", &bs), ("user", "bob"), ("action", "add")],
        )
        .await;
    assert_eq!(invited.status, StatusCode::SEE_OTHER, "{}", invited.body);
    let mut bob = server.login("bob").await;
    let accepted = bob
        .act(
            "/account/invite",
            &[("build_id", &bs), ("answer", "accept")],
        )
        .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    hook_and_report(&server, &mut alice, build, "shop", &hook.url).await;
    // The release's own announcements: the webhook, and both owners.
    hook.until_calls(1).await;
    smtp.until("the release mails", |s| s.mails.len() >= 2)
        .await;

    let comment = bob
        .act(
            "/run/comment",
            &[
                ("build_id", &bs),
                ("name", "r1"),
                ("number", "1"),
                ("run", "/diff"),
                ("text", "The <b>banner</b> moved & shrank"),
            ],
        )
        .await;
    assert_eq!(comment.status, StatusCode::SEE_OTHER, "{}", comment.body);
    hook.until_calls(2).await;
    let call = hook.calls.lock().unwrap()[1].clone();
    assert_eq!(call["author"], "bob");
    assert_eq!(call["run_name"], "/diff");
    assert_eq!(call["comment"], "The <b>banner</b> moved & shrank");
    let text = call["text"].as_str().unwrap();
    assert!(
        text.starts_with("bob commented on /diff (release r1 #1 of shop): The &lt;b&gt;banner"),
        "{text}"
    );
    let link = call["url"].as_str().unwrap();
    assert!(
        link.starts_with("https://review.example.test/run?build_id=")
            && link.contains("&run=%2Fdiff#comment-"),
        "{link}"
    );
    smtp.until("the comment mail", |s| s.mails.len() >= 3).await;
    let seen = smtp.seen();
    let comment_mails: Vec<&Mail> = seen
        .mails
        .iter()
        .filter(|m| m.data.contains("commented on /diff"))
        .collect();
    assert_eq!(comment_mails.len(), 1, "{:?}", seen.mails);
    assert_eq!(comment_mails[0].to, vec!["alice@example.test".to_string()]);
    // The activity log names both announcements (webhook, alice) and none
    // for bob, the author.
    let deadline = tokio::time::Instant::now() + WAIT;
    let log = loop {
        let page = alice.get(&format!("/build?id={build}")).await.body;
        let log = log_entries(&page, "notify_comment");
        if log.len() >= 2 || tokio::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("(mail to alice@example.test)")),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l.contains("(webhook)")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("bob@")), "{log:?}");
    server.stop().await;
}
