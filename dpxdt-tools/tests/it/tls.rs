//! The client and the tools over https: a TLS proxy on loopback (rustls,
//! serving a certificate for 127.0.0.1 signed by a test CA that `openssl`
//! makes) in front of the real server. With the CA trusted (`--ca-cert`,
//! `ClientBuilder::ca_certificates_pem`) the API works; without it the
//! first request fails at once with an error that names the certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use dpxdt_client::{Client, ClientError};
use dpxdt_e2e::certs::Certs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::support;

use support::{ADMIN_ID, ADMIN_SECRET, TestServer};

fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| TestServer::start(false))
}

/// A test CA and a server certificate for 127.0.0.1 that it signed.
fn make_certs() -> Certs {
    dpxdt_e2e::certs::make("IP:127.0.0.1")
}

/// Terminates TLS on a free loopback port and forwards to `backend`, for as
/// long as the calling test's runtime lives.
async fn tls_proxy(certs: &Certs, backend: SocketAddr) -> SocketAddr {
    let chain = CertificateDer::pem_file_iter(&certs.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&certs.key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return; // e.g. a client that does not trust the CA
                };
                if let Ok(mut up) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                }
            });
        }
    });
    addr
}

/// An https API root: a TLS proxy in front of the plain test server.
async fn https_api(certs: &Certs) -> String {
    let backend: SocketAddr = server()
        .api
        .trim_start_matches("http://")
        .trim_end_matches("/api")
        .parse()
        .unwrap();
    let proxy = tls_proxy(certs, backend).await;
    format!("https://127.0.0.1:{}/api", proxy.port())
}

fn admin(api: &str, ca: Option<&Path>) -> Client {
    let mut b = Client::builder(api);
    b.api_key(ADMIN_ID, ADMIN_SECRET);
    if let Some(ca) = ca {
        b.ca_certificates_pem(&std::fs::read(ca).unwrap());
    }
    b.build().unwrap()
}

#[tokio::test]
async fn the_client_speaks_https_to_a_server_whose_ca_it_trusts() {
    let certs = make_certs();
    let api = https_api(&certs).await;

    let trusting = admin(&api, Some(&certs.ca));
    let build = trusting.create_build("over https").await.unwrap();
    let found = trusting.create_build("over https again").await.unwrap();
    assert_ne!(build.build_id, found.build_id);

    let err = admin(&api, None)
        .create_build("untrusted")
        .await
        .unwrap_err();
    match &err {
        ClientError::Unreachable { detail, .. } => {
            assert!(detail.contains("certificate"), "{err}");
            assert!(detail.contains("--ca-cert"), "{err}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }

    // https to a server that speaks plain HTTP: no retries, a clear reason.
    let plain = server().api.replace("http://", "https://");
    let started = std::time::Instant::now();
    let err = Client::builder(&plain)
        .retries(3)
        .backoff(std::time::Duration::from_secs(5))
        .build()
        .unwrap()
        .create_build("wrong protocol")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "retried: {err}"
    );

    let mut bad = Client::builder(&api);
    bad.ca_certificates_pem(b"not a certificate");
    assert!(
        matches!(bad.build(), Err(ClientError::InvalidArgument { .. })),
        "a CA file that is not PEM is refused when the client is built"
    );
}

#[tokio::test]
async fn a_tool_uploads_over_https_with_ca_cert() {
    let certs = make_certs();
    let api = https_api(&certs).await;
    let build = server().new_build("tls tool").await;
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("shot.png");
    let mut img = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut img, 4, 4);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[90u8; 4 * 4 * 4]).unwrap();
    }
    std::fs::write(&png, img).unwrap();
    let tests_json = dir.path().join("tests.json");
    std::fs::write(
        &tests_json,
        serde_json::json!([{ "name": "home", "run_failed": false, "image_path": png }]).to_string(),
    )
    .unwrap();
    // tokio's Command: the proxy runs on this test's runtime.
    let run = |ca: Option<&Path>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_diff_my_images"));
        cmd.arg(format!("--release_server_prefix={api}"))
            .arg(format!("--upload_build_id={}", build.id))
            .arg(format!("--tests_json_path={}", tests_json.display()))
            .arg("--upload_release_name=over-tls")
            .env("DPXDT_CLIENT_ID", &build.key_id)
            .env("DPXDT_CLIENT_SECRET", &build.secret)
            .env_remove("DPXDT_CA_CERT");
        if let Some(ca) = ca {
            cmd.arg(format!("--ca-cert={}", ca.display()));
        }
        cmd.output()
    };

    let out = run(Some(&certs.ca)).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = build
        .client
        .release_status(&dpxdt_core::ReleaseKey {
            build_id: build.id,
            release_name: "over-tls".into(),
            release_number: 1,
        })
        .await
        .expect("the release was created over https");
    assert_eq!(status.runs.len(), 1);

    let out = run(None).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("certificate") && stderr.contains("--ca-cert"),
        "{stderr}"
    );
}
