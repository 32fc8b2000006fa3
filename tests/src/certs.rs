//! Test certificates made with `openssl` (`scripts/deps.sh --test` installs
//! it): a throw-away CA and a server certificate it signed, in a temp
//! directory that lives as long as the [`Certs`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A test CA and a server certificate that it signed, as PEM files.
pub struct Certs {
    _dir: tempfile::TempDir,
    /// The CA's certificate.
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server certificate's private key (PKCS#8, not encrypted).
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/deps.sh --test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new CA, and a server certificate it signed for `subject_alt_names`
/// (openssl's syntax, e.g. `IP:127.0.0.1,DNS:localhost`). Keys are P-256:
/// quick to make, and what a server would use today.
pub fn make(subject_alt_names: &str) -> Certs {
    let dir = tempfile::tempdir().expect("a temp directory");
    let d = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    // Each CA has a name of its own, as two real ones do: a client that
    // trusts one then finds no issuer of that name for the other's.
    static CAS: AtomicU32 = AtomicU32::new(0);
    let subject = format!(
        "/CN=dpxdt test CA {}-{}",
        std::process::id(),
        CAS.fetch_add(1, Ordering::Relaxed)
    );
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", &subject];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
    ca.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(d, &ca);
    let mut csr = vec!["req", "-subj", "/CN=dpxdt test server"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(d, &csr);
    std::fs::write(
        d.join("ext.cnf"),
        format!(
            "subjectAltName={subject_alt_names}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .expect("writing ext.cnf");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
    Certs {
        ca: d.join("ca.pem"),
        cert: d.join("server.pem"),
        key: d.join("server.key"),
        _dir: dir,
    }
}
