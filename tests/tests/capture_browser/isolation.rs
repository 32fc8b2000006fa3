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
