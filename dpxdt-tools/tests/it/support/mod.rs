//! Shared set-up of the server-backed tests: one real server per test
//! binary (`dpxdt_server::serve` on 127.0.0.1:0 in a temporary data
//! directory, on a runtime of its own thread so it outlives every test's
//! runtime), and a fresh build with its own API key per test.
#![allow(dead_code)]

use std::time::Duration;

use dpxdt_client::Client;
use dpxdt_core::BuildId;

/// The superuser key the test server is configured with.
pub const ADMIN_ID: &str = "tools-tests-admin";
/// Its secret.
pub const ADMIN_SECRET: &str = "tools-tests-admin-secret";

/// A running server.
pub struct TestServer {
    /// The API root, `http://127.0.0.1:<port>/api`.
    pub api: String,
    _data: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server; `workers` runs the in-process capture and diff workers.
    pub fn start(workers: bool) -> TestServer {
        let data = tempfile::tempdir().expect("temp dir");
        let mut config = dpxdt_server::Config::new(data.path());
        config.admin_key = Some(dpxdt_server::storage::NewApiKey {
            id: ADMIN_ID.into(),
            secret: ADMIN_SECRET.into(),
        });
        config.in_process_workers = workers;
        // The test pages are served on this machine.
        config.worker.capture_network = dpxdt_core::netpolicy::NetworkPolicy {
            allow: vec!["127.0.0.1".parse().expect("a CIDR")],
            ..dpxdt_core::netpolicy::NetworkPolicy::server()
        };
        config.worker.idle_pause = Duration::from_millis(50);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1:0");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                dpxdt_server::serve(listener, config, std::future::pending())
                    .await
                    .expect("server runs");
            });
        });
        let addr = rx.recv().expect("server started");
        TestServer {
            api: format!("http://{addr}/api"),
            _data: data,
        }
    }

    /// A client with the superuser key.
    pub fn admin(&self) -> Client {
        Client::builder(&self.api)
            .api_key(ADMIN_ID, ADMIN_SECRET)
            .build()
            .unwrap()
    }

    /// A new build with a key scoped to it.
    pub async fn new_build(&self, name: &str) -> Build {
        let admin = self.admin();
        let build = admin.create_build(name).await.unwrap();
        let key = admin
            .create_api_key(build.build_id, Some("tools tests"))
            .await
            .unwrap();
        // The tests mark releases good with the build's key, as a CI job
        // of a build created with `create-build --key-verdicts` would.
        let id = build.build_id;
        dpxdt_server::storage::Store::open_shared(self._data.path())
            .unwrap()
            .blocking(|c| dpxdt_server::storage::builds::set_key_verdicts(c, id, true))
            .unwrap();
        let client = Client::builder(&self.api)
            .api_key(&key.api_key, &key.api_secret)
            .build()
            .unwrap();
        Build {
            id: build.build_id,
            key_id: key.api_key,
            secret: key.api_secret,
            client,
        }
    }
}

/// A build of a test's own, with a key scoped to it.
pub struct Build {
    /// The build.
    pub id: BuildId,
    /// Its API key id.
    pub key_id: String,
    /// Its API key secret.
    pub secret: String,
    /// A client with that key.
    pub client: Client,
}
