//! TLS to PostgreSQL: `sslmode` and `sslrootcert` in the database URL,
//! against a real cluster of this test's own that serves a certificate for
//! 127.0.0.1 and localhost signed by a test CA (made with `openssl`).
//! Whether a session really uses TLS is the server's word for it
//! (`pg_stat_ssl`), not ours.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dpxdt_e2e::certs::{self, Certs};
use dpxdt_e2e::postgres::{self, Postgres};
use dpxdt_server::storage::{ArtifactsConfig, DatabaseUrl, Store};

/// A role that logs in with a password (SCRAM) over TLS alone; everyone
/// else is trusted, as on the shared cluster.
const SCRAM_ROLE: &str = "scram_user";
const SCRAM_PASSWORD: &str = "scram-secret";

/// The TLS cluster, its certificates, and a CA that signed none of them.
struct TlsCluster {
    pg: Postgres,
    certs: Certs,
    other: Certs,
}

fn cluster() -> &'static TlsCluster {
    static CLUSTER: OnceLock<TlsCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let certs = certs::make("IP:127.0.0.1,DNS:localhost");
        let hba = format!("hostssl all {SCRAM_ROLE} 127.0.0.1/32 scram-sha-256");
        let pg = Postgres::start_tls(&postgres::Tls {
            cert: &certs.cert,
            key: &certs.key,
            hba: &[&hba],
        });
        pg.psql(
            "postgres",
            &format!("CREATE ROLE {SCRAM_ROLE} LOGIN PASSWORD '{SCRAM_PASSWORD}'"),
        )
        .unwrap();
        TlsCluster {
            pg,
            certs,
            other: certs::make("IP:127.0.0.1,DNS:localhost"),
        }
    })
}

/// The TLS cluster's `postgres` database through `host`, with `params`.
fn url(host: &str, params: &str) -> String {
    format!(
        "postgres://postgres@{host}:{}/postgres?{params}",
        cluster().pg.port
    )
}

fn ca(path: &Path) -> String {
    path.display().to_string()
}

/// Connects as the server does (the URL parsed as `--database-url` is) and
/// says whether the session is encrypted; or the error, as a user sees it.
fn uses_tls(url: &str) -> Result<bool, String> {
    let database: DatabaseUrl = url.parse()?;
    let dir = tempfile::tempdir().unwrap();
    let db = database.connect(dir.path()).map_err(|e| e.to_string())?;
    db.query_row(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        [],
        |r| r.get(0),
    )
    .map_err(|e| e.to_string())
}

#[test]
fn verify_full_with_the_right_ca_connects_over_tls() {
    let c = cluster();
    let params = format!("sslmode=verify-full&sslrootcert={}", ca(&c.certs.ca));
    assert_eq!(uses_tls(&url("127.0.0.1", &params)), Ok(true));
    // By name too: the certificate names localhost (`hostaddr` keeps the
    // connection on 127.0.0.1, where the cluster listens).
    let by_name = format!("{params}&hostaddr=127.0.0.1");
    assert_eq!(uses_tls(&url("localhost", &by_name)), Ok(true));

    // A whole store (its migrations, its pool) on a fresh database over TLS.
    let fresh = format!("{}?{params}", c.pg.fresh_database());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_shared_at(
        dir.path(),
        &fresh.parse().unwrap(),
        &ArtifactsConfig::default(),
    )
    .unwrap();
    let ssl: bool = store
        .blocking(|c| {
            Ok(c.query_row(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                [],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert!(ssl);
}

#[test]
fn a_certificate_from_another_ca_is_refused_naming_the_host_and_the_ca() {
    let c = cluster();
    let port = c.pg.port;
    let wrong = ca(&c.other.ca);
    // require with a CA file checks the chain, as libpq's does.
    for mode in ["verify-full", "verify-ca", "require"] {
        let err = uses_tls(&url(
            "127.0.0.1",
            &format!("sslmode={mode}&sslrootcert={wrong}"),
        ))
        .unwrap_err();
        assert!(
            err.contains(&format!(
                "cannot connect to PostgreSQL at 127.0.0.1:{port}: error performing TLS handshake: \
                 the server's certificate is not signed by a CA in {wrong} (sslmode={mode})"
            )),
            "{err}"
        );
    }
}

#[test]
fn verify_full_refuses_a_host_name_the_certificate_does_not_name() {
    let c = cluster();
    let params = format!(
        "hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
        ca(&c.certs.ca)
    );
    let err = uses_tls(&url("db.example.test", &params)).unwrap_err();
    assert!(
        err.contains(&format!(
            "cannot connect to PostgreSQL at db.example.test:{}",
            c.pg.port
        )),
        "{err}"
    );
    assert!(
        err.contains(
            "the server's certificate is not valid for the host name db.example.test \
             (it is for 127.0.0.1, localhost)"
        ),
        "{err}"
    );
    // verify-ca checks the chain alone, so the same connection is taken.
    let chain_only = params.replace("verify-full", "verify-ca");
    assert_eq!(uses_tls(&url("db.example.test", &chain_only)), Ok(true));
}

#[test]
fn without_a_ca_file_require_and_prefer_take_any_certificate_and_verify_full_the_systems() {
    // libpq's semantics: `require` and `prefer` (the default) encrypt but
    // check no certificate unless given `sslrootcert`.
    assert_eq!(uses_tls(&url("127.0.0.1", "sslmode=require")), Ok(true));
    assert_eq!(uses_tls(&url("127.0.0.1", "sslmode=prefer")), Ok(true));
    assert_eq!(uses_tls(&url("127.0.0.1", "")), Ok(true));
    assert_eq!(uses_tls(&url("127.0.0.1", "sslmode=disable")), Ok(false));
    // verify-full checks against the system's roots, where the test CA is
    // not. (A machine without any roots refuses for that reason instead.)
    let err = uses_tls(&url("127.0.0.1", "sslmode=verify-full")).unwrap_err();
    assert!(
        err.contains("not signed by a CA in the system's trusted roots")
            || err.contains("no trusted roots found on this system"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{}",
            cluster().pg.port
        )),
        "{err}"
    );
}

#[test]
fn prefer_falls_back_to_plain_where_tls_is_not_offered_and_require_refuses() {
    // The shared cluster has no TLS.
    let plain = postgres::shared();
    let url = |params: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{params}",
            plain.port
        )
    };
    assert_eq!(uses_tls(&url("sslmode=prefer")), Ok(false));
    let err = uses_tls(&url("sslmode=require")).unwrap_err();
    assert!(
        err.contains(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{}: error performing TLS handshake: \
             server does not support TLS (sslmode=require)",
            plain.port
        )),
        "{err}"
    );
}

