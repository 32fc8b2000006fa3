//! Shared helpers for the server's integration tests: a server on
//! `127.0.0.1:0` with a temp data dir, raw HTTP calls, and test images.
#![allow(dead_code)]

pub mod ui;

use std::time::Duration;

use dpxdt_server::Config;
use dpxdt_server::storage::{
    ArtifactsConfig, ArtifactsUrl, Blobs, DatabaseUrl, NewApiKey, S3Settings,
};
use serde_json::Value;

/// One test body run against both storage set-ups: SQLite and the data
/// directory (the default), and a real PostgreSQL with the bucket of a real
/// Garage node (S3). Defines the tests `NAME::dir` and `NAME::pg_s3`; the
/// body gets the [`Backend`] as `$backend`.
macro_rules! each_backend {
    ($(#[doc = $doc:literal])* async fn $name:ident($backend:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($backend: $crate::common::Backend) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dir() {
                run($crate::common::Backend::Dir).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pg_s3() {
                run($crate::common::Backend::Scaled).await
            }
        }
    };
}

/// Where a test server keeps its records and artifact bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite and the data directory (the default).
    Dir,
    /// A fresh database of the test process's PostgreSQL, and a key prefix
    /// of its own in the bucket of the test process's Garage.
    Scaled,
}

impl Backend {
    /// The backend of servers whose test does not choose one: `Dir`, or the
    /// one `DPXDT_TEST_STORAGE` names (`dir` or `pg_s3`), so the whole suite
    /// can run on PostgreSQL and S3 (`scripts/test.sh` does both).
    pub fn from_env() -> Backend {
        match std::env::var("DPXDT_TEST_STORAGE").as_deref() {
            Err(_) | Ok("") | Ok("dir") => Backend::Dir,
            Ok("pg_s3") => Backend::Scaled,
            Ok(other) => panic!("DPXDT_TEST_STORAGE={other:?}: use dir or pg_s3"),
        }
    }

    /// The database of a new server on this backend (a new, empty one).
    pub fn database(self) -> DatabaseUrl {
        match self {
            Backend::Dir => DatabaseUrl::DataDir,
            Backend::Scaled => {
                DatabaseUrl::Postgres(dpxdt_e2e::postgres::shared().fresh_database())
            }
        }
    }

    /// The artifacts configuration of a new server on this backend.
    pub fn artifacts(self) -> ArtifactsConfig {
        match self {
            Backend::Dir => ArtifactsConfig::default(),
            Backend::Scaled => {
                let garage = dpxdt_e2e::garage::shared();
                ArtifactsConfig {
                    url: ArtifactsUrl::S3 {
                        bucket: garage.bucket.clone(),
                        prefix: format!(
                            "test-{}",
                            dpxdt_server::storage::sessions::random_token(8)
                        ),
                    },
                    s3: S3Settings {
                        endpoint: Some(garage.endpoint.clone()),
                        region: Some(dpxdt_e2e::garage::REGION.into()),
                        access_key_id: Some(garage.key_id.clone()),
                        secret_access_key: Some(garage.secret.clone()),
                        allow_http: true,
                    },
                }
            }
        }
    }

    /// Points `config` at this backend.
    pub fn apply(self, config: &mut Config) {
        config.artifacts = self.artifacts();
        config.database = self.database();
    }

    /// The environment that points the server binary at this backend, and
    /// the same settings as a config (to look at what it stored).
    pub fn for_binary(self) -> (Storage, Vec<(&'static str, String)>) {
        let artifacts = self.artifacts();
        let database = self.database();
        let mut env = Vec::new();
        if let ArtifactsUrl::S3 { .. } = &artifacts.url {
            env = dpxdt_e2e::garage::shared().env();
            env.push(("DPXDT_ARTIFACTS_URL", artifacts.url.to_string()));
        }
        if let DatabaseUrl::Postgres(url) = &database {
            env.push(("DPXDT_DATABASE_URL", url.clone()));
        }
        (
            Storage {
                database,
                artifacts,
            },
            env,
        )
    }
}

/// Where a server's records and artifact bytes are.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The database.
    pub database: DatabaseUrl,
    /// The artifacts.
    pub artifacts: ArtifactsConfig,
}

impl Storage {
    /// Opens the store beside the server whose data directory is `dir`.
    pub fn open(&self, dir: &std::path::Path) -> dpxdt_server::storage::Store {
        dpxdt_server::storage::Store::open_shared_at(dir, &self.database, &self.artifacts).unwrap()
    }
}

