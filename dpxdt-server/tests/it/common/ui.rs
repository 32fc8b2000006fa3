//! The review UI over HTTP for tests: a server with UI users, and a
//! minimal cookie-keeping browser that does not follow redirects.

use std::collections::HashMap;
use std::time::Duration;

use dpxdt_server::Config;
use dpxdt_server::storage::Store;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// A server running in this process with workers off, webhooks allowed to
/// call loopback, and UI users whose password is `NAME-password`.
pub struct UiServer {
    pub base: String,
    /// Its store, e.g. to set users' e-mail addresses.
    pub store: Store,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl UiServer {
    /// Starts a server with `users` (name, superuser); `tweak` adjusts the config.
    pub async fn start(users: &[(&str, bool)], tweak: impl FnOnce(&mut Config)) -> UiServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path());
        config.in_process_workers = false;
        // The tests' webhook receivers listen on loopback.
        config.allow_private_webhooks = true;
        super::Backend::from_env().apply(&mut config);
        tweak(&mut config);
        let (store, _) = dpxdt_server::init_data_dir(&config).unwrap();
        for &(name, superuser) in users {
            dpxdt_server::ui::create_user(&store, name, &format!("{name}-password"), superuser)
                .unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = store.clone();
        let handle = tokio::spawn(async move {
            dpxdt_server::serve_store(listener, serving, config, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        UiServer {
            base,
            store,
            _dir: dir,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(20), self.handle.take().unwrap())
            .await
            .expect("server stops")
            .unwrap();
    }

    /// An API client with `key` (id, secret), without retries.
    pub fn client(&self, key: &(String, String)) -> dpxdt_client::Client {
        dpxdt_client::Client::builder(&self.base)
            .api_key(&key.0, &key.1)
            .retries(0)
            .build()
            .unwrap()
    }

    /// A browser with no session yet.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// A browser logged in as `name`.
    pub async fn login(&self, name: &str) -> Browser {
        let mut b = self.browser();
        let page = b.login(name, &format!("{name}-password")).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "login as {name}");
        b
    }
}

/// A minimal browser: keeps cookies, does not follow redirects.
pub struct Browser {
    pub base: String,
    pub http: reqwest::Client,
    pub cookies: HashMap<String, String>,
    /// Headers sent with every request (e.g. a proxy's `x-forwarded-proto`).
    pub extra: Vec<(&'static str, &'static str)>,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the first hidden input `name`.
    pub fn input(&self, name: &str) -> String {
        self.after(
            &format!("name=\"{name}\" value=\""),
            '"',
            &format!("input {name}"),
        )
    }

    /// The text of the element with id `id` (up to its first tag).
    pub fn text_of(&self, id: &str) -> String {
        self.after(&format!("id=\"{id}\">"), '<', &format!("element #{id}"))
    }

    /// The body's text between the first `needle` and the next `end`.
    fn after(&self, needle: &str, end: char, what: &str) -> String {
        let start = self
            .body
            .find(needle)
            .unwrap_or_else(|| panic!("no {what} in {}", self.body))
            + needle.len();
        let len = self.body[start..].find(end).unwrap();
        self.body[start..start + len].to_string()
    }
}

impl Browser {
    /// A browser for the server at `base`.
    pub fn new(base: &str) -> Browser {
        Browser {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            extra: Vec::new(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let mut req = req.header("cookie", self.cookie_header());
        for (k, v) in &self.extra {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        for sc in resp.headers().get_all("set-cookie") {
            let sc = sc.to_str().unwrap();
            let (kv, attrs) = sc.split_once(';').unwrap_or((sc, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    pub async fn login(&mut self, name: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.input("csrf");
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("name", name),
                ("password", password),
                ("next", "/"),
            ],
        )
        .await
    }

    /// The session's CSRF token, read from the home page's logout form.
    pub async fn csrf(&mut self) -> String {
        self.get("/").await.input("csrf")
    }

    /// POSTs a form with the session's CSRF token added.
    pub async fn act(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let csrf = self.csrf().await;
        let mut form = form.to_vec();
        form.push(("csrf", &csrf));
        self.post(path, &form).await
    }

    /// Creates a build and returns its id.
    pub async fn create_build(&mut self, name: &str, public: bool) -> i64 {
        let csrf = self.csrf().await;
        let mut form = vec![("csrf", csrf.as_str()), ("name", name)];
        if public {
            form.push(("public", "1"));
        }
        let page = self.post("/new_build", &form).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        page.location()
            .strip_prefix("/build?id=")
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Creates an API key on the build page; returns (id, secret).
    pub async fn create_key(&mut self, build: i64) -> (String, String) {
        let csrf = self.csrf().await;
        let page = self
            .post(
                "/build/api_key",
                &[
                    ("csrf", &csrf),
                    ("build_id", &build.to_string()),
                    ("purpose", "CI"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        (page.text_of("new-key-id"), page.text_of("new-key-secret"))
    }
}
