//! The review UI over real HTTP: login, builds, API keys, review actions,
//! escaping, CSRF, rate limiting and who may see what.

use crate::common;

use std::time::Duration;

use common::ui::{Browser, UiServer};
use dpxdt_core::api::ReportRunRequest;
use dpxdt_core::{BuildId, ReleaseKey};
use reqwest::StatusCode;

/// Users `alice` and `bob`, and the superuser `root`.
const USERS: &[(&str, bool)] = &[("alice", false), ("bob", false), ("root", true)];
const XSS_RELEASE: &str = "<script>alert('release')</script>";
const XSS_RUN: &str = "/<script>alert(\"run\")</script>?a=1&b=2";

fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    let mut writer = enc.write_header().unwrap();
    let data: Vec<u8> = (0..w * h).flat_map(|_| rgb).collect();
    writer.write_image_data(&data).unwrap();
    writer.finish().unwrap();
    out
}

/// Alice's new build with a release `m` and one uploaded 4x4 image, which
/// the release page tests report their runs with.
struct OneImageRelease {
    client: dpxdt_client::Client,
    build: BuildId,
    number: i64,
    image: dpxdt_core::ArtifactId,
}

impl OneImageRelease {
    /// Logs Alice in and makes build `name` with its release.
    async fn start(server: &UiServer, name: &str) -> (Browser, OneImageRelease) {
        let mut alice = server.browser();
        alice.login("alice", "alice-password").await;
        let build = alice.create_build(name, false).await;
        let key = alice.create_key(build).await;
        let client = server.client(&key);
        let b = BuildId(build);
        let rel = client.create_release(b, "m", "https://ci/1").await.unwrap();
        let image = client
            .upload_bytes(b, "a.png", png(4, 4, [0, 0, 255]))
            .await
            .unwrap()
            .sha1sum;
        let release = OneImageRelease {
            client,
            build: b,
            number: rel.release_number,
            image,
        };
        (alice, release)
    }

