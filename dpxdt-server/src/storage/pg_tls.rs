//! TLS to PostgreSQL: the `sslmode` and `sslrootcert` parameters of a
//! `postgres://` URL, read as libpq reads them, over rustls.
//!
//! tokio-postgres parses the rest of the URL, but it knows only three of
//! libpq's modes and no `sslrootcert`, and it checks nothing itself: it asks
//! its TLS connector. So [`split_url`] takes both parameters out of the URL
//! before tokio-postgres sees it, and [`MakeTls`] is a connector that
//! checks what the mode asks for:
//!
//! | `sslmode`          | TLS                             | the server's certificate               |
//! |--------------------|---------------------------------|----------------------------------------|
//! | `disable`          | never                           | —                                      |
//! | `prefer` (default) | when the server offers it       | checked against `sslrootcert` if given |
//! | `require`          | always                          | checked against `sslrootcert` if given |
//! | `verify-ca`        | always                          | signed by a CA in `sslrootcert`        |
//! | `verify-full`      | always                          | signed by a trusted CA, for the host   |
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the
//! system's trusted roots, which `verify-full` also uses when no
//! `sslrootcert` is given. As in libpq 16, `sslrootcert=system` makes
//! `verify-full` the default mode and refuses a weaker one; for the same
//! reason `verify-ca` needs a file: a public CA signs certificates for
//! anyone, so its signature alone proves nothing about the server.
//!
//! `prefer` falls back to a plain connection only when the server does not
//! offer TLS at all; a certificate that fails its check fails the
//! connection in every mode.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::Digest;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How a connection uses TLS: libpq's `sslmode`, less `allow` (which
/// tokio-postgres cannot do: it tries TLS first or not at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never.
    Disable,
    /// When the server offers it.
    Prefer,
    /// Always.
    Require,
    /// Always, with a certificate signed by a CA in `sslrootcert`.
    VerifyCa,
    /// Always, with a certificate signed by a trusted CA for the host.
    VerifyFull,
}

impl SslMode {
    const NAMES: [(&'static str, SslMode); 5] = [
        ("disable", SslMode::Disable),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ];

    fn parse(value: &str) -> Result<SslMode, String> {
        SslMode::NAMES
            .iter()
            .find(|(name, _)| *name == value)
            .map(|(_, mode)| *mode)
            .ok_or_else(|| {
                format!(
                    "unknown sslmode {value:?}: use disable, prefer, require, verify-ca or verify-full"
                )
            })
    }

    /// What tokio-postgres does at the start of the connection: only
    /// whether TLS may, must or must not happen; the checks are ours.
    pub fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = SslMode::NAMES
            .iter()
            .find(|(_, mode)| mode == self)
            .map_or("?", |(name, _)| name);
        f.write_str(name)
    }
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// The system's trusted roots (`sslrootcert=system`).
    System,
    /// A PEM file of CA certificates.
    File(PathBuf),
}

/// The TLS parameters of a `postgres://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`, if given.
    pub root_cert: Option<RootCert>,
}