/// The superuser key every test server is configured with.
pub const ADMIN_ID: &str = "testadmin";
/// Its secret.
pub const ADMIN_SECRET: &str = "testadmin-secret-0123456789";

/// A server running in this process.
pub struct TestServer {
    pub base: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// Where its artifact bytes are.
    pub artifacts: ArtifactsConfig,
    /// Where its database is.
    pub database: DatabaseUrl,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server; `tweak` adjusts the config (workers are off by default).
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path());
        config.in_process_workers = false;
        config.admin_key = Some(NewApiKey {
            id: ADMIN_ID.into(),
            secret: ADMIN_SECRET.into(),
        });
        Backend::from_env().apply(&mut config);
        tweak(&mut config);
        let artifacts = config.artifacts.clone();
        let database = config.database.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let handle = tokio::spawn(async move {
            dpxdt_server::serve(listener, config, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestServer {
            base,
            dir,
            http: reqwest::Client::new(),
            artifacts,
            database,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(20), h)
                .await
                .expect("server stops")
                .unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/{path}", self.base)
    }

    /// A typed client with `key`.
    pub fn client(&self, key: &Key) -> dpxdt_client::Client {
        dpxdt_client::Client::builder(&self.base)
            .api_key(&key.0, &key.1)
            .retries(0)
            .build()
            .unwrap()
    }

    /// POSTs a url-encoded form; returns status and JSON body.
    pub async fn post(&self, key: Option<&Key>, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).form(form);
        if let Some(k) = key {
            req = req.basic_auth(&k.0, Some(&k.1));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// GETs with a query; returns status and raw body.
    pub async fn get(
        &self,
        key: Option<&Key>,
        path: &str,
        query: &[(&str, &str)],
    ) -> (u16, Vec<u8>) {
        let mut req = self.http.get(self.url(path)).query(query);
        if let Some(k) = key {
            req = req.basic_auth(&k.0, Some(&k.1));
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
    }

    /// Sends every call and checks its answer: the status, and for a
    /// refusal a JSON body `{"success": false, "error": …}` that contains
    /// the expected text. Reports every mismatch at once.
    pub async fn expect(&self, calls: &[Call]) {
        let mut wrong = Vec::new();
        for call in calls {
            let url = self.url(&call.path);
            let mut req = self.http.request(call.method.clone(), &url);
            req = if call.method == reqwest::Method::GET {
                req.query(&call.form)
            } else {
                req.form(&call.form)
            };
            req = match &call.auth {
                Auth::None => req,
                Auth::Key(k) => req.basic_auth(&k.0, Some(&k.1)),
                Auth::Header(h) => req.header("authorization", h),
            };
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.bytes().await.unwrap();
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let text = String::from_utf8_lossy(&body);
            if status != call.status {
                wrong.push(format!(
                    "{call}: answered {status}, not {}: {text}",
                    call.status
                ));
            } else if status >= 400 {
                let error = json["error"].as_str().unwrap_or_default();
                if json["success"] != false || error.is_empty() {
                    wrong.push(format!("{call}: not a JSON error: {text}"));
                } else if let Some(says) = &call.says
                    && !error.contains(says.as_str())
                {
                    wrong.push(format!("{call}: error does not say {says:?}: {error}"));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {} calls answered wrongly:\n{}",
            wrong.len(),
            calls.len(),
            wrong.join("\n")
        );
    }

    /// Uploads bytes as `name`; returns status and JSON body.
    pub async fn upload(&self, key: &Key, build: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
        let form = reqwest::multipart::Form::new()
            .text("build_id", build.to_string())
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
            );
        let resp = self
            .http
            .post(self.url("upload"))
            .basic_auth(&key.0, Some(&key.1))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Creates a build and a key for it with the admin key.
    pub async fn build_with_key(&self, name: &str) -> (String, Key) {
        let (s, b) = self
            .post(Some(&admin()), "create_build", &[("name", name)])
            .await;
        assert_eq!(s, 200, "{b}");
        let build = b["build_id"].to_string();
        let (s, k) = self
            .post(Some(&admin()), "create_api_key", &[("build_id", &build)])
            .await;
        assert_eq!(s, 200, "{k}");
        let key = Key(
            k["api_key"].as_str().unwrap().to_string(),
            k["api_secret"].as_str().unwrap().to_string(),
        );
        (build, key)
    }

    /// Lets `build`'s API keys give verdicts (`create-build --key-verdicts`).
    pub fn allow_key_verdicts(&self, build: &str) {
        let store = self.store();
        let id = dpxdt_core::BuildId(build.parse().unwrap());
        store
            .blocking(|c| dpxdt_server::storage::builds::set_key_verdicts(c, id, true))
            .unwrap();
    }

    /// The server's store, opened beside it (its database and artifacts,
    /// wherever they are).
    pub fn store(&self) -> dpxdt_server::storage::Store {
        dpxdt_server::storage::Store::open_shared_at(
            self.dir.path(),
            &self.database,
            &self.artifacts,
        )
        .unwrap()
    }

    /// The server's artifact bytes, wherever they are.
    pub fn blobs(&self) -> Blobs {
        Blobs::open(self.dir.path(), &self.artifacts, false).unwrap()
    }

    /// What is stored where artifacts go: the file names under the
    /// artifact directory (whatever they are), or the bucket's artifacts.
    pub fn artifact_files(&self) -> Vec<String> {
        if let ArtifactsUrl::S3 { .. } = self.artifacts.url {
            let ids = self.blobs().list().unwrap();
            return ids.iter().map(|id| id.as_str().to_owned()).collect();
        }
        let mut out = Vec::new();
        let root = self.dir.path().join("artifacts");
        for d in std::fs::read_dir(&root).unwrap().flatten() {
            for f in std::fs::read_dir(d.path()).unwrap().flatten() {
                out.push(f.file_name().to_string_lossy().into_owned());
            }
        }
        out
    }
}

/// An API key id and secret.
#[derive(Clone, Debug)]
pub struct Key(pub String, pub String);

/// One row of a table-driven API test: a request and the answer it must
/// get. Build rows with [`Call::post`] / [`Call::get`] / [`Call::with_auth`],
/// then [`Call::is`] and [`Call::says`]; run them with [`TestServer::expect`].
#[derive(Clone, Debug)]
pub struct Call {
    method: reqwest::Method,
    auth: Auth,
    path: String,
    form: Vec<(String, String)>,
    status: u16,
    says: Option<String>,
}

#[derive(Clone, Debug)]
enum Auth {
    None,
    Key(Key),
    Header(String),
}

impl Call {
    fn new(method: reqwest::Method, key: Option<&Key>, path: &str, form: &[(&str, &str)]) -> Call {
        Call {
            method,
            auth: key.map_or(Auth::None, |k| Auth::Key(k.clone())),
            path: path.to_string(),
            form: form
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            status: 200,
            says: None,
        }
    }

    /// A POST of `form` to `/api/<path>`, with `key` if given.
    pub fn post(key: Option<&Key>, path: &str, form: &[(&str, &str)]) -> Call {
        Call::new(reqwest::Method::POST, key, path, form)
    }

    /// A GET of `/api/<path>` with `query`, with `key` if given.
    pub fn get(key: Option<&Key>, path: &str, query: &[(&str, &str)]) -> Call {
        Call::new(reqwest::Method::GET, key, path, query)
    }

    /// Any method, as is.
    pub fn method(method: reqwest::Method, key: Option<&Key>, path: &str) -> Call {
        Call::new(method, key, path, &[])
    }

    /// This request with a raw `Authorization` header instead of a key.
    pub fn with_auth(mut self, header: &str) -> Call {
        self.auth = Auth::Header(header.to_string());
        self
    }

    /// The status the answer must have (200 unless said).
    pub fn is(mut self, status: u16) -> Call {
        self.status = status;
        self
    }

    /// Text the JSON error must contain.
    pub fn says(mut self, text: &str) -> Call {
        self.says = Some(text.to_string());
        self
    }
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = match &self.auth {
            Auth::None => "no key".to_string(),
            Auth::Key(k) => format!("key {}", k.0),
            Auth::Header(h) => format!("Authorization {h:?}"),
        };
        write!(
            f,
            "{} /api/{} {:?} ({who})",
            self.method, self.path, self.form
        )
    }
}

/// The configured superuser key.
/// The one integer `sql` (a `SELECT COUNT(*) …`) gives in `store`.
pub fn count(store: &dpxdt_server::storage::Store, sql: &str) -> i64 {
    store
        .blocking(|c| Ok(c.query_row(sql, [], |r| r.get(0))?))
        .unwrap()
}

pub fn admin() -> Key {
    Key(ADMIN_ID.into(), ADMIN_SECRET.into())
}

/// A `w`×`h` RGBA PNG of one colour, with pixel (0, 0) set to `dot` if given.
pub fn png(w: u32, h: u32, rgba: [u8; 4], dot: Option<[u8; 4]>) -> Vec<u8> {
    let mut data: Vec<u8> = (0..w * h).flat_map(|_| rgba).collect();
    if let Some(d) = dot {
        data[..4].copy_from_slice(&d);
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(&data).unwrap();
    }
    out
}