    /// Reports run `name` with the image and, when given, a capture config.
    async fn report(&self, name: &str, config: Option<&str>) {
        let config = match config {
            Some(json) => Some(
                self.client
                    .upload_bytes(self.build, "config.json", json.as_bytes().to_vec())
                    .await
                    .unwrap()
                    .sha1sum,
            ),
            None => None,
        };
        self.client
            .report_run(&ReportRunRequest {
                build_id: self.build,
                release_name: "m".into(),
                release_number: self.number,
                run_name: name.into(),
                image: Some(self.image.clone()),
                config,
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

/// Uploads a release through the API with one run that has a diff and one
/// that has none, and says runs_done. Returns the artifact id of the diff image.
async fn upload_release(base: &str, build: i64, key: &(String, String), name: &str) -> String {
    let client = dpxdt_client::Client::builder(base)
        .api_key(&key.0, &key.1)
        .retries(0)
        .build()
        .unwrap();
    let b = BuildId(build);
    let rel = client
        .create_release(b, name, "https://ci.example/1")
        .await
        .unwrap();
    let reference = client
        .upload_bytes(b, "ref.png", png(8, 8, [255, 255, 255]))
        .await
        .unwrap();
    let new = client
        .upload_bytes(b, "new.png", png(8, 8, [250, 0, 0]))
        .await
        .unwrap();
    let diff = client
        .upload_bytes(b, "diff.png", png(8, 8, [255, 0, 0]))
        .await
        .unwrap();
    // The diff log is the core's report, as the diff worker writes it.
    let report = dpxdt_core::diff::diff_png_bytes(
        &png(8, 8, [255, 255, 255]),
        &png(8, 8, [250, 0, 0]),
        &Default::default(),
    )
    .unwrap()
    .report;
    let diff_log = client
        .upload_bytes(b, "diff.json", serde_json::to_vec(&report).unwrap())
        .await
        .unwrap();
    for (run, with_diff) in [(XSS_RUN, true), ("/same", false)] {
        client
            .report_run(&ReportRunRequest {
                build_id: b,
                release_name: name.into(),
                release_number: rel.release_number,
                run_name: run.into(),
                url: Some(format!("https://site.example{run}")),
                image: Some(if with_diff {
                    new.sha1sum.clone()
                } else {
                    reference.sha1sum.clone()
                }),
                ref_image: Some(reference.sha1sum.clone()),
                diff_image: with_diff.then(|| diff.sha1sum.clone()),
                diff_log: with_diff.then(|| diff_log.sha1sum.clone()),
                distortion: Some(if with_diff { 0.25 } else { 0.0 }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    client
        .runs_done(&ReleaseKey {
            build_id: b,
            release_name: name.into(),
            release_number: rel.release_number,
        })
        .await
        .unwrap();
    diff.sha1sum.to_string()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn login_sets_a_hardened_session_cookie_and_logout_ends_it() {
    let server = UiServer::start(USERS, |_| {}).await;
    let mut b = server.browser();
    let wrong = b.login("alice", "not-her-password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong user name or password"));
    assert!(!b.cookies.contains_key("dpxdt_session"));

    let ok = b.login("alice", "alice-password").await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let cookie = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("dpxdt_session="))
        .expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let home = b.get("/").await;
    assert!(home.body.contains("alice"));

    let csrf = b.csrf().await;
    let out = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!b.get("/").await.body.contains("Log out"));
    // The old session cookie no longer works even when replayed.
    let mut replay = server.browser();
    replay
        .cookies
        .insert("dpxdt_session".into(), cookie[14..78].to_string());
    assert_eq!(replay.get("/new_build").await.status, StatusCode::SEE_OTHER);

    // Behind an HTTPS proxy the cookie is Secure.
    let mut tls = server.browser();
    tls.extra.push(("x-forwarded-proto", "https"));
    let ok = tls.login("bob", "bob-password").await;
    let cookie = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("dpxdt_session="))
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    server.stop().await;
}

#[tokio::test]
async fn login_redirects_only_to_local_paths() {
    let server = UiServer::start(USERS, |_| {}).await;
    for (next, expect) in [
        ("/build?id=1", "/build?id=1"),
        ("//evil.example/", "/"),
        ("/\t/evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("https://evil.example/", "/"),
    ] {
        let mut b = server.browser();
        let csrf = b.get("/login").await.input("csrf");
        let page = b
            .post(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("name", "alice"),
                    ("password", "alice-password"),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), expect, "next={next:?}");
    }
    server.stop().await;
}

/// Regression: the limit was checked before and counted after the slow
/// password check, so a parallel burst got as many guesses as requests.
#[tokio::test]
async fn a_parallel_burst_of_guesses_gets_no_more_than_the_limit() {
    let server = UiServer::start(USERS, |_| {}).await;
    let mut guessers = Vec::new();
    for _ in 0..30 {
        let mut b = server.browser();
        guessers.push(tokio::spawn(async move {
            b.login("alice", "guess").await.status
        }));
    }
    let mut wrong = 0;
    for g in guessers {
        match g.await.unwrap() {
            StatusCode::UNAUTHORIZED => wrong += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(wrong, 5, "guesses checked");
    // A name too long to be anyone's is refused without a check.
    let mut b = server.browser();
    let long = "a".repeat(65);
    assert_eq!(b.login(&long, "x").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logins_are_rate_limited_per_user_name() {
    let server = UiServer::start(USERS, |_| {}).await;
    let mut b = server.browser();
    for _ in 0..5 {
        assert_eq!(
            b.login("bob", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right password is refused while the limit holds.
    let page = b.login("bob", "bob-password").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!b.cookies.contains_key("dpxdt_session"));
    // Another user from the same address is not locked out.
    assert_eq!(
        b.login("alice", "alice-password").await.status,
        StatusCode::SEE_OTHER
    );
    server.stop().await;
}

#[tokio::test]
async fn posts_without_a_valid_csrf_token_are_refused() {
    let server = UiServer::start(USERS, |_| {}).await;
    let mut b = server.browser();
    b.login("alice", "alice-password").await;
    for form in [
        vec![("name", "no-token")],
        vec![("name", "wrong-token"), ("csrf", "00ff")],
    ] {
        let page = b.post("/new_build", &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
        assert!(page.body.contains("CSRF"));
    }
    let home = b.get("/").await;
    assert!(!home.body.contains("no-token") && !home.body.contains("wrong-token"));
    // Another session's token does not work either.
    let mut other = server.browser();
    other.login("bob", "bob-password").await;
    let bobs = other.csrf().await;
    let page = b
        .post("/new_build", &[("name", "bobs-token"), ("csrf", &bobs)])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // The login form needs its own token too.
    let mut fresh = server.browser();
    let page = fresh
        .post(
            "/login",
            &[("name", "alice"), ("password", "alice-password")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    server.stop().await;
}

/// A release with one changed run and one unchanged, uploaded through the
/// API with names full of markup, as alice (its build's owner) sees it.
struct Reviewed {
    server: UiServer,
    alice: Browser,
    build: i64,
    key: (String, String),
    diff_id: String,
    release_path: String,
    run_path: String,
}

async fn reviewed_release() -> Reviewed {
    reviewed_release_on(common::Backend::Dir).await
}

async fn reviewed_release_on(backend: common::Backend) -> Reviewed {
    let server = UiServer::start(USERS, |c| backend.apply(c)).await;
    let mut alice = server.browser();
    alice.login("alice", "alice-password").await;
    let build = alice.create_build("shop <b>desktop</b>", false).await;
    let key = alice.create_key(build).await;
    assert_eq!(key.1.len(), 64);
    // The secret is shown once.
    let page = alice.get(&format!("/build?id={build}")).await;
    assert!(page.body.contains(&key.0));
    assert!(!page.body.contains(&key.1));
    assert!(page.body.contains("shop &lt;b&gt;desktop&lt;/b&gt;"));
    let diff_id = upload_release(&server.base, build, &key, XSS_RELEASE).await;
    let release_path = format!(
        "/release?build_id={build}&name={}&number=1",
        enc(XSS_RELEASE)
    );
    let run_path = format!(
        "{}&run={}",
        release_path.replacen("/release", "/run", 1),
        enc(XSS_RUN)
    );
    Reviewed {
        server,
        alice,
        build,
        key,
        diff_id,
        release_path,
        run_path,
    }
}

/// Names with markup are escaped on the build, release and run pages, which
/// show the counts, the diff first and the diff's report.
#[tokio::test]
async fn names_are_escaped_and_the_pages_show_the_diff() {
    let Reviewed {
        server,
        mut alice,
        build,
        diff_id,
        release_path,
        run_path,
        ..
    } = reviewed_release().await;
    let page = alice.get(&format!("/build?id={build}")).await;
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(page.body.contains("&lt;script&gt;alert("));
    assert!(page.body.contains("Diff found: 1"));
    assert!(page.body.contains("Same: 1"));

    let page = alice.get(&release_path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert_eq!(page.text_of("release-status"), "reviewing");
    // Diffs come first.
    assert!(
        page.body.find("group-diff_found").unwrap()
            < page.body.find("group-diff_not_found").unwrap()
    );
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"));

    let page = alice.get(&run_path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(
        page.body
            .contains("&lt;script&gt;alert(&quot;run&quot;)&lt;/script&gt;")
    );
    assert_eq!(page.text_of("headline"), "64 px changed");
    assert!(
        page.body
            .contains("id=\"progress\">Reviewed <strong>0</strong> of 1</p>"),
        "{}",
        page.body
    );
    assert!(
        page.text_of("diff-report")
            .starts_with("64 of 64 pixels changed (100.000%)"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("data-x=\"0\" data-y=\"0\" data-w=\"8\" data-h=\"8\" data-ry=\"0\" data-rh=\"8\"><a href=\"#\" class=\"change-link\">8×8 px changed at 0, 0</a>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(&format!("id&#x3D;{diff_id}")),
        "{}",
        page.body
    );

    server.stop().await;
}

each_backend! {
    /// The image route serves the diff with cache headers and revalidates; a
    /// thumbnail is the top of the image, made once and then served from the
    /// artifact cache.
    async fn images_and_thumbnails_are_cached_and_revalidated(backend) {
        let Reviewed {
            server,
            mut alice,
            build,
            diff_id,
            ..
        } = reviewed_release_on(backend).await;
        // The image route serves the diff with cache headers and revalidates.
        let img = alice
            .get(&format!("/image?build_id={build}&id={diff_id}"))
            .await;
        assert_eq!(img.status, StatusCode::OK);
        assert_eq!(img.headers["content-type"], "image/png");
        assert!(
            img.headers["cache-control"]
                .to_str()
                .unwrap()
                .contains("private, max-age=")
        );
        let etag = img.headers["etag"].to_str().unwrap().to_string();
        let req = alice
            .http
            .get(format!(
                "{}/image?build_id={build}&id={diff_id}",
                server.base
            ))
            .header("if-none-match", etag);
        assert_eq!(alice.send(req).await.status, StatusCode::NOT_MODIFIED);

        // The release page shows thumbnails: the top of the image, made once
        // and then served from the artifact cache.
        let thumb = format!("/thumb?build_id={build}&id={diff_id}");
        let first = alice.get(&thumb).await;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(first.headers["content-type"], "image/png");
        let again = alice.get(&thumb).await;
        assert_eq!(again.headers["etag"], first.headers["etag"]);
        let bytes = alice
            .http
            .get(format!("{}{thumb}", server.base))
            .header("cookie", alice.cookie_header())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()));
        let info = decoder.read_info().unwrap();
        assert_eq!((info.info().width, info.info().height), (8, 5));

        server.stop().await;
    }
}

/// A person approves the diff and marks the release good; that release is
/// the next baseline; a revoked key is refused; every action is in the
/// activity log with who did it.
#[tokio::test]
async fn review_verdicts_baseline_revocation_and_activity_log() {
    let Reviewed {
        server,
        mut alice,
        build,
        key,
        release_path,
        run_path,
        ..
    } = reviewed_release().await;
    let page = alice.get(&run_path).await;
    // Approve the diff: the core moves it to diff_approved.
    let csrf = page.input("csrf");
    let form = [
        ("csrf", csrf.as_str()),
        ("build_id", &build.to_string()),
        ("name", XSS_RELEASE),
        ("number", "1"),
        ("run", XSS_RUN),
        ("action", "approve"),
    ];
    let done = alice.post("/run/verdict", &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let page = alice.get(&run_path).await;
    assert_eq!(page.text_of("run-status"), "Approved");
    assert!(page.body.contains("id=\"reject\""));
    // Approving twice is refused by the state machine.
    let again = alice.post("/run/verdict", &form).await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    // Mark the release good, then back to reviewing.
    for (status, expect) in [
        ("good", "good"),
        ("reviewing", "reviewing"),
        ("good", "good"),
    ] {
        let page = alice
            .post(
                "/release/status",
                &[
                    ("csrf", &csrf),
                    ("build_id", &build.to_string()),
                    ("name", XSS_RELEASE),
                    ("number", "1"),
                    ("status", status),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(
            alice.get(&release_path).await.text_of("release-status"),
            expect
        );
    }

    // The release marked good in the UI is the next release's baseline.
    let client = server.client(&key);
    let baseline = client
        .find_run(BuildId(build), XSS_RUN)
        .await
        .unwrap()
        .expect("a baseline run");
    assert_eq!(baseline.release_name, XSS_RELEASE);
    assert_eq!(baseline.release_number, 1);

    // Revoke the key: the API refuses it afterwards.
    let page = alice
        .post(
            "/build/revoke_key",
            &[
                ("csrf", &csrf),
                ("build_id", &build.to_string()),
                ("key_id", &key.0),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let api = reqwest::Client::new()
        .post(format!("{}/api/create_release", server.base))
        .basic_auth(&key.0, Some(&key.1))
        .form(&[
            ("build_id", build.to_string().as_str()),
            ("release_name", "x"),
            ("url", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(api.status().as_u16(), 401);

    // Every action is in the activity log, with who did it.
    let page = alice.get(&format!("/build?id={build}")).await;
    for entry in [
        "create_build",
        "ui_create_api_key",
        "run_approve",
        "release_good",
        "revoke_api_key",
    ] {
        assert!(
            page.body.contains(&format!("<strong>{entry}</strong>")),
            "{entry} missing"
        );
    }
    assert!(page.body.contains("by alice"));
    // Release verdicts from the UI name the person too.
    let verdicts: Vec<&str> = page
        .body
        .split("<li>")
        .filter(|li| li.contains("<strong>release_good</strong>"))
        .collect();
    assert_eq!(verdicts.len(), 2, "{}", page.body);
    for li in verdicts {
        assert!(li.contains("<span class=\"who\">by alice</span>"), "{li}");
    }
    server.stop().await;
}

#[tokio::test]
async fn another_user_cannot_see_or_change_a_private_build() {
    let server = UiServer::start(USERS, |_| {}).await;
    let mut alice = server.browser();
    alice.login("alice", "alice-password").await;
    let build = alice.create_build("alice-private", false).await;
    let key = alice.create_key(build).await;
    let diff_id = upload_release(&server.base, build, &key, "r1").await;
    let bs = build.to_string();

    let mut bob = server.browser();
    bob.login("bob", "bob-password").await;
    let mut anon = server.browser();
    let pages = [
        format!("/build?id={build}"),
        format!("/release?build_id={build}&name=r1&number=1"),
        format!("/run?build_id={build}&name=r1&number=1&run=%2Fsame"),
        format!("/image?build_id={build}&id={diff_id}"),
        format!("/thumb?build_id={build}&id={diff_id}"),
    ];
    for (n, who) in [&mut bob, &mut anon].into_iter().enumerate() {
        for (i, p) in pages.iter().enumerate() {
            let page = who.get(p).await;
            // Someone logged out is asked to log in to see a page, and
            // told no more than that.
            let expect = if n == 1 && i < 3 {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(page.status, expect, "{p}");
            assert!(!page.body.contains("alice-private"));
        }
        assert!(!who.get("/").await.body.contains("alice-private"));
    }
    let (missing, theirs) = (
        anon.get("/build?id=999999").await,
        anon.get(&pages[0]).await,
    );
    assert_eq!(missing.status, theirs.status);
    assert_eq!(
        missing.text_of("login-error"),
        theirs.text_of("login-error")
    );
    // A missing build looks exactly the same as someone else's.
    let missing = bob.get("/build?id=999999").await;
    let theirs = bob.get(&pages[0]).await;
    assert_eq!(missing.status, theirs.status);
    assert_eq!(missing.body, theirs.body);

    let csrf = bob.csrf().await;
    let actions: [(&str, Vec<(&str, &str)>); 6] = [
        (
            "/build/owners",
            vec![("build_id", &bs), ("user", "bob"), ("action", "add")],
        ),
        (
            "/build/api_key",
            vec![("build_id", &bs), ("purpose", "steal")],
        ),
        (
            "/build/revoke_key",
            vec![("build_id", &bs), ("key_id", &key.0)],
        ),
        ("/build/settings", vec![("build_id", &bs), ("public", "1")]),
        (
            "/release/status",
            vec![
                ("build_id", &bs),
                ("name", "r1"),
                ("number", "1"),
                ("status", "bad"),
            ],
        ),
        (
            "/run/verdict",
            vec![
                ("build_id", &bs),
                ("name", "r1"),
                ("number", "1"),
                ("run", XSS_RUN),
                ("action", "approve"),
            ],
        ),
    ];
    for (path, form) in &actions {
        let mut form = form.clone();
        form.push(("csrf", &csrf));
        let page = bob.post(path, &form).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.body);
    }
    // Nothing changed for alice.
    let page = alice.get(&format!("/build?id={build}")).await;
    assert!(page.body.contains("private"));
    assert!(!page.body.contains("steal"));
    assert!(page.body.contains(">active<"));
    let page = alice.get(&pages[1]).await;
    assert_eq!(page.text_of("release-status"), "reviewing");

    // Made public, bob may read it but still not change it or see its keys.
    let acsrf = alice.csrf().await;
    alice
        .post(
            "/build/settings",
            &[("csrf", &acsrf), ("build_id", &bs), ("public", "1")],
        )
        .await;
    let page = bob.get(&pages[0]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains(&key.0), "keys are for owners");
    assert!(!page.body.contains("id=\"mark-good\""));
    assert_eq!(bob.get(&pages[3]).await.status, StatusCode::OK);
    assert_eq!(anon.get(&pages[1]).await.status, StatusCode::OK);
    let (path, form) = &actions[4];
    let mut form = form.clone();
    form.push(("csrf", &csrf));
    assert_eq!(bob.post(path, &form).await.status, StatusCode::FORBIDDEN);
    // An artifact of another build is not served through this build.
    let other = alice.create_build("other", true).await;
    let page = bob
        .get(&format!("/image?build_id={other}&id={diff_id}"))
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn static_assets_and_unknown_pages() {
    let server = UiServer::start(USERS, |_| {}).await;
    let mut b = server.browser();
    let css = b.get("/static/app.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let js = b.get("/static/app.js").await;
    assert!(js.body.contains("keydown"));
    assert_eq!(
        b.get("/static/../Cargo.toml").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(b.get("/nope").await.status, StatusCode::NOT_FOUND);
    // The API still answers under /api/.
    let api = b.get("/api/nope").await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert!(api.body.contains("\"success\":false") || api.body.contains("\"error\""));
    // Pages that need a login send you to it.
    let page = b.get("/new_build").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().starts_with("/login?next="));
    server.stop().await;
}

#[tokio::test]
async fn first_start_prints_an_admin_password_that_logs_in_once() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dpxdt-server"))
            .args(["--listen", "127.0.0.1:0", "--no-workers", "--data-dir"])
            .arg(dir.path())
            .env("DPXDT_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut password = None;
        let base = loop {
            let line = lines.next().expect("server prints its address").unwrap();
            if let Some(p) = line.split("as admin, password ").nth(1) {
                password = Some(p.trim().to_string());
            }
            if let Some(rest) = line.strip_prefix("dpxdt-server listening on ") {
                break rest.trim_end_matches('/').to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        (child, base, password)
    };
    let (mut child, base, password) = start();
    let password = password.expect("first start prints the admin password");
    let mut b = Browser::new(&base);
    assert_eq!(
        b.login("admin", &password).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(b.get("/").await.body.contains("admin"));
    // `create-user` works beside the running server: password from stdin,
    // too short ones refused.
    let create = |name: &str, password: &str, extra: &[&str]| {
        use std::io::Write;
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_dpxdt-server"))
            .args(["create-user", name, "--data-dir"])
            .arg(dir.path())
            .args(extra)
            .env("DPXDT_LOG", "warn")
            .env_remove("DPXDT_PASSWORD")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(c.stdin.take().unwrap(), "{password}").unwrap();
        c.wait_with_output().unwrap()
    };
    let short = create("carol", "short", &[]);
    assert_eq!(short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8 characters"));
    let bad = create("carol", "carol-password", &["--email", "carol"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"carol\" is not an e-mail address"));
    let made = create(
        "carol",
        "carol-password",
        &["--email", "carol@example.test"],
    );
    assert!(made.status.success());
    let mut carol = Browser::new(&b.base);
    assert_eq!(
        carol.login("carol", "carol-password").await.status,
        StatusCode::SEE_OTHER
    );
    let account = carol.get("/account").await;
    assert!(
        account.body.contains("value=\"carol@example.test\""),
        "{}",
        account.body
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // The second start keeps the password and does not print it again.
    let (mut child, _, again) = start();
    assert_eq!(again, None);
    child.kill().unwrap();
    child.wait().unwrap();
    // Bad SMTP settings stop the server before it starts, saying why.
    for (args, why) in [
        (
            &[
                "--smtp-url",
                "smtps://u:pw@relay:465",
                "--mail-from",
                "d@example.test",
            ][..],
            "TLS is not built into this server",
        ),
        (&["--smtp-url", "smtp://relay"][..], "--mail-from"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dpxdt-server"))
            .args(["--listen", "127.0.0.1:0", "--no-workers", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .env_remove("DPXDT_SMTP_URL")
            .env_remove("DPXDT_MAIL_FROM")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert!(!stderr.contains(":pw@"), "{stderr}");
    }
}

#[tokio::test]
async fn owners_invite_and_revoke_each_other_and_superusers_see_the_queue() {
    let server = UiServer::start(USERS, |_| {}).await;
    let mut alice = server.browser();
    alice.login("alice", "alice-password").await;
    let build = alice.create_build("shared", false).await;
    let bs = build.to_string();
    let page = format!("/build?id={build}");
    let mut bob = server.browser();
    bob.login("bob", "bob-password").await;
    assert_eq!(bob.get(&page).await.status, StatusCode::NOT_FOUND);

    let csrf = alice.csrf().await;
    let owners = |user: &'static str, action: &'static str| {
        vec![
            ("build_id", bs.clone()),
            ("user", user.to_string()),
            ("action", action.to_string()),
        ]
    };
    let post = async |b: &mut Browser, csrf: &str, form: Vec<(&str, String)>| {
        let mut form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        form.push(("csrf", csrf));
        b.post("/build/owners", &form).await
    };
    // Inviting says the same for a name that exists and one that does
    // not, so it tells nobody which names exist.
    let unknown = post(&mut alice, &csrf, owners("nobody", "add")).await;
    let known = post(&mut alice, &csrf, owners("bob", "add")).await;
    assert_eq!(
        (unknown.status, known.status),
        (StatusCode::SEE_OTHER, StatusCode::SEE_OTHER)
    );
    assert_eq!(unknown.location(), known.location());
    let listed = alice.get(&page).await.body;
    assert!(listed.contains("id=\"invited\""), "{listed}");
    assert!(
        listed.contains("<strong>invite_owner</strong> nobody"),
        "{listed}"
    );
    // Until bob accepts, he does not own it; no one else can accept for him.
    assert_eq!(bob.get(&page).await.status, StatusCode::NOT_FOUND);
    let mut root = server.browser();
    root.login("root", "root-password").await;
    let r = root
        .act(
            "/account/invite",
            &[("build_id", &bs), ("answer", "accept")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let account = bob.get("/account").await;
    assert!(
        account.body.contains("Own <strong>shared</strong>"),
        "{}",
        account.body
    );
    assert!(
        account.body.contains("invited by alice"),
        "{}",
        account.body
    );
    let r = bob
        .act(
            "/account/invite",
            &[("build_id", &bs), ("answer", "accept")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), page);
    assert!(
        !bob.get("/account")
            .await
            .body
            .contains("id=\"invitations\"")
    );
    // Owners are listed, so inviting one again is refused; the unanswered
    // invitation of "nobody" can be withdrawn.
    assert_eq!(
        post(&mut alice, &csrf, owners("bob", "add")).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        post(&mut alice, &csrf, owners("nobody", "cancel"))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert!(!alice.get(&page).await.body.contains("id=\"invited\""));
    // Bob now owns it: he sees it, its keys, and may rename it.
    let p = bob.get(&page).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("id=\"api-keys\""));
    let bcsrf = bob.csrf().await;
    let r = bob
        .post(
            "/build/settings",
            &[
                ("csrf", &bcsrf),
                ("build_id", &bs),
                ("name", "renamed <i>x</i>"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        alice
            .get(&page)
            .await
            .body
            .contains("renamed &lt;i&gt;x&lt;/i&gt;")
    );
    // Bob revokes alice; she no longer sees the build. The last owner stays.
    assert_eq!(
        post(&mut bob, &bcsrf, owners("alice", "remove"))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(alice.get(&page).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        post(&mut bob, &bcsrf, owners("bob", "remove")).await.status,
        StatusCode::CONFLICT
    );
    let log = bob.get(&page).await.body;
    assert!(log.contains("<strong>invite_owner</strong> bob"));
    assert!(log.contains("<strong>accept_invite</strong> bob"));
    assert!(log.contains("<strong>revoke_admin</strong> alice"));

    // The work queue page is for superusers only.
    assert_eq!(bob.get("/queue").await.status, StatusCode::NOT_FOUND);
    assert!(!bob.get("/").await.body.contains("href=\"/queue\""));
    let mut root = server.browser();
    root.login("root", "root-password").await;
    let q = root.get("/queue").await;
    assert_eq!(q.status, StatusCode::OK);
    assert!(q.body.contains("id=\"queue-counts\""));
    // A superuser may see every build.
    assert_eq!(root.get(&page).await.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn a_release_ready_for_review_is_announced_to_the_webhook_with_retries() {
    use std::sync::{Arc, Mutex};
    use warp::Filter;
    // A webhook receiver that fails the first call.
    let calls: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let seen = calls.clone();
    // Counts calls as they arrive, so the test waits for the retry itself.
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let hook = warp::post()
        .and(warp::body::json())
        .map(move |body: serde_json::Value| {
            let mut calls = seen.lock().unwrap();
            calls.push(body);
            count_tx.send_replace(calls.len());
            let status = if calls.len() == 1 { 500 } else { 200 };
            warp::reply::with_status("ok", warp::http::StatusCode::from_u16(status).unwrap())
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    let receiver = tokio::spawn(warp::serve(hook).incoming(listener).run());

    let server = UiServer::start(USERS, |_| {}).await;
    let mut alice = server.browser();
    alice.login("alice", "alice-password").await;
    let build = alice.create_build("notified", false).await;
    let bs = build.to_string();
    let csrf = alice.csrf().await;
    let bad = alice
        .post(
            "/build/settings",
            &[
                ("csrf", &csrf),
                ("build_id", &bs),
                ("webhook_url", "ftp://x.example/"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let ok = alice
        .post(
            "/build/settings",
            &[
                ("csrf", &csrf),
                ("build_id", &bs),
                ("name", "notified"),
                ("webhook_url", &hook_url),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let key = alice.create_key(build).await;
    upload_release(&server.base, build, &key, "r1").await;

    tokio::time::timeout(Duration::from_secs(20), count_rx.wait_for(|n| *n >= 2))
        .await
        .expect("the webhook is retried within 20 s")
        .unwrap();
    let body = calls.lock().unwrap()[1].clone();
    assert_eq!(body["diffs"], 1);
    assert_eq!(body["runs"], 2);
    assert_eq!(body["release_name"], "r1");
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("1 diff(s)"), "{text}");
    assert!(
        body["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/release?build_id={build}&name=r1&number=1"))
    );
    // Once delivered it is not sent again; both tries are in the activity
    // log (written once the receiver's answer is in, so awaited here).
    let logged = |store: &dpxdt_server::storage::Store| {
        store
            .blocking(move |c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM admin_log WHERE build_id = ?1 AND log_type = 'notify_webhook'",
                    [build],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while logged(&server.store) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the delivery is logged within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let page = alice.get(&format!("/build?id={build}")).await;
    assert!(page.body.contains("<strong>notify_retry</strong>"));
    assert!(page.body.contains("<strong>notify_webhook</strong>"));
    assert_eq!(calls.lock().unwrap().len(), 2);
    server.stop().await;
    receiver.abort();
}

each_backend! {
    /// Regression: a public build showed its capture configs (cookies,
    /// passwords, headers) to anyone.
    async fn capture_config_secrets_are_for_owners_only(backend) {
        let server = UiServer::start(USERS, |c| backend.apply(c)).await;
        let mut alice = server.login("alice").await;
        let build = alice.create_build("public-site", true).await;
        let key = alice.create_key(build).await;
        let client = server.client(&key);
        let rel = client
            .create_release(BuildId(build), "r", "https://ci.example/1")
            .await
            .unwrap();
        let config = r#"{"cookies": [{"name": "session", "value": "COOKIE-SECRET"}],
            "httpUserName": "ci", "httpPassword": "PASSWORD-SECRET",
            "injectHeaders": {"staging.example": {"X-Token": "HEADER-SECRET"}}}"#;
        let run = client
            .request_run(&dpxdt_core::api::RequestRunRequest {
                build_id: BuildId(build),
                release_name: rel.release_name.clone(),
                release_number: rel.release_number,
                run_name: "/".into(),
                url: "https://staging.example/".into(),
                config: config.into(),
                ref_url: None,
                ref_config: None,
            })
            .await
            .unwrap();
        let path = format!("/image?build_id={build}&id={}", run.config);
        let mut anon = server.browser();
        let mut bob = server.login("bob").await;
        for (who, page) in [
            ("anonymous", anon.get(&path).await),
            ("bob", bob.get(&path).await),
        ] {
            assert_eq!(page.status, StatusCode::OK, "{who}");
            assert!(!page.body.contains("SECRET"), "{who} sees: {}", page.body);
            assert!(
                page.body.contains("session") && page.body.contains("X-Token"),
                "{}",
                page.body
            );
            assert_eq!(page.headers["cache-control"], "private, no-store");
        }
        let page = alice.get(&path).await;
        for secret in ["COOKIE-SECRET", "PASSWORD-SECRET", "HEADER-SECRET"] {
            assert!(page.body.contains(secret), "the owner sees {secret}");
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_logs_every_browser_of_that_user_out() {
    let server = UiServer::start(&[("alice", false), ("bob", false)], |_| {}).await;
    let mut laptop = server.login("alice").await;
    let mut phone = server.login("alice").await;
    let mut bob = server.login("bob").await;
    for b in [&mut laptop, &mut phone, &mut bob] {
        assert_eq!(b.get("/new_build").await.status, StatusCode::OK);
    }
    // What `dpxdt-server create-user alice` does with a new password.
    dpxdt_server::ui::create_user(&server.store, "alice", "a-new-password", false).unwrap();
    for b in [&mut laptop, &mut phone] {
        let page = b.get("/new_build").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "logged out");
        assert!(page.location().starts_with("/login"), "{}", page.location());
    }
    assert_eq!(
        bob.get("/new_build").await.status,
        StatusCode::OK,
        "others stay"
    );
    let mut again = server.browser();
    assert_eq!(
        again.login("alice", "a-new-password").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(again.get("/new_build").await.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_lets_the_builds_keys_give_verdicts_in_its_settings() {
    let server = UiServer::start(&[("alice", false)], |_| {}).await;
    let mut alice = server.login("alice").await;
    let build = alice.create_build("site", false).await;
    let key = alice.create_key(build).await;
    upload_release(&server.base, build, &key, "r1").await;
    let client = server.client(&key);
    let release = dpxdt_core::ReleaseKey {
        build_id: BuildId(build),
        release_name: "r1".into(),
        release_number: 1,
    };
    let err = client
        .update_release(&release, dpxdt_core::ReleaseStatus::Good)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    let bs = build.to_string();
    let page = alice.get(&format!("/build?id={bs}")).await;
    assert!(
        page.body.contains("name=\"key_verdicts\" value=\"1\">"),
        "unchecked by default"
    );
    let r = alice
        .act(
            "/build/settings",
            &[("build_id", &bs), ("name", "site"), ("key_verdicts", "1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = alice.get(&format!("/build?id={bs}")).await;
    assert!(
        page.body
            .contains("name=\"key_verdicts\" value=\"1\" checked>")
    );
    assert!(page.body.contains("API keys may give verdicts"), "logged");
    assert_eq!(
        client
            .update_release(&release, dpxdt_core::ReleaseStatus::Good)
            .await
            .unwrap(),
        dpxdt_core::ReleaseStatus::Good
    );
    server.stop().await;
}

/// A run whose new screenshot has a band inserted: the run page lists the
/// shift (from the core's aligned report) and says that nothing else
/// changed.
/// The modes of one page (`/a@dark`, `/a@light`) are listed together,
/// right after the page without a mode, each with its mode as a label; a
/// name whose `@` part is not a mode is shown as it is.
#[tokio::test]
async fn the_modes_of_a_page_are_listed_together_with_a_label() {
    let server = UiServer::start(USERS, |_| {}).await;
    let (mut alice, release) = OneImageRelease::start(&server, "modes").await;
    let build = release.build.0;
    let names = ["/b", "/a@light", "/a/x", "/a", "/a-z", "/a@dark", "/u@x y"];
    for run in names {
        release.report(run, None).await;
    }
    let page = alice
        .get(&format!("/release?build_id={build}&name=m&number=1"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    // Each run's shown text, tags stripped, in page order.
    let shown: Vec<String> = page
        .body
        .split("<span class=\"run-name\">")
        .skip(1)
        .map(|item| {
            let item = &item[..item.find("</a>").unwrap()];
            let mut text = String::new();
            let mut in_tag = false;
            for c in item.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            text.trim().to_string()
        })
        .collect();
    assert_eq!(
        shown,
        ["/a", "/a@dark", "/a@light", "/a-z", "/a/x", "/b", "/u@x y"],
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<span class=\"run-name\">/a<span class=\"tag mode\">@dark</span></span>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<span class=\"run-name\">/u@x y</span>"),
        "{}",
        page.body
    );
    server.stop().await;
}

/// A run captured in another engine than Chromium is labelled with it on
/// the release page, and the run page always names its engine.
#[tokio::test]
async fn runs_name_the_engine_that_captured_them() {
    let server = UiServer::start(USERS, |_| {}).await;
    let (mut alice, release) = OneImageRelease::start(&server, "engines").await;
    let build = release.build.0;
    for (run, config) in [
        ("/a@chromium", "{}"),
        ("/a@firefox", r#"{"browser": "firefox"}"#),
    ] {
        release.report(run, Some(config)).await;
    }
    let page = alice
        .get(&format!("/release?build_id={build}&name=m&number=1"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.body.matches("class=\"tag engine\"").count(),
        1,
        "only the Firefox run is labelled: {}",
        page.body
    );
    assert!(page.body.contains(">firefox</span>"), "{}", page.body);
    for (run, engine) in [("/a@chromium", "chromium"), ("/a@firefox", "firefox")] {
        let page = alice
            .get(&format!(
                "/run?build_id={build}&name=m&number=1&run={}",
                run.replace('@', "%40")
            ))
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.text_of("run-engine"), engine, "{run}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_run_page_lists_moved_content() {
    let server = UiServer::start(USERS, |_| {}).await;
    let mut alice = server.browser();
    alice.login("alice", "alice-password").await;
    let build = alice.create_build("shifted", false).await;
    let key = alice.create_key(build).await;
    let client = server.client(&key);
    // Rows of distinct "text"; the new page has 3 blue rows at y=5.
    let row = |y: u32| -> Vec<u8> {
        (0..16u32)
            .flat_map(|x| {
                let v = ((x * 37 + y * 101) % 200) as u8;
                [v, 255 - v, v / 2, 255]
            })
            .collect()
    };
    let encode = |rows: &[Vec<u8>]| {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, 16, rows.len() as u32);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&rows.concat()).unwrap();
        w.finish().unwrap();
        out
    };
    let old: Vec<Vec<u8>> = (0..20).map(row).collect();
    let mut new = old.clone();
    new.splice(5..5, std::iter::repeat_n([0u8, 0, 255, 255].repeat(16), 3));
    let (old, new) = (encode(&old), encode(&new));
    let outcome = dpxdt_core::diff::diff_png_bytes(&old, &new, &Default::default()).unwrap();
    assert_eq!(outcome.report.shifts.len(), 1, "{:?}", outcome.report);
    let b = BuildId(build);
    let rel = client
        .create_release(b, "moved", "https://ci/1")
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (name, bytes) in [
        ("ref.png", old),
        ("new.png", new),
        ("diff.png", outcome.diff_png.unwrap()),
        ("diff.json", serde_json::to_vec(&outcome.report).unwrap()),
    ] {
        ids.push(client.upload_bytes(b, name, bytes).await.unwrap().sha1sum);
    }
    let key_of = ReleaseKey {
        build_id: b,
        release_name: "moved".into(),
        release_number: rel.release_number,
    };
    client
        .report_run(&ReportRunRequest {
            build_id: b,
            release_name: "moved".into(),
            release_number: rel.release_number,
            run_name: "/page".into(),
            ref_image: Some(ids[0].clone()),
            image: Some(ids[1].clone()),
            diff_image: Some(ids[2].clone()),
            diff_log: Some(ids[3].clone()),
            distortion: Some(outcome.report.distortion),
            ..Default::default()
        })
        .await
        .unwrap();
    client.runs_done(&key_of).await.unwrap();
    let page = alice
        .get(&format!(
            "/run?build_id={build}&name=moved&number=1&run=%2Fpage"
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // The band is one change of the list, in the new image and in the
    // reference (nothing moved above it).
    assert!(
        page.body.contains(
            "data-x=\"0\" data-y=\"5\" data-w=\"16\" data-h=\"3\" data-ry=\"5\" data-rh=\"1\"><a href=\"#\" class=\"change-link\">3 rows inserted at y&#x3D;5</a>"
        ),
        "{}",
        page.body
    );
    assert!(
        page.text_of("diff-report")
            .starts_with("0 of 368 pixels changed"),
        "{}",
        page.text_of("diff-report")
    );
    // It leads with what matters: only moved, nothing changed.
    assert_eq!(
        page.text_of("headline"),
        "moved content only · 0 px changed"
    );

    // Bulk approval of the runs that only moved: a preview with the count,
    // then a confirmation that must name the same count.
    let preview = alice
        .get(&format!(
            "/release/bulk?build_id={build}&name=moved&number=1&kind=shifts"
        ))
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(
        preview
            .body
            .contains("<strong>1</strong> run will be approved"),
        "{}",
        preview.body
    );
    assert_eq!(preview.input("expect"), "1");
    let bad = alice
        .get(&format!(
            "/release/bulk?build_id={build}&name=moved&number=1&kind=region&region=1:2-0:3"
        ))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("region must be x1:y1-x2:y2"),
        "{}",
        bad.body
    );
    let names = preview.input("names");
    let form = |expect: &'static str| {
        [
            ("names", names.clone()),
            ("build_id", build.to_string()),
            ("name", "moved".to_string()),
            ("number", "1".to_string()),
            ("kind", "shifts".to_string()),
            ("region", String::new()),
            ("expect", expect.to_string()),
        ]
    };
    let stale = form("2");
    let stale: Vec<(&str, &str)> = stale.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = alice.act("/release/bulk", &stale).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("1 runs match now, not the 2 you confirmed")
    );
    let mut bob = server.login("bob").await;
    assert_eq!(
        bob.act("/release/bulk", &stale).await.status,
        StatusCode::NOT_FOUND
    );
    let good = form("1");
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = alice.act("/release/bulk", &good).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let status = client.release_status(&key_of).await.unwrap();
    assert_eq!(status.runs[0].status.as_str(), "diff_approved");
    let page = alice.get(&format!("/build?id={build}")).await;
    assert!(
        page.body
            .contains("run_bulk_approve</strong> 1 runs (only moved content)"),
        "{}",
        page.body
    );
    server.stop().await;
}

/// The build page lists releases 50 at a time, newest first, with links to
/// older and newer pages, and searches them by name and state.
#[tokio::test]
async fn releases_are_paged_and_searched_by_name_and_state() {
    let server = UiServer::start(USERS, |_| {}).await;
    let mut alice = server.browser();
    alice.login("alice", "alice-password").await;
    let build = alice.create_build("many", false).await;
    let key = alice.create_key(build).await;
    let client = server.client(&key);
    let b = BuildId(build);
    for i in 0..54 {
        client
            .create_release(b, &format!("nightly_{i}"), "https://ci/1")
            .await
            .unwrap();
    }
    // Two attempts of one name: the first is superseded (bad).
    for _ in 0..2 {
        client
            .create_release(b, "hotfix 100%", "https://ci/2")
            .await
            .unwrap();
    }
    let rows = |body: &str| body.matches("<td><a href=\"/release?").count();
    let first = alice.get(&format!("/build?id={build}")).await;
    assert_eq!(rows(&first.body), 50);
    assert_eq!(first.text_of("release-range"), "1–50 of 56");
    assert!(first.body.contains("hotfix 100%"), "newest first");
    assert!(!first.body.contains("id=\"newer-releases\""));
    let older = first.body.split("id=\"older-releases\"").next().unwrap();
    let href = older
        .rsplit("href=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let second = alice
        .get(&href.replace("&#x3D;", "=").replace("&amp;", "&"))
        .await;
    assert_eq!(second.status, StatusCode::OK, "{href}");
    assert_eq!(rows(&second.body), 6, "{href}");
    assert_eq!(second.text_of("release-range"), "51–56 of 56");
    assert!(second.body.contains(">nightly_0<"));
    assert!(second.body.contains("id=\"newer-releases\""));
    assert!(!second.body.contains("id=\"older-releases\""));

    // The name matches literally: `_` and `%` are not wildcards.
    let search = |query: &str| format!("/build?id={build}&{query}");
    let by_name = alice.get(&search("q=hotfix+100%25")).await;
    assert_eq!(rows(&by_name.body), 2, "{}", by_name.body);
    let literal = alice.get(&search("q=nightly_1")).await;
    assert_eq!(rows(&literal.body), 11, "nightly_1 and nightly_10..19");
    assert_eq!(literal.text_of("release-range"), "1–11 of 11");
    // Releases that name no branch are on the default branch, shown and
    // found by its name.
    let main = alice.get(&search("branch=main")).await;
    assert_eq!(rows(&main.body), 50, "{}", main.body);
    assert!(main.body.contains("class=\"branch\">main</a>"));
    assert_eq!(rows(&alice.get(&search("branch=other")).await.body), 0);
    let bad = alice.get(&search("status=bad")).await;
    assert_eq!(rows(&bad.body), 1);
    assert!(bad.body.contains("hotfix 100%"));
    let none = alice.get(&search("q=nothing&status=good")).await;
    assert_eq!(rows(&none.body), 0);
    assert!(none.body.contains("id=\"no-match\""));
    for wrong in ["status=great", "page=-1", "page=x"] {
        let page = alice.get(&search(wrong)).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{wrong}");
    }
    server.stop().await;
}

/// Superusers manage accounts in the UI: disable one (its session ends and
/// it cannot log in), enable it again, reset its password (shown once),
/// make it a superuser and back. Nobody else sees the page, and nobody
/// can disable or demote themselves.
#[tokio::test]
async fn superusers_disable_enable_reset_and_promote_accounts() {
    let server = UiServer::start(USERS, |_| {}).await;
    let mut root = server.login("root").await;
    let mut bob = server.login("bob").await;
    assert_eq!(bob.get("/users").await.status, StatusCode::NOT_FOUND);
    assert!(!bob.get("/").await.body.contains("href=\"/users\""));
    let page = root.get("/users").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(root.get("/").await.body.contains("href=\"/users\""));
    for name in ["alice", "bob", "root (you)"] {
        assert!(page.body.contains(&format!("<td>{name}</td>")), "{name}");
    }
    async fn act(browser: &mut Browser, name: &str, action: &str) -> common::ui::Page {
        browser
            .act("/users", &[("name", name), ("action", action)])
            .await
    }
    // bob, a plain user, may not act even with a form.
    let bob_csrf = bob.csrf().await;
    let refused = bob
        .post(
            "/users",
            &[
                ("csrf", &bob_csrf),
                ("name", "alice"),
                ("action", "disable"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);

    // Disable bob: his session ends at once and his password no longer works.
    assert_eq!(
        act(&mut root, "bob", "disable").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(bob.get("/account").await.status, StatusCode::SEE_OTHER);
    let mut again = server.browser();
    let login = again.login("bob", "bob-password").await;
    assert_ne!(
        login.status,
        StatusCode::SEE_OTHER,
        "a disabled account logs in"
    );
    assert!(root.get("/users").await.body.contains(">disabled<"));
    assert_eq!(
        act(&mut root, "bob", "enable").await.status,
        StatusCode::SEE_OTHER
    );
    let mut bob = server.login("bob").await;

    // A new password for bob: shown once; the old one stops working.
    let reset = act(&mut root, "bob", "reset_password").await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    let password = reset.text_of("new-password-value");
    assert_eq!(password.len(), 24, "{password}");
    assert_eq!(bob.get("/account").await.status, StatusCode::SEE_OTHER);
    let mut fresh = server.browser();
    assert_ne!(
        fresh.login("bob", "bob-password").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        fresh.login("bob", &password).await.status,
        StatusCode::SEE_OTHER
    );

    // Promote bob: he sees the queue; demote him again.
    assert_eq!(
        act(&mut root, "bob", "make_superuser").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(fresh.get("/queue").await.status, StatusCode::OK);
    assert_eq!(
        act(&mut root, "bob", "revoke_superuser").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(fresh.get("/queue").await.status, StatusCode::NOT_FOUND);

    // Nobody disables or demotes themselves; unknown names and actions are refused.
    assert_eq!(
        act(&mut root, "root", "disable").await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        act(&mut root, "root", "revoke_superuser").await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        act(&mut root, "nobody", "disable").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        act(&mut root, "bob", "explode").await.status,
        StatusCode::BAD_REQUEST
    );
    server.stop().await;
}

/// Ignore regions drawn in the review UI: stored per build and run name,
/// checked, listed and removed on the build page, logged, and honoured by
/// the diff worker in the next release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_regions_are_stored_checked_and_honoured_by_the_diff_worker() {
    let server = UiServer::start(USERS, |c| {
        c.in_process_workers = true;
        c.worker.capture = false;
        c.worker.idle_pause = Duration::from_millis(20);
    })
    .await;
    let mut alice = server.login("alice").await;
    let build = alice.create_build("clocks", false).await;
    let key = alice.create_key(build).await;
    let client = server.client(&key);
    let b = BuildId(build);
    // A 40x20 page whose "clock" (x 30..=37, y 2..=5) changes.
    let page = |clock: [u8; 3], corner: [u8; 3]| {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, 40, 20);
        enc.set_color(png::ColorType::Rgb);
        let mut w = enc.write_header().unwrap();
        let data: Vec<u8> = (0..20u32)
            .flat_map(|y| (0..40u32).map(move |x| (x, y)))
            .flat_map(|(x, y)| match (x, y) {
                (30..=37, 2..=5) => clock,
                (0..=3, 16..=19) => corner,
                _ => [250, 250, 250],
            })
            .collect();
        w.write_image_data(&data).unwrap();
        w.finish().unwrap();
        out
    };
    // Release n: the clock and (with `corner`) the bottom-left corner differ
    // from the reference; the diff worker diffs it.
    let release = |n: i64, corner: bool| {
        let client = &client;
        let page = &page;
        async move {
            let name = format!("r{n}");
            let rel = client
                .create_release(b, &name, "https://ci/x")
                .await
                .unwrap();
            let reference = client
                .upload_bytes(b, "ref.png", page([0, 0, 0], [250, 250, 250]))
                .await
                .unwrap()
                .sha1sum;
            let corner_colour = if corner { [200, 0, 0] } else { [250, 250, 250] };
            let new = client
                .upload_bytes(b, "new.png", page([0, 0, 200 + n as u8], corner_colour))
                .await
                .unwrap()
                .sha1sum;
            client
                .report_run(&ReportRunRequest {
                    build_id: b,
                    release_name: name.clone(),
                    release_number: rel.release_number,
                    run_name: "/clock".into(),
                    image: Some(new),
                    ref_image: Some(reference),
                    ..Default::default()
                })
                .await
                .unwrap();
            let key = ReleaseKey {
                build_id: b,
                release_name: name,
                release_number: rel.release_number,
            };
            client.runs_done(&key).await.unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let status = client.release_status(&key).await.unwrap();
                if status.status.as_str() == "reviewing" {
                    return status.runs[0].status.as_str().to_string();
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "r{n} never reached review"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(release(1, false).await, "diff_found");

    // Drawing the clock's region: checked first, each error naming the field.
    let draw = |name: &'static str, x1: &'static str, x2: &'static str| {
        [
            ("build_id", build.to_string()),
            ("name", "r1".to_string()),
            ("number", "1".to_string()),
            ("run", "/clock".to_string()),
            ("region_name", name.to_string()),
            ("x1", x1.to_string()),
            ("y1", "1".to_string()),
            ("x2", x2.to_string()),
            ("y2", "6".to_string()),
        ]
    };
    let as_form = |f: &[(&'static str, String)]| -> Vec<(&'static str, String)> { f.to_vec() };
    for (form, status, says) in [
        (
            draw("clock", "39", "29"),
            StatusCode::BAD_REQUEST,
            "x1 must be at most x2",
        ),
        (
            draw("clock", "-1", "29"),
            StatusCode::BAD_REQUEST,
            "x1 must be a whole number",
        ),
        (
            draw(" ", "29", "38"),
            StatusCode::BAD_REQUEST,
            "name: must be 1 to 100 bytes",
        ),
        (
            draw("a\u{7}b", "29", "38"),
            StatusCode::BAD_REQUEST,
            "printable text",
        ),
    ] {
        let form = as_form(&form);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = alice.act("/ignore", &form).await;
        assert_eq!(page.status, status, "{}", page.body);
        assert!(page.body.contains(says), "{says}: {}", page.body);
    }
    let good = as_form(&draw("clock", "29", "38"));
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut bob = server.login("bob").await;
    assert_eq!(
        bob.act("/ignore", &good).await.status,
        StatusCode::NOT_FOUND
    );
    let saved = alice.act("/ignore", &good).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert!(
        saved.location().ends_with("&run=%2Fclock#ignores"),
        "{}",
        saved.location()
    );
    let again = alice.act("/ignore", &good).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.body.contains("already has an ignore region named"));

    // Listed on the run page (drawn over the images there) and the build
    // page, and in the activity log.
    let run = alice
        .get(&format!(
            "/run?build_id={build}&name=r1&number=1&run=%2Fclock"
        ))
        .await;
    assert!(
        run.body.contains("class=\"ignore\" data-x=\"29\" data-y=\"1\" data-w=\"10\" data-h=\"6\">clock <code>29:1-38:6</code>"),
        "{}",
        run.body
    );
    let page = alice.get(&format!("/build?id={build}")).await;
    assert!(
        page.body
            .contains("<td>/clock</td><td>clock</td><td><code>29:1-38:6</code></td><td>alice</td>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("ignore_add</strong> clock 29:1-38:6 on /clock")
    );

    // The next release: only the clock changed, and it is ignored; then the
    // corner changes as well, and that still counts.
    assert_eq!(release(2, false).await, "diff_not_found");
    assert_eq!(release(3, true).await, "diff_found");

    // Removed on the build page: the next release counts the clock again.
    let id = page.input("id");
    let removed = alice
        .act(
            "/ignore/remove",
            &[("build_id", &build.to_string()), ("id", &id)],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    let page = alice.get(&format!("/build?id={build}")).await;
    assert!(!page.body.contains("id=\"ignores\""));
    assert!(
        page.body
            .contains("ignore_remove</strong> clock 29:1-38:6 on /clock")
    );
    assert_eq!(release(4, false).await, "diff_found");
    server.stop().await;
}

/// Branches in the UI: the releases list shows and searches them, the run
/// page says what each run was compared with, a feature branch's run can be
/// approved for the default branch too, and the default branch is a
/// setting that is checked.
#[tokio::test]
async fn branches_are_listed_searched_compared_and_set() {
    use dpxdt_core::api::CreateReleaseRequest;
    let server = UiServer::start(USERS, |_| {}).await;
    let mut alice = server.login("alice").await;
    let build = alice.create_build("branchy", false).await;
    let key = alice.create_key(build).await;
    let client = server.client(&key);
    let b = BuildId(build);
    let white = client
        .upload_bytes(b, "w.png", png(4, 4, [255, 255, 255]))
        .await
        .unwrap()
        .sha1sum;
    let red = client
        .upload_bytes(b, "r.png", png(4, 4, [255, 0, 0]))
        .await
        .unwrap()
        .sha1sum;
    for (name, branch, image, reference) in [
        ("m1", None, &white, None),
        ("f1", Some("feature/a&b"), &red, Some(&white)),
    ] {
        client
            .create_release_with(&CreateReleaseRequest {
                build_id: b,
                release_name: name.into(),
                url: "https://ci/1".into(),
                branch: branch.map(str::to_string),
                commit_sha: Some("abcdef1".into()),
            })
            .await
            .unwrap();
        client
            .report_run(&ReportRunRequest {
                build_id: b,
                release_name: name.into(),
                release_number: 1,
                run_name: "/page".into(),
                image: Some(image.clone()),
                ref_image: reference.cloned(),
                diff_image: reference.map(|_| red.clone()),
                distortion: reference.map(|_| 0.5),
                ..Default::default()
            })
            .await
            .unwrap();
        let key = ReleaseKey {
            build_id: b,
            release_name: name.into(),
            release_number: 1,
        };
        client.runs_done(&key).await.unwrap();
        if name == "m1" {
            let form = [
                ("build_id", build.to_string()),
                ("name", "m1".into()),
                ("number", "1".into()),
                ("status", "good".into()),
            ];
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(
                alice.act("/release/status", &form).await.status,
                StatusCode::SEE_OTHER
            );
        }
    }
    // The list: a branch column (linked to its search) and the search.
    let page = alice.get(&format!("/build?id={build}")).await;
    assert!(
        page.body.contains(&format!(
            "<a href=\"/build?id&#x3D;{build}&amp;branch&#x3D;feature%2Fa%26b\" class=\"branch\">feature/a&amp;b</a>"
        )),
        "{}",
        page.body
    );
    let found = alice
        .get(&format!("/build?id={build}&branch=feature%2Fa%26b"))
        .await;
    assert!(
        found.body.contains(">f1</a>") && !found.body.contains(">m1</a>"),
        "{}",
        found.body
    );
    let bad = alice.get(&format!("/build?id={build}&branch=a%01b")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body
            .contains("branch must not contain control characters")
    );

    // The run page of the feature release: compared with main's m1, and two
    // ways to approve.
    let run = alice
        .get(&format!(
            "/run?build_id={build}&name=f1&number=1&run=%2Fpage"
        ))
        .await;
    assert!(
        run.body.contains("Branch <strong>feature/a&amp;b</strong> · Compared with <a href=\"/release?build_id&#x3D;")
            && run.body.contains(">m1 #1</a> (this branch has none: the default branch&#x27;s)"),
        "{}",
        run.body
    );
    assert!(run.body.contains("Approve for feature/a&amp;b</button>"));
    assert!(
        run.body
            .contains("id=\"approve-default\">Approve, also for main</button>")
    );
    let verdict = [
        ("build_id", build.to_string()),
        ("name", "f1".to_string()),
        ("number", "1".to_string()),
        ("run", "/page".to_string()),
        ("action", "approve_default".to_string()),
    ];
    let verdict: Vec<(&str, &str)> = verdict.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        alice.act("/run/verdict", &verdict).await.status,
        StatusCode::SEE_OTHER
    );
    let page = alice.get(&format!("/build?id={build}")).await;
    assert!(
        page.body.contains("run_approve_default</strong> /page"),
        "{}",
        page.body
    );
    let release = alice
        .get(&format!("/release?build_id={build}&name=f1&number=1"))
        .await;
    assert_eq!(release.text_of("release-branch"), "feature/a&amp;b");
    assert_eq!(release.text_of("release-commit"), "abcdef1");

    // The default branch is a setting, checked like a branch.
    let settings = |branch: &str| {
        vec![
            ("build_id", build.to_string()),
            ("name", "branchy".to_string()),
            ("default_branch", branch.to_string()),
        ]
    };
    let form = settings(&"x".repeat(300));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = alice.act("/build/settings", &form).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused
            .body
            .contains("default branch is 300 bytes, longer than 255")
    );
    let form = settings("trunk");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        alice.act("/build/settings", &form).await.status,
        StatusCode::SEE_OTHER
    );
    let page = alice.get(&format!("/build?id={build}")).await;
    assert!(
        page.body
            .contains("name=\"default_branch\" value=\"trunk\"")
    );
    server.stop().await;
}

/// Retention in the UI: the build page shows what the build stores, its
/// owners set how many releases and days it keeps (checked, nothing
/// half-saved on a bad value), and a release can be kept forever.
#[tokio::test]
async fn owners_set_retention_and_keep_releases() {
    let server = UiServer::start(USERS, |_| {}).await;
    let mut alice = server.login("alice").await;
    let build = alice.create_build("kept", false).await;
    let key = alice.create_key(build).await;
    upload_release(&server.base, build, &key, "r1").await;
    let page = alice.get(&format!("/build?id={build}")).await;
    let usage = page.text_of("usage");
    assert!(
        usage.starts_with("1 releases, ") && usage.ends_with(" stored"),
        "{usage}"
    );
    let settings = |name: &str, releases: &str, days: &str| {
        vec![
            ("build_id", build.to_string()),
            ("name", name.to_string()),
            ("default_branch", "main".to_string()),
            ("keep_releases", releases.to_string()),
            ("keep_days", days.to_string()),
        ]
    };
    for (releases, days, says) in [
        (
            "0",
            "",
            "keep releases must be 1 to 1000000 per branch, got 0",
        ),
        (
            "5",
            "x",
            "keep days must be a whole number, not &quot;x&quot;",
        ),
        ("5", "0", "keep days must be 1 to 36500, got 0"),
    ] {
        let form = settings("renamed", releases, days);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = alice.act("/build/settings", &form).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
        assert!(page.body.contains(says), "{says}: {}", page.body);
    }
    let page = alice.get(&format!("/build?id={build}")).await;
    assert_eq!(page.text_of("build-name"), "kept", "nothing half-saved");
    let form = settings("kept", "5", "");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        alice.act("/build/settings", &form).await.status,
        StatusCode::SEE_OTHER
    );
    let page = alice.get(&format!("/build?id={build}")).await;
    assert!(page.body.contains("name=\"keep_releases\" value=\"5\""));
    assert!(
        page.body
            .contains("name=\"keep_days\" value=\"\" placeholder=\"30 (server default)\"")
    );
    assert!(
        page.body.contains(
            "retention</strong> keep 5 releases per branch, the server&#x27;s default days"
        )
    );

    // Keep forever, then let the policy decide again.
    let keep = |value: &'static str| {
        [
            ("build_id", build.to_string()),
            ("name", "r1".to_string()),
            ("number", "1".to_string()),
            ("keep", value.to_string()),
        ]
    };
    let form = keep("1");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut bob = server.login("bob").await;
    assert_eq!(
        bob.act("/release/keep", &form).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        alice.act("/release/keep", &form).await.status,
        StatusCode::SEE_OTHER
    );
    let release = alice
        .get(&format!("/release?build_id={build}&name=r1&number=1"))
        .await;
    assert!(release.body.contains("id=\"unkeep\""), "{}", release.body);
    let form = keep("0");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        alice.act("/release/keep", &form).await.status,
        StatusCode::SEE_OTHER
    );
    let release = alice
        .get(&format!("/release?build_id={build}&name=r1&number=1"))
        .await;
    assert!(release.body.contains("id=\"keep\""));
    let page = alice.get(&format!("/build?id={build}")).await;
    assert!(page.body.contains("release_keep</strong> r1 #1"));
    assert!(page.body.contains("release_unkeep</strong> r1 #1"));
    server.stop().await;
}

/// Commit statuses: a build's statuses API target is set in its settings
/// (checked, the token sealed and never shown); each release that names its
/// commit gets a status per state, posted in order with retries to a local
/// receiver that checks method, path, headers and body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_statuses_follow_each_release_in_order() {
    use dpxdt_core::api::CreateReleaseRequest;
    use std::sync::{Arc, Mutex};
    use warp::Filter;
    type Call = (String, String, String, serde_json::Value);
    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let seen = calls.clone();
    let api = warp::post()
        .and(warp::path::full())
        .and(warp::header::<String>("authorization"))
        .and(warp::header::<String>("accept"))
        .and(warp::body::json())
        .map(
            move |path: warp::path::FullPath,
                  auth: String,
                  accept: String,
                  body: serde_json::Value| {
                let mut calls = seen.lock().unwrap();
                // The first call for commit abc1234 fails: it is retried
                // before that commit's next status. (By commit, not the
                // first call overall: the two releases' first statuses may
                // arrive in either order.)
                let first = path.as_str().ends_with("/abc1234")
                    && !calls.iter().any(|(p, ..)| p.ends_with("/abc1234"));
                calls.push((path.as_str().to_string(), auth, accept, body));
                count_tx.send_replace(calls.len());
                let status = if first { 502 } else { 201 };
                warp::reply::with_status("{}", warp::http::StatusCode::from_u16(status).unwrap())
            },
        );
    // The check made before a target is saved: GET of the repository.
    let repo = warp::get()
        .and(warp::path!("api" / "v3" / "repos" / String / String))
        .and(warp::header::<String>("authorization"))
        .map(|owner: String, name: String, auth: String| {
            let status = match (owner.as_str(), name.as_str(), auth.as_str()) {
                ("acme", "shop", "Bearer tok-123") => 200,
                ("acme", "shop", _) => 401,
                _ => 404,
            };
            warp::reply::with_status("{}", warp::http::StatusCode::from_u16(status).unwrap())
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}/api/v3", listener.local_addr().unwrap());
    let receiver = tokio::spawn(warp::serve(repo.or(api)).incoming(listener).run());
    // A port nothing listens on, for an unreachable target.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unreachable = format!("http://{}/api", closed.local_addr().unwrap());
    drop(closed);

    let server = UiServer::start(USERS, |c| c.allow_http_status_api = true).await;
    let mut alice = server.login("alice").await;
    let build = alice.create_build("shop", false).await;
    let settings = |api: &str, repo: &str, token: &str| {
        vec![
            ("build_id", build.to_string()),
            ("name", "renamed".to_string()),
            ("status_api", api.to_string()),
            ("status_repo", repo.to_string()),
            ("status_token", token.to_string()),
        ]
    };
    for (api, repo, token, says) in [
        (
            api_url.as_str(),
            "acme",
            "tok-123",
            "status repository must be OWNER/NAME",
        ),
        (
            "ftp://x.example/",
            "acme/shop",
            "tok-123",
            "status API URL must be http:// or https://",
        ),
        (
            api_url.as_str(),
            "acme/shop",
            "",
            "status token: give the API token",
        ),
        (
            api_url.as_str(),
            "acme/nope",
            "tok-123",
            "has no repository acme/nope",
        ),
        (
            api_url.as_str(),
            "acme/shop",
            "wrong",
            "refused the token (401 Unauthorized) for acme/shop",
        ),
        (
            unreachable.as_str(),
            "acme/shop",
            "tok-123",
            "status API: cannot reach",
        ),
    ] {
        let form = settings(api, repo, token);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = alice.act("/build/settings", &form).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
        assert!(page.body.contains(says), "{says}: {}", page.body);
    }
    let page = alice.get(&format!("/build?id={build}")).await;
    assert_eq!(page.text_of("build-name"), "shop", "nothing half-saved");
    let form = settings(&api_url, "acme/shop", "tok-123");
    let mut form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    form[1].1 = "shop";
    assert_eq!(
        alice.act("/build/settings", &form).await.status,
        StatusCode::SEE_OTHER
    );
    let page = alice.get(&format!("/build?id={build}")).await;
    assert!(!page.body.contains("tok-123"), "the token is never shown");
    assert!(page.body.contains("stored (never shown)"));
    let sealed: Vec<u8> = server
        .store
        .blocking(move |c| {
            Ok(c.query_row(
                "SELECT status_token FROM build WHERE id = ?1",
                [build],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert!(
        !sealed.windows(7).any(|w| w == b"tok-123"),
        "sealed at rest"
    );

    // Two releases: abc1234 without a change, def5678 with one, then bad.
    let key = alice.create_key(build).await;
    let client = server.client(&key);
    let b = BuildId(build);
    let white = client
        .upload_bytes(b, "w.png", png(4, 4, [255, 255, 255]))
        .await
        .unwrap()
        .sha1sum;
    let red = client
        .upload_bytes(b, "r.png", png(4, 4, [255, 0, 0]))
        .await
        .unwrap()
        .sha1sum;
    for (name, sha, changed) in [("r1", "abc1234", false), ("r2", "def5678", true)] {
        client
            .create_release_with(&CreateReleaseRequest {
                build_id: b,
                release_name: name.into(),
                url: "https://ci/1".into(),
                branch: None,
                commit_sha: Some(sha.into()),
            })
            .await
            .unwrap();
        client
            .report_run(&ReportRunRequest {
                build_id: b,
                release_name: name.into(),
                release_number: 1,
                run_name: "/".into(),
                image: Some(if changed { red.clone() } else { white.clone() }),
                ref_image: Some(white.clone()),
                diff_image: changed.then(|| red.clone()),
                distortion: Some(if changed { 0.5 } else { 0.0 }),
                ..Default::default()
            })
            .await
            .unwrap();
        let key = ReleaseKey {
            build_id: b,
            release_name: name.into(),
            release_number: 1,
        };
        client.runs_done(&key).await.unwrap();
    }
    // A person's verdicts: r1 good, r2 bad.
    for (name, verdict) in [("r1", "good"), ("r2", "bad")] {
        let form = [
            ("build_id", build.to_string()),
            ("name", name.into()),
            ("number", "1".into()),
            ("status", verdict.into()),
        ];
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            alice.act("/release/status", &form).await.status,
            StatusCode::SEE_OTHER
        );
    }

    // 6 statuses and 1 retry.
    tokio::time::timeout(Duration::from_secs(30), count_rx.wait_for(|n| *n >= 7))
        .await
        .expect("every status is posted within 30 s")
        .unwrap();
    let calls = calls.lock().unwrap().clone();
    for (path, auth, accept, body) in &calls {
        assert!(
            path.starts_with("/api/v3/repos/acme/shop/statuses/"),
            "{path}"
        );
        assert_eq!(auth, "Bearer tok-123");
        assert_eq!(accept, "application/vnd.github+json");
        assert_eq!(body["context"], "depicted/shop");
        let sha = path.rsplit('/').next().unwrap();
        let name = if sha == "abc1234" { "r1" } else { "r2" };
        assert!(
            body["target_url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/release?build_id={build}&name={name}&number=1")),
            "{body}"
        );
    }
    let of = |sha: &str| -> Vec<(String, String)> {
        calls
            .iter()
            .filter(|(p, ..)| p.ends_with(sha))
            .map(|(_, _, _, b)| {
                (
                    b["state"].as_str().unwrap().into(),
                    b["description"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let pair = |s: &str, d: &str| (s.to_string(), d.to_string());
    // The first call failed and was sent again before the next one.
    assert_eq!(
        of("abc1234"),
        [
            pair("pending", "Taking screenshots"),
            pair("pending", "Taking screenshots"),
            pair("success", "No visual changes"),
            pair("success", "Approved")
        ]
    );
    assert_eq!(
        of("def5678"),
        [
            pair("pending", "Taking screenshots"),
            pair("pending", "1 change to review"),
            pair("failure", "Rejected or superseded")
        ]
    );
    let page = alice.get(&format!("/build?id={build}")).await;
    assert!(
        page.body.contains("<strong>status_retry</strong>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<strong>status_sent</strong> r2 #1 def5678 failure: Rejected or superseded")
    );
    server.stop().await;
    receiver.abort();
}

/// Regression: changing only a build's status API URL sent the stored token
/// to the new address at once. A stored token now goes only to the origin
/// (scheme, host, port) it was given for: a new origin needs the token
/// typed again, and nothing is sent there before. Plain `http://` status
/// APIs are refused unless the server allows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_status_token_goes_only_to_the_address_it_was_given_for() {
    use std::sync::{Arc, Mutex};
    use warp::Filter;
    // Two status APIs that answer every repository check with 200 and
    // remember the Authorization header each got.
    let start_api = || {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        let route = warp::any()
            .and(warp::header::optional::<String>("authorization"))
            .map(move |auth: Option<String>| {
                log.lock().unwrap().push(auth.unwrap_or_default());
                "{}"
            });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/api/v3", listener.local_addr().unwrap());
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let task = tokio::spawn(warp::serve(route).incoming(listener).run());
        (url, seen, task)
    };
    let (good_url, good_seen, good_task) = start_api();
    let (evil_url, evil_seen, evil_task) = start_api();

    let server = UiServer::start(USERS, |c| c.allow_http_status_api = true).await;
    let mut alice = server.login("alice").await;
    let build = alice.create_build("shop", false).await;
    let save = |api: &str, token: &str| {
        vec![
            ("build_id", build.to_string()),
            ("name", "shop".to_string()),
            ("status_api", api.to_string()),
            ("status_repo", "acme/shop".to_string()),
            ("status_token", token.to_string()),
        ]
    };
    let form = save(&good_url, "tok-123");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        alice.act("/build/settings", &form).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(*good_seen.lock().unwrap(), ["Bearer tok-123"]);

    // Only the address changes: refused, and the new address hears nothing.
    let form = save(&evil_url, "");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = alice.act("/build/settings", &form).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("give the token again"), "{}", page.body);
    assert!(
        evil_seen.lock().unwrap().is_empty(),
        "no request to the new address"
    );
    let kept = server
        .store
        .blocking(move |c| dpxdt_server::storage::statuses::target(c, BuildId(build)))
        .unwrap()
        .unwrap();
    assert_eq!(kept.api, good_url, "the old target stays");
    // Another path on the same origin keeps the token.
    let same_origin = good_url.replace("/api/v3", "/v4");
    let form = save(&same_origin, "");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        alice.act("/build/settings", &form).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        *good_seen.lock().unwrap(),
        ["Bearer tok-123", "Bearer tok-123"]
    );
    // The token's sealed bytes, copied to another build, do not open there.
    let other = alice.create_build("copy", false).await;
    let store = server.store.clone();
    store
        .blocking(move |c| {
            c.execute(
                "UPDATE build SET status_api = (SELECT status_api FROM build WHERE id = ?1),
                        status_repo = 'acme/shop',
                        status_token = (SELECT status_token FROM build WHERE id = ?1)
                 WHERE id = ?2",
                [build, other],
            )?;
            Ok(())
        })
        .unwrap();
    let key = store.secret_key().unwrap();
    let (sealed, api): (Vec<u8>, String) = store
        .blocking(move |c| {
            Ok(c.query_row(
                "SELECT status_token, status_api FROM build WHERE id = ?1",
                [other],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .unwrap();
    let open = |b: i64| dpxdt_server::storage::statuses::open_token(key, &sealed, BuildId(b), &api);
    assert_eq!(open(build).unwrap(), b"tok-123");
    assert!(open(other).is_err(), "bound to its build");
    server.stop().await;

    // Without --allow-http-status-api, http:// is refused before any call.
    let strict = UiServer::start(USERS, |_| {}).await;
    let mut alice = strict.login("alice").await;
    let build = alice.create_build("shop", false).await;
    let form = [
        ("build_id", build.to_string()),
        ("name", "shop".to_string()),
        ("status_api", evil_url.clone()),
        ("status_repo", "acme/shop".to_string()),
        ("status_token", "tok-123".to_string()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = alice.act("/build/settings", &form).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("plain http://"), "{}", page.body);
    assert!(evil_seen.lock().unwrap().is_empty());
    strict.stop().await;
    good_task.abort();
    evil_task.abort();
}

/// Regression: a 1 MB PNG whose ICC profile inflates to a gigabyte cost
/// the thumbnailer and the diff worker that much memory. Such a file is now
/// refused at upload, naming the chunk; one already stored (here put in
/// place directly, as an older version accepted it) is diffed and
/// thumbnailed with the profile skipped. (The memory bound itself is
/// measured in dpxdt-core's `decoding_a_bomb_costs_no_more_than_its_pixels`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_png_bomb_is_refused_at_upload_and_harmless_once_stored() {
    use dpxdt_core::api::ReportRunRequest;
    let server = UiServer::start(USERS, |c| {
        c.admin_key = Some(dpxdt_server::storage::NewApiKey {
            id: common::ADMIN_ID.into(),
            secret: common::ADMIN_SECRET.into(),
        });
    })
    .await;
    let mut alice = server.login("alice").await;
    let build = alice.create_build("bombs", false).await;
    let key = alice.create_key(build).await;
    let client = server.client(&key);
    let b = BuildId(build);
    // A 64x64 image whose ICC profile is 64 MiB of zeros, compressed.
    let bomb = {
        let mut info = png::Info::with_size(64, 64);
        info.color_type = png::ColorType::Rgb;
        info.bit_depth = png::BitDepth::Eight;
        info.icc_profile = Some(vec![0u8; 64 << 20].into());
        let mut out = Vec::new();
        let mut writer = png::Encoder::with_info(&mut out, info)
            .unwrap()
            .write_header()
            .unwrap();
        writer.write_image_data(&[200u8; 64 * 64 * 3]).unwrap();
        writer.finish().unwrap();
        out
    };
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let err = client
        .upload_bytes(b, "bomb.png", bomb.clone())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(
        err.to_string()
            .contains("upload \"bomb.png\": its iCCP chunk inflates to more than"),
        "{err}"
    );
    // As an older version stored it.
    let id = server.store.artifacts().write_bytes(&bomb).unwrap();
    let len = bomb.len() as i64;
    let stored = id.clone();
    server
        .store
        .blocking(move |c| dpxdt_server::storage::record_artifact(c, b, &stored, "image/png", len))
        .unwrap();
    let reference = client
        .upload_bytes(b, "ref.png", png(64, 64, [10, 10, 10]))
        .await
        .unwrap()
        .sha1sum;
    let release = client.create_release(b, "r", "https://ci/1").await.unwrap();
    client
        .report_run(&ReportRunRequest {
            build_id: b,
            release_name: "r".into(),
            release_number: release.release_number,
            run_name: "/".into(),
            image: Some(id.clone()),
            ref_image: Some(reference),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .runs_done(&ReleaseKey {
            build_id: b,
            release_name: "r".into(),
            release_number: release.release_number,
        })
        .await
        .unwrap();
    let admin = server.client(&(common::ADMIN_ID.into(), common::ADMIN_SECRET.into()));
    let worker = dpxdt_server::workers::DiffWorker::new(
        dpxdt_server::workers::Link::Http(admin),
        Duration::from_secs(30),
    );
    assert!(worker.run_once().await.unwrap(), "the diff task ran");
    let distortion: Option<f64> = server
        .store
        .blocking(|c| {
            Ok(
                c.query_row("SELECT distortion FROM run WHERE name = '/'", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .unwrap();
    assert!(distortion.is_some_and(|d| d > 0.5), "{distortion:?}");
    let thumb = alice.get(&format!("/thumb?build_id={build}&id={id}")).await;
    assert_eq!(thumb.status, StatusCode::OK);
    assert_eq!(thumb.headers["content-type"], "image/png");
    server.stop().await;
}

/// POSTs a form of owned values.
async fn post_owned(
    b: &mut common::ui::Browser,
    path: &str,
    form: &[(&str, String)],
) -> common::ui::Page {
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.post(path, &pairs).await
}

/// An attribute's value as the browser reads it (handlebars escapes `&`,
/// `=` and quotes).
fn unescape(s: &str) -> String {
    s.replace("&#x3D;", "=")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x60;", "`")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A reviewer rejects a run with a reason and comments on a region of it,
/// both shown as text; "Good" then asks first, names what waits, refuses a
/// stale confirmation and logs the override; a verdict on a run of a
/// release that has its own is refused; an approval can be undone for a
/// while.
#[tokio::test]
async fn a_run_is_rejected_commented_on_and_good_asks_first() {
    let Reviewed {
        server,
        mut alice,
        build,
        release_path,
        run_path,
        ..
    } = reviewed_release().await;
    let home = alice.get("/").await;
    assert!(
        home.body
            .contains("<strong class=\"waiting\">1 to review</strong>"),
        "{}",
        home.body
    );
    let csrf = alice.csrf().await;
    let b = build.to_string();
    let at_run = |extra: &[(&'static str, &'static str)]| {
        let mut form: Vec<(&str, String)> = vec![
            ("csrf", csrf.clone()),
            ("build_id", b.clone()),
            ("name", XSS_RELEASE.into()),
            ("number", "1".into()),
            ("run", XSS_RUN.into()),
        ];
        form.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        form
    };

    // Good with a diff nobody looked at asks first, and changes nothing.
    let verdict = |status: &'static str, extra: &[(&'static str, &'static str)]| {
        let mut form = at_run(&[("status", status)]);
        form.retain(|(k, _)| *k != "run");
        form.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        form
    };
    let good = |extra: &[(&'static str, &'static str)]| verdict("good", extra);
    let page = post_owned(&mut alice, "/release/status", &good(&[])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.text_of("waiting"), "1 not reviewed");
    assert_eq!(
        alice.get(&release_path).await.text_of("release-status"),
        "reviewing"
    );

    // A verdict from a page that saw other images is refused.
    let stale = post_owned(
        &mut alice,
        "/run/verdict",
        &at_run(&[("action", "approve"), ("seen", "0123456789ab.-.-")]),
    )
    .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    assert!(
        stale.body.contains("changed since you opened it"),
        "{}",
        stale.body
    );
    // Reject with a reason that looks like markup: stored and shown as text.
    let reason = "<img src=x onerror=alert(1)> price is wrong";
    let page = post_owned(
        &mut alice,
        "/run/verdict",
        &at_run(&[("action", "reject"), ("reason", reason)]),
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = alice.get(&run_path).await;
    assert_eq!(page.text_of("review-state"), "rejected");
    assert_eq!(
        page.text_of("review-reason"),
        "&lt;img src&#x3D;x onerror&#x3D;alert(1)&gt; price is wrong"
    );
    assert!(!page.body.contains("<img src=x"));
    let release = alice.get(&release_path).await;
    let rejected = release
        .body
        .find("id=\"group-rejected\"")
        .expect("a rejected group");
    let diffs = release.body.find("id=\"group-diff_found\"");
    assert!(diffs.is_none(), "the one diff is rejected now");
    assert_eq!(
        release.body.find("id=\"group-"),
        Some(rejected),
        "rejected runs come first"
    );
    let home = alice.get("/").await;
    assert!(
        !home.body.contains("to review</strong>"),
        "nothing waits now"
    );

    // Comments: empty and over-long ones are refused; one on a region is
    // shown as text and outlined on the new image.
    let long: &'static str = "z".repeat(10_001).leak();
    for (text, says) in [("  ", "empty"), (long, "at most 10000")] {
        let page = post_owned(&mut alice, "/run/comment", &at_run(&[("text", text)])).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
        assert!(page.body.contains(says), "{}", page.body);
    }
    let page = post_owned(
        &mut alice,
        "/run/comment",
        &at_run(&[("text", "<b>price</b>\nsecond line"), ("region", "0:0-3:3")]),
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(page.location().contains("#comment-"), "{}", page.location());
    let page = alice.get(&run_path).await;
    assert_eq!(page.text_of("comment-count"), "1");
    assert!(
        page.body
            .contains("<p class=\"body\">&lt;b&gt;price&lt;/b&gt;\nsecond line</p>")
    );
    assert!(
        page.body
            .contains("data-x=\"0\" data-y=\"0\" data-w=\"4\" data-h=\"4\"")
    );
    assert!(
        alice
            .get(&release_path)
            .await
            .body
            .contains("1 comment</span>")
    );

    // Good now names the rejection; a confirmation that saw less is stale.
    let page = post_owned(&mut alice, "/release/status", &good(&[])).await;
    assert_eq!(page.text_of("waiting"), "1 rejected");
    let stale = good(&[
        ("override", "1"),
        ("unreviewed", "0"),
        ("rejected", "0"),
        ("failed", "0"),
    ]);
    let page = post_owned(&mut alice, "/release/status", &stale).await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
    assert!(
        page.body.contains("changed since you confirmed"),
        "{}",
        page.body
    );
    let seen = good(&[
        ("override", "1"),
        ("unreviewed", "0"),
        ("rejected", "1"),
        ("failed", "0"),
    ]);
    let page = post_owned(&mut alice, "/release/status", &seen).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(
        alice.get(&release_path).await.text_of("release-status"),
        "good"
    );
    let log = alice.get(&format!("/build?id={build}")).await;
    assert!(
        log.body.contains("release_good_override</strong>") && log.body.contains("with 1 rejected"),
        "{}",
        log.body
    );
    // The release has its verdict: the run takes none.
    let page = post_owned(&mut alice, "/run/verdict", &at_run(&[("action", "clear")])).await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
    assert!(page.body.contains("already marked good"), "{}", page.body);

    // Back to reviewing; clear, approve, and undo the approval.
    let page = post_owned(&mut alice, "/release/status", &verdict("reviewing", &[])).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    for action in ["clear", "approve"] {
        let page = post_owned(&mut alice, "/run/verdict", &at_run(&[("action", action)])).await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "{action}: {}",
            page.body
        );
        if action == "approve" {
            // The last one to review: back to the release, which offers Undo.
            let next = alice.get(page.location()).await;
            assert!(next.body.contains("id=\"flash\""), "{}", next.body);
            assert!(next.body.contains("id=\"undo\""), "{}", next.body);
        }
    }
    let page = post_owned(&mut alice, "/run/verdict", &at_run(&[("action", "undo")])).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = alice.get(&run_path).await;
    assert_eq!(page.text_of("run-status"), "Diff found");
    let page = post_owned(&mut alice, "/run/verdict", &at_run(&[("action", "undo")])).await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
    assert!(page.body.contains("no approval of yours"), "{}", page.body);

    // An error page shows the real session.
    let missing = alice
        .get(&format!("/release?build_id={build}&name=nope&number=1"))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("Log out") && !missing.body.contains(">Log in<"));
    drop(alice);
    server.stop().await;
}

/// Someone logged out who follows a link to a page (from a mail, say) is
/// asked to log in and comes back to it; a link to a build that does not
/// exist gets the same answer.
#[tokio::test]
async fn a_logged_out_deep_link_logs_in_and_returns() {
    let Reviewed {
        server, run_path, ..
    } = reviewed_release().await;
    let mut visitor = server.browser();
    let nowhere = visitor
        .get("/run?build_id=987654&name=x&number=1&run=%2F")
        .await;
    assert_eq!(nowhere.status, StatusCode::UNAUTHORIZED);
    assert!(nowhere.body.contains("Log in to see this page."));
    let page = visitor.get(&run_path).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert!(page.body.contains("id=\"login-form\""));
    assert_eq!(unescape(&page.input("next")), run_path);
    let csrf = page.input("csrf");
    let next = unescape(&page.input("next"));
    let done = visitor
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("name", "alice"),
                ("password", "alice-password"),
                ("next", &next),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), run_path);
    assert_eq!(visitor.get(&run_path).await.status, StatusCode::OK);
    server.stop().await;
}

/// A person changes their own password: the current one is required, the
/// new one is typed twice; their other browsers are logged out, this one
/// stays, and only the new password logs in.
#[tokio::test]
async fn a_person_changes_their_own_password() {
    let server = UiServer::start(USERS, |_| {}).await;
    let mut here = server.browser();
    here.login("alice", "alice-password").await;
    let mut elsewhere = server.browser();
    elsewhere.login("alice", "alice-password").await;
    let change = |current: &'static str, new: &'static str, again: &'static str| {
        [
            ("current_password", current),
            ("new_password", new),
            ("new_password_again", again),
        ]
    };
    for (form, status, says) in [
        (
            change("wrong-password", "a-new-secret", "a-new-secret"),
            StatusCode::FORBIDDEN,
            "the current password is wrong",
        ),
        (
            change("alice-password", "a-new-secret", "a-new-secrex"),
            StatusCode::BAD_REQUEST,
            "differ",
        ),
        (
            change("alice-password", "short", "short"),
            StatusCode::BAD_REQUEST,
            "at least 8 characters",
        ),
    ] {
        let page = here.act("/account/password", &form).await;
        assert_eq!(page.status, status, "{}", page.body);
        assert!(page.body.contains(says), "{}", page.body);
    }
    assert_eq!(elsewhere.get("/account").await.status, StatusCode::OK);
    let page = here
        .act(
            "/account/password",
            &change("alice-password", "a-new-secret", "a-new-secret"),
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = here.get(page.location()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text_of("account-notice")
            .starts_with("Password changed.")
    );
    let gone = elsewhere.get("/account").await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert!(
        gone.location().starts_with("/login"),
        "the other browser is logged out: {}",
        gone.location()
    );
    let mut again = server.browser();
    assert_eq!(
        again.login("alice", "alice-password").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        again.login("alice", "a-new-secret").await.status,
        StatusCode::SEE_OTHER
    );
    server.stop().await;
}

/// Without mail, an invitation's link is shown to the superuser to pass
/// on; only superusers invite.
#[tokio::test]
async fn without_mail_an_invitation_link_is_shown_and_only_superusers_invite() {
    let server = UiServer::start(USERS, |_| {}).await;
    let mut alice = server.login("alice").await;
    let refused = alice.act("/users/invite", &[("name", "eve")]).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let mut root = server.login("root").await;
    let page = root
        .act("/users/invite", &[("name", "erin"), ("superuser", "1")])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Give them this link yourself"));
    assert!(page.text_of("invite-link").contains("/welcome?token"));
    let bad = root
        .act("/users/invite", &[("name", "no spaces please")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let gone = server.browser().get("/welcome?token=nothing").await;
    assert_eq!(gone.status, StatusCode::GONE);
    server.stop().await;
}

/// A release still receiving shows how many of its runs are finished and
/// offers its progress as JSON for the page to poll; once it is ready for
/// review, the page shows it as such and no longer polls. Only those who
/// may see the build may poll it.
#[tokio::test]
async fn a_release_in_progress_reports_how_far_it_is() {
    let server = UiServer::start(USERS, |_| {}).await;
    let mut alice = server.login("alice").await;
    let build = alice.create_build("progress", false).await;
    let key = alice.create_key(build).await;
    let client = server.client(&key);
    let b = BuildId(build);
    client.create_release(b, "r", "u").await.unwrap();
    let image = client
        .upload_bytes(b, "a.png", png(4, 4, [1, 2, 3]))
        .await
        .unwrap();
    for (run, image) in [("/done", Some(image.sha1sum.clone())), ("/waiting", None)] {
        client
            .report_run(&ReportRunRequest {
                build_id: b,
                release_name: "r".into(),
                release_number: 1,
                run_name: run.into(),
                url: Some("http://example.test/".into()),
                image,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let page = alice
        .get(&format!("/release?build_id={build}&name=r&number=1"))
        .await;
    assert_eq!(page.text_of("live-text"), "1 of 2 runs finished");
    let poll = format!("/release/progress?build_id={build}&name=r&number=1");
    let progress = alice.get(&poll).await;
    assert_eq!(progress.status, StatusCode::OK);
    assert_eq!(progress.headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_str(&progress.body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"status": "receiving", "total": 2, "finished": 1})
    );
    let mut bob = server.login("bob").await;
    assert_eq!(bob.get(&poll).await.status, StatusCode::NOT_FOUND);

    client
        .report_run(&ReportRunRequest {
            build_id: b,
            release_name: "r".into(),
            release_number: 1,
            run_name: "/waiting".into(),
            image: Some(image.sha1sum.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .runs_done(&ReleaseKey {
            build_id: b,
            release_name: "r".into(),
            release_number: 1,
        })
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&alice.get(&poll).await.body).unwrap();
    assert_eq!(json["status"], "reviewing");
    assert_eq!(json["finished"], 2);
    let page = alice
        .get(&format!("/release?build_id={build}&name=r&number=1"))
        .await;
    assert!(!page.body.contains("id=\"live\""));
    server.stop().await;
}
