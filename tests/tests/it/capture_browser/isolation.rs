//! Nothing passes from one capture's page to the next in the same browser
//! session (as when two builds' captures share a capture worker).

use super::*;

#[tokio::test]
async fn storage_left_by_one_capture_is_gone_in_the_next() {
    let server = PageServer::start();
    server.set(
        "/sw.js",
        Page::new(
            "text/javascript",
            "self.addEventListener('fetch', () => {});",
        ),
    );
    server.set_html(
        "/writer",
        r#"<!doctype html><body><script>
        (async () => {
          localStorage.setItem('secret', 'build A');
          sessionStorage.setItem('secret', 'build A');
          document.cookie = 'secret=buildA; max-age=3600; path=/';
          await new Promise((done) => {
            const open = indexedDB.open('secrets', 1);
            open.onupgradeneeded = () => open.result.createObjectStore('s');
            open.onsuccess = () => { open.result.close(); done(); };
          });
          await (await caches.open('secrets')).put('/secret', new Response('build A'));
          await navigator.serviceWorker.register('/sw.js');
          const p = document.createElement('p');
          p.id = 'written';
          document.body.appendChild(p);
        })();
        </script></body>"#,
    );
    server.set_html(
        "/reader",
        r#"<!doctype html><body style="margin:0"><div id="box" style="width:100px;height:100px;background:red"></div><script>
        (async () => {
          const left = [];
          if (localStorage.length) left.push('localStorage');
          if (sessionStorage.length) left.push('sessionStorage');
          if (document.cookie) left.push('cookie');
          if ((await indexedDB.databases()).length) left.push('IndexedDB');
          if ((await caches.keys()).length) left.push('Cache Storage');
          if ((await navigator.serviceWorker.getRegistrations()).length) left.push('service worker');
          if (left.length) { setTimeout(() => { throw new Error('left over: ' + left.join(', ')); }); }
          else document.getElementById('box').style.background = 'green';
          const p = document.createElement('p');
          p.id = 'read';
          document.body.appendChild(p);
        })();
        </script></body>"#,
    );
    // One session, so the reader runs where the writer ran.
    let b = Browser::launch(BrowserOptions {
        attempts: 1,
        ..BrowserOptions::default()
    })
    .await
    .unwrap();
    let written = b
        .capture(
            &server.url("/writer"),
            &config(r##"{"waitForSelector": "#written"}"##),
        )
        .await
        .unwrap();
    assert!(!written.log.contains("page error"), "{}", written.log);
    let read = b
        .capture(
            &server.url("/reader"),
            &config(r##"{"waitForSelector": "#read"}"##),
        )
        .await
        .unwrap();
    let img = image::load_from_memory(&read.png).unwrap().to_rgba8();
    assert_eq!(px(&img, 10, 10), GREEN, "{}", read.log);
    b.shutdown().await;
}

/// Three captures of one page (builds 1, 2, then 1 again) through one
/// browser session, against a server that keeps every connection open
/// whatever `Connection: close` says. The page paints what an earlier
/// capture left in its storage, then leaves its own there; each capture
/// must find nothing. Each request must be checked by the policy on its
/// own, so none may reach the server on a connection that carried another
/// (Chromium would otherwise reuse the open one, unchecked and unrecorded),
/// and a request to a refused host is refused.
#[tokio::test]
async fn a_kept_alive_upstream_carries_nothing_into_the_next_capture() {
    let server = PageServer::start_keep_alive();
    server.set_html(
        "/page",
        r#"<!doctype html><body style="margin:0"><div id="box" style="width:100px;height:100px;background:red"></div><script>
        const left = [];
        if (localStorage.length) left.push('localStorage');
        if (document.cookie) left.push('cookie');
        // What is left is reported to the server, for the failure message.
        if (left.length) fetch('/left-over?' + left.join(','));
        else document.getElementById('box').style.background = 'green';
        localStorage.setItem('secret', 'an earlier build');
        document.cookie = 'secret=earlier; max-age=3600; path=/';
        fetch('http://169.254.169.254/latest/meta-data/').catch(() => {}).finally(() => {
          const p = document.createElement('p');
          p.id = 'done';
          document.body.appendChild(p);
        });
        </script></body>"#,
    );
    // One session, so each capture runs where the one before ran.
    let b = Browser::launch(BrowserOptions {
        attempts: 1,
        ..BrowserOptions::default()
    })
    .await
    .unwrap();
    for build in [1, 2, 1] {
        let shot = b
            .capture(
                &server.url("/page"),
                &config(r##"{"waitForSelector": "#done"}"##),
            )
            .await
            .unwrap();
        let img = image::load_from_memory(&shot.png).unwrap().to_rgba8();
        assert_eq!(
            px(&img, 10, 10),
            GREEN,
            "build {build}:\n{}\n{:#?}",
            shot.log,
            server.requests()
        );
        assert!(
            shot.log
                .lines()
                .any(|l| l.contains("refused by the network policy")
                    && l.contains("http://169.254.169.254/latest/meta-data/")),
            "build {build}: the fetch was checked and refused:\n{}",
            shot.log
        );
    }
    let requests = server.requests();
    let mut connections: Vec<usize> = requests.iter().map(|r| r.connection).collect();
    connections.sort_unstable();
    connections.dedup();
    assert_eq!(
        connections.len(),
        requests.len(),
        "a connection carried more than one request: {requests:#?}"
    );
    b.shutdown().await;
}

/// A `file:` page's storage: its origin is reached without any request
/// through the proxy, so only a fresh browser context per capture clears it.
#[tokio::test]
async fn storage_of_a_file_page_is_gone_in_the_next_capture() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("writer.html"),
        r#"<!doctype html><body><script>
        localStorage.setItem('secret', 'build 1');
        const p = document.createElement('p');
        p.id = 'written';
        document.body.appendChild(p);
        </script></body>"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("reader.html"),
        probe_page("localStorage.length === 0"),
    )
    .unwrap();
    let url = |name: &str| format!("file://{}", dir.path().join(name).display());
    let b = Browser::launch(BrowserOptions {
        attempts: 1,
        ..BrowserOptions::default()
    })
    .await
    .unwrap();
    b.capture(
        &url("writer.html"),
        &config(r##"{"waitForSelector": "#written"}"##),
    )
    .await
    .unwrap();
    let read = b.capture(&url("reader.html"), &config("{}")).await.unwrap();
    let img = image::load_from_memory(&read.png).unwrap().to_rgba8();
    assert_eq!(px(&img, 10, 10), GREEN, "{}", read.log);
    b.shutdown().await;
}

/// The processes of the browser behind `browser`: chromedriver (found by
/// its port) and everything in its process group, as (uid, command line).
/// A process: its id, process group, user and command line.
pub(super) struct Proc {
    pub(super) pid: u32,
    pub(super) pgrp: u32,
    pub(super) uid: u32,
    pub(super) cmd: String,
}

/// Every process of this machine.
pub(super) fn processes() -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let pgrp = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(2)?
                .parse()
                .ok()?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            Some(Proc {
                pid,
                pgrp,
                uid,
                cmd,
            })
        })
        .collect()
}