impl TlsSettings {
    /// The settings of a URL whose `sslmode` and `sslrootcert` (either may
    /// be missing) say `mode` and `root_cert`; refuses a mode that would
    /// check less than it seems to (see the module's documentation).
    pub fn new(mode: Option<&str>, root_cert: Option<&str>) -> Result<TlsSettings, String> {
        let root_cert = match root_cert {
            None => None,
            Some("") => return Err("sslrootcert is empty: give a PEM file or `system`".into()),
            Some("system") => Some(RootCert::System),
            Some(path) => Some(RootCert::File(PathBuf::from(path))),
        };
        let mode = match mode {
            Some(value) => SslMode::parse(value)?,
            None if root_cert == Some(RootCert::System) => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if root_cert == Some(RootCert::System) && mode != SslMode::VerifyFull {
            return Err(format!(
                "sslmode={mode} may not be used with sslrootcert=system: any certificate a \
                 public CA signed would pass; use sslmode=verify-full"
            ));
        }
        if mode == SslMode::VerifyCa && root_cert.is_none() {
            return Err(
                "sslmode=verify-ca needs sslrootcert=PATH, the CA that signed the server's \
                 certificate: any certificate a public CA signed would pass a check of the \
                 chain alone; use sslmode=verify-full to check against the system's roots"
                    .into(),
            );
        }
        Ok(TlsSettings { mode, root_cert })
    }

    /// The roots the chain is checked against, or `None` where libpq checks
    /// no certificate (`prefer` and `require` without `sslrootcert`).
    fn roots(&self) -> Option<RootCert> {
        match (self.mode, &self.root_cert) {
            (SslMode::Disable, _) => None,
            (SslMode::VerifyFull, None) => Some(RootCert::System),
            (_, root_cert) => root_cert.clone(),
        }
    }
}

/// `url` (a `postgres://` URL) without its `sslmode` and `sslrootcert`
/// parameters, for tokio-postgres, and the settings those said.
pub fn split_url(url: &str) -> Result<(String, TlsSettings), String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or("not a postgres:// URL")?;
    // Split where tokio-postgres will: it takes the user and password up
    // to the first `@`, wherever it is, and the parameters after the next
    // `?`; so a `?` in a password stays part of the password.
    let credentials = rest.find('@').map_or(0, |at| at + 1);
    let start = url.len() - rest.len() + credentials;
    let Some(question) = url[start..].find('?') else {
        return Ok((url.to_owned(), TlsSettings::new(None, None)?));
    };
    let (base, query) = (&url[..start + question], &url[start + question + 1..]);
    let (mut mode, mut root_cert) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(key)?.as_ref() {
            "sslmode" => mode = Some(decode(value)?),
            "sslrootcert" => root_cert = Some(decode(value)?),
            // Anything else is tokio-postgres's to read (or refuse).
            _ => kept.push(pair),
        }
    }
    let settings = TlsSettings::new(mode.as_deref(), root_cert.as_deref())?;
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, settings))
}

fn decode(s: &str) -> Result<std::borrow::Cow<'_, str>, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| format!("URL parameter {s:?} is not UTF-8 once decoded"))
}

/// A tokio-postgres TLS connector over rustls that checks the server's
/// certificate as its [`TlsSettings`] say. Made once per connection
/// setting, so a reconnection reads no file again.
#[derive(Clone)]
pub struct MakeTls {
    connector: tokio_rustls::TlsConnector,
    /// Where the roots came from, for error messages.
    roots_shown: Arc<str>,
}

impl MakeTls {
    /// The connector for `settings`: reads the `sslrootcert` file or the
    /// system's roots if the settings check a chain.
    pub fn new(settings: &TlsSettings) -> Result<MakeTls, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let (roots, roots_shown) = match settings.roots() {
            None => (None, "(none: the certificate is not checked)".to_owned()),
            Some(RootCert::System) => (Some(system_roots()?), "the system's trusted roots".into()),
            Some(RootCert::File(path)) => (Some(file_roots(&path)?), path.display().to_string()),
        };
        let verifier = Verifier {
            roots,
            check_name: settings.mode == SslMode::VerifyFull,
            algorithms: provider.signature_verification_algorithms,
        };
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        // PostgreSQL 17 expects this ALPN name on direct TLS
        // (`sslnegotiation=direct`), and older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            roots_shown: roots_shown.into(),
        })
    }
}

/// The CA certificates of the PEM file `path`.
fn file_roots(path: &Path) -> Result<Arc<RootCertStore>, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("cannot read sslrootcert {shown}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("sslrootcert {shown}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {shown}: a certificate in it is unusable: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert {shown} holds no PEM certificate"));
    }
    Ok(Arc::new(roots))
}

/// The system's trusted roots (as OpenSSL finds them, `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` included), read once per process: each of the server's
/// connections would read the same few hundred certificates again.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(format!(
                    "no trusted roots found on this system ({}): install the CA certificates \
                     (Debian: ca-certificates) or give sslrootcert=PATH",
                    if why.is_empty() {
                        "none installed".into()
                    } else {
                        why.join("; ")
                    }
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// Checks a server's certificate as libpq does for the mode: nothing
/// without roots, else the chain, and the name too for `verify-full`. The
/// handshake's signatures are checked in every mode, so the server does
/// hold the key of the certificate it sent.
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.algorithms.all,
        )
        .map_err(|e| match e {
            // A CA that has the issuer's name but did not sign it (two test
            // or private CAs of the same name): for the user, as for an
            // issuer of another name, no CA they trust signed it.
            rustls::Error::InvalidCertificate(CertificateError::BadSignature) => {
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            }
            e => e,
        })?;
        if self.check_name {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = TlsConnect;
    type Error = TlsFailure;

    fn make_tls_connect(&mut self, host: &str) -> Result<TlsConnect, TlsFailure> {
        Ok(TlsConnect {
            make: self.clone(),
            host: host.to_owned(),
        })
    }
}