#[test]
fn a_bad_sslmode_or_sslrootcert_is_refused_naming_it() {
    let err = url("127.0.0.1", "sslmode=verify-fool")
        .parse::<DatabaseUrl>()
        .unwrap_err();
    assert!(err.contains("unknown sslmode \"verify-fool\""), "{err}");
    let missing = "/nonexistent/ca.pem";
    let err = uses_tls(&url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={missing}"),
    ))
    .unwrap_err();
    assert!(
        err.contains(&format!("cannot read sslrootcert {missing}")),
        "{err}"
    );
}

/// SCRAM over TLS mixes the server's certificate into the log-in (channel
/// binding), so a man in the middle cannot relay it: demanded here, the
/// log-in works only if the certificate hash we send is the server's.
#[test]
fn a_password_log_in_over_tls_binds_the_channel() {
    let base = format!(
        "postgres://{SCRAM_ROLE}:{SCRAM_PASSWORD}@127.0.0.1:{}/postgres",
        cluster().pg.port
    );
    assert_eq!(
        uses_tls(&format!("{base}?sslmode=require&channel_binding=require")),
        Ok(true)
    );
    let err = uses_tls(&format!("{base}?sslmode=require&password=wrong")).unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");
}

const BIN: &str = env!("CARGO_BIN_EXE_dpxdt-server");

/// The binary's exit code and stderr, or a failure if it does not exit in
/// time (a server that should have refused to start would serve forever).
fn run_to_exit(cmd: &mut Command) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dpxdt-server {cmd:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The server's own startup error says why it cannot reach the database.
#[test]
fn the_server_refuses_to_start_on_a_wrong_ca_and_says_why() {
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let wrong = ca(&c.other.ca);
    let (code, _, stderr) = run_to_exit(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--no-workers", "--data-dir"])
            .arg(dir.path())
            .arg("--database-url")
            .arg(url(
                "127.0.0.1",
                &format!("sslmode=verify-full&sslrootcert={wrong}"),
            )),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{}: error performing TLS handshake: \
             the server's certificate is not signed by a CA in {wrong} (sslmode=verify-full)",
            c.pg.port
        )),
        "{stderr}"
    );
}

/// `sslrootcert=system` trusts what the system trusts: here the test CA,
/// put there the way OpenSSL lets one (`SSL_CERT_FILE`), for the child
/// alone; and it means verify-full.
#[test]
fn sslrootcert_system_takes_the_systems_roots() {
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let check = |trusted: &Path| {
        run_to_exit(
            Command::new(BIN)
                .arg("check")
                .arg("--data-dir")
                .arg(dir.path())
                .arg("--database-url")
                .arg(url("127.0.0.1", "sslrootcert=system"))
                .env("SSL_CERT_FILE", trusted)
                .env_remove("SSL_CERT_DIR"),
        )
    };
    let (_, stdout, _) = check(&c.certs.ca);
    assert!(stdout.contains("database: ok: postgres://"), "{stdout}");
    let (_, stdout, _) = check(&c.other.ca);
    assert!(
        stdout.contains("not signed by a CA in the system's trusted roots (sslmode=verify-full)"),
        "{stdout}"
    );
}