/// The processes of `browser`'s chromedriver group: (uid, command line).
fn browser_processes(browser: &Browser) -> Vec<(u32, String)> {
    let port = browser.driver_url().rsplit(':').next().expect("port");
    let port_arg = format!("--port={port}");
    let procs = processes();
    let driver = procs
        .iter()
        .find(|p| p.cmd.contains("chromedriver") && p.cmd.contains(&port_arg))
        .map(|p| p.pid)
        .expect("chromedriver process");
    procs
        .into_iter()
        .filter(|p| p.pgrp == driver)
        .map(|p| (p.uid, p.cmd))
        .collect()
}

pub(super) fn uid_of(user: &str) -> u32 {
    let out = std::process::Command::new("id")
        .args(["-u", user])
        .output()
        .expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a uid")
}

#[tokio::test]
async fn a_server_browser_never_runs_as_root_or_unsandboxed() {
    // What a server launches: as root, chromedriver and Chromium become
    // `nobody` with Chromium's sandbox on.
    let server_browser = Browser::launch(BrowserOptions {
        sessions: 1,
        attempts: 1,
        as_root: AsRoot::Unprivileged,
        ..BrowserOptions::default()
    })
    .await
    .expect("the browser starts as nobody in its sandbox");
    let pages = PageServer::start();
    pages.set_html("/p", &probe_page("true"));
    let shot = server_browser
        .capture(&pages.url("/p"), &config("{}"))
        .await
        .expect("capture as nobody");
    let img = image::load_from_memory(&shot.png).expect("png").to_rgba8();
    assert_eq!(px(&img, 50, 50), GREEN, "the page rendered and ran");

    let me = uid_of(&std::env::var("USER").unwrap_or_else(|_| "root".into()));
    let as_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .expect("/proc/self");
    let expected = if as_root { uid_of("nobody") } else { me };
    let procs = browser_processes(&server_browser);
    assert!(
        procs.iter().any(|(_, c)| c.contains("--type=renderer")),
        "a renderer among {procs:?}"
    );
    for (uid, cmd) in &procs {
        assert_eq!(*uid, expected, "runs as uid {expected}: {cmd}");
        assert!(!cmd.contains("--no-sandbox"), "sandboxed: {cmd}");
    }

    // The default for one's own pages (local mode, `cargo test`) keeps
    // today's behaviour, which the same check tells apart.
    if as_root {
        let local = browser_processes(browser().await);
        assert!(
            local
                .iter()
                .any(|(uid, c)| *uid == 0 && c.contains("--no-sandbox")),
            "the local-mode browser runs as root without its sandbox: {local:?}"
        );
    }
}