/// The TLS handshake with one host.
pub struct TlsConnect {
    make: MakeTls,
    host: String,
}

impl<S> tokio_postgres::tls::TlsConnect<S> for TlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = TlsFailure;
    type Future = Pin<Box<dyn Future<Output = Result<TlsStream<S>, TlsFailure>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = ServerName::try_from(self.host.clone()).map_err(|e| {
                TlsFailure(format!("{:?} is not a host name for TLS: {e}", self.host))
            })?;
            match self.make.connector.connect(name, stream).await {
                Ok(stream) => Ok(TlsStream(stream)),
                Err(e) => Err(explain(&e, &self.host, &self.make.roots_shown)),
            }
        })
    }
}

/// Why a TLS handshake failed, in words that say what to fix.
#[derive(Debug)]
pub struct TlsFailure(String);

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsFailure {}

/// The handshake error `e` with `host`, for a user: rustls's own words for
/// a refused certificate name an enum variant, not the file to look at.
fn explain(e: &io::Error, host: &str, roots_shown: &str) -> TlsFailure {
    let Some(tls) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return TlsFailure(e.to_string());
    };
    let rustls::Error::InvalidCertificate(cert) = tls else {
        return TlsFailure(tls.to_string());
    };
    TlsFailure(match cert {
        CertificateError::UnknownIssuer => {
            format!("the server's certificate is not signed by a CA in {roots_shown}")
        }
        CertificateError::NotValidForNameContext { presented, .. } => {
            let names: Vec<&str> = presented.iter().map(|n| plain_name(n)).collect();
            format!(
                "the server's certificate is not valid for the host name {host} (it is for {})",
                names.join(", ")
            )
        }
        CertificateError::NotValidForName => {
            format!("the server's certificate is not valid for the host name {host}")
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the server's certificate has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet (or this machine's clock is behind)".into()
        }
        other => format!("the server's certificate was refused: {other:?}"),
    })
}

/// A name of a certificate as rustls reports it (`DnsName("db.example")`,
/// `IpAddress(10.0.0.5)`), as a user would write it; anything else as is.
fn plain_name(reported: &str) -> &str {
    reported
        .strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
        .or_else(|| {
            reported
                .strip_prefix("IpAddress(")
                .and_then(|n| n.strip_suffix(')'))
        })
        .unwrap_or(reported)
}

/// A TLS connection to PostgreSQL.
pub struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    /// `tls-server-end-point` (RFC 5929): the hash of the server's
    /// certificate, which SCRAM authentication mixes in so that a password
    /// log-in fails through a man in the middle, even when the certificate
    /// itself is not checked (`prefer`, `require`).
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        let cert = self
            .0
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first());
        match cert.and_then(|cert| end_point_hash(cert)) {
            Some(hash) => tokio_postgres::tls::ChannelBinding::tls_server_end_point(hash),
            None => tokio_postgres::tls::ChannelBinding::none(),
        }
    }
}

/// The certificate's hash for `tls-server-end-point`: by the hash of its
/// signature algorithm, SHA-256 for MD5 and SHA-1 (RFC 5929, 4.1). `None`
/// for an algorithm without one of these hashes (e.g. Ed25519), as
/// PostgreSQL's own server has none for it either; SCRAM then goes on
/// without channel binding.
fn end_point_hash(cert: &[u8]) -> Option<Vec<u8>> {
    // The DER contents of the OIDs: 1.2.840.113549.1.1.{4,5,11,12,13}
    // (RSA with MD5, SHA-1, SHA-256, SHA-384, SHA-512) and
    // 1.2.840.10045.4.1 and 1.2.840.10045.4.3.{2,3,4} (ECDSA with SHA-1,
    // SHA-256, SHA-384, SHA-512).
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    let oid = signature_algorithm(cert)?;
    let bits = if let Some(rest) = oid.strip_prefix(RSA) {
        match rest {
            [4] | [5] | [11] => 256,
            [12] => 384,
            [13] => 512,
            _ => return None,
        }
    } else if oid == ECDSA_SHA1 {
        256
    } else if let Some(rest) = oid.strip_prefix(ECDSA_SHA2) {
        match rest {
            [2] => 256,
            [3] => 384,
            [4] => 512,
            _ => return None,
        }
    } else {
        return None;
    };
    Some(match bits {
        256 => sha2::Sha256::digest(cert).to_vec(),
        384 => sha2::Sha384::digest(cert).to_vec(),
        _ => sha2::Sha512::digest(cert).to_vec(),
    })
}

/// The OID (its DER contents) of the `signatureAlgorithm` of the DER
/// certificate `cert`: `Certificate ::= SEQUENCE { tbsCertificate,
/// signatureAlgorithm SEQUENCE { algorithm OID, .. }, signatureValue }`.
fn signature_algorithm(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    let (certificate, _) = der_element(cert, SEQUENCE)?;
    let (_tbs_certificate, rest) = der_element(certificate, SEQUENCE)?;
    let (algorithm, _) = der_element(rest, SEQUENCE)?;
    let (oid, _) = der_element(algorithm, OID)?;
    Some(oid)
}

/// The contents of the DER element at the start of `input` if its tag is
/// `tag`, and the bytes after it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // The long form: the low bits count the length's bytes, and a
        // certificate's lengths fit in four.
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, rest)
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_parameters_are_taken_out_of_the_url_and_the_rest_is_kept() {
        let (url, s) = split_url("postgres://u:p@db:5432/x").unwrap();
        assert_eq!(url, "postgres://u:p@db:5432/x");
        assert_eq!((s.mode, s.root_cert), (SslMode::Prefer, None));

        let (url, s) = split_url(
            "postgresql://u:p@db/x?application_name=a&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.pem&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgresql://u:p@db/x?application_name=a&connect_timeout=5"
        );
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert, Some(RootCert::File("/etc/ca x.pem".into())));

        let (url, s) = split_url("postgres://db/x?sslmode=disable").unwrap();
        assert_eq!(url, "postgres://db/x");
        assert_eq!(s.mode, SslMode::Disable);

        // A `?` in the password is the password's, as tokio-postgres reads it.
        let (url, s) = split_url("postgres://u:a?sslmode=disable@db/x").unwrap();
        assert_eq!(url, "postgres://u:a?sslmode=disable@db/x");
        assert_eq!(s.mode, SslMode::Prefer);
    }

    #[test]
    fn modes_follow_libpq() {
        let settings = |mode, root| TlsSettings::new(mode, root);
        // require with a CA file checks the chain, as verify-ca does.
        let s = settings(Some("require"), Some("/ca.pem")).unwrap();
        assert_eq!(s.roots(), Some(RootCert::File("/ca.pem".into())));
        assert_eq!(settings(Some("require"), None).unwrap().roots(), None);
        assert_eq!(settings(Some("prefer"), None).unwrap().roots(), None);
        assert_eq!(
            settings(Some("verify-full"), None).unwrap().roots(),
            Some(RootCert::System)
        );
        // sslrootcert=system: verify-full by default, and nothing weaker.
        assert_eq!(
            settings(None, Some("system")).unwrap().mode,
            SslMode::VerifyFull
        );
        for weak in ["prefer", "require", "verify-ca"] {
            let err = settings(Some(weak), Some("system")).unwrap_err();
            assert!(
                err.contains(&format!("sslmode={weak} may not be used")),
                "{err}"
            );
        }
        let err = settings(Some("verify-ca"), None).unwrap_err();
        assert!(err.contains("verify-ca needs sslrootcert"), "{err}");
        let err = settings(Some("allow"), None).unwrap_err();
        assert!(err.contains("unknown sslmode \"allow\""), "{err}");
        for (name, mode) in SslMode::NAMES {
            assert_eq!(mode.to_string(), name);
        }
    }

    #[test]
    fn certificate_names_are_shown_as_written() {
        assert_eq!(plain_name("DnsName(\"db.example\")"), "db.example");
        assert_eq!(plain_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(plain_name("Unsupported(0x88)"), "Unsupported(0x88)");
    }

    #[test]
    fn der_lengths_in_both_forms_are_read_and_short_input_is_refused() {
        assert_eq!(
            der_element(&[0x06, 0x01, 0x2a, 0xff], 0x06),
            Some((&[0x2a][..], &[0xff][..]))
        );
        let long = [&[0x04, 0x81, 0x80][..], &[7; 0x80]].concat();
        assert_eq!(
            der_element(&long, 0x04).map(|(c, r)| (c.len(), r.len())),
            Some((0x80, 0))
        );
        assert_eq!(der_element(&long[..100], 0x04), None);
        assert_eq!(der_element(&long, 0x30), None);
        assert_eq!(der_element(&[0x04, 0x80], 0x04), None);
    }
}
