//! E-mail notifications over SMTP (lettre): the server's SMTP settings and
//! the plain-text message each owner gets when a release reaches review.
//!
//! By default TLS is not built in (it would add a TLS stack to every
//! build): the server speaks plain SMTP, with AUTH PLAIN or LOGIN when the
//! URL carries a user and password, to a relay it trusts (a local MTA such
//! as Postfix or an SMTP sidecar on the same host or private network), which
//! delivers onward. The `mail-tls` cargo feature adds rustls for `smtps://`
//! (TLS from the start, port 465) and `smtp+starttls://` (STARTTLS
//! required, port 587).

use std::fmt;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::storage::notifications::DueNotification;

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom the server sends e-mail: `smtp://[user:password@]host[:port]`
/// (port 25 unless given) and the `From` mailbox.
#[derive(Clone)]
pub struct MailConfig {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<(String, String)>,
    from: Mailbox,
}

/// How the SMTP connection is secured.
#[derive(Clone)]
enum Security {
    /// Plain SMTP (to a trusted relay).
    Plain,
    /// TLS from the first byte (`smtps://`).
    #[cfg(feature = "mail-tls")]
    Wrapper(lettre::transport::smtp::client::TlsParameters),
    /// Plain, then STARTTLS, which the server must offer (`smtp+starttls://`).
    #[cfg(feature = "mail-tls")]
    StartTls(lettre::transport::smtp::client::TlsParameters),
}

impl Security {
    fn label(&self) -> &'static str {
        match self {
            Security::Plain => "plain",
            #[cfg(feature = "mail-tls")]
            Security::Wrapper(_) => "tls",
            #[cfg(feature = "mail-tls")]
            Security::StartTls(_) => "starttls",
        }
    }
}

impl fmt::Debug for MailConfig {
    // Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security.label())
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("from", &self.from.to_string())
            .finish()
    }
}

/// Why the SMTP settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    /// The SMTP URL does not parse or lacks a host.
    #[error("SMTP URL {url:?}: {why}")]
    Url {
        /// The URL, without its password.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// The sender is not a mailbox.
    #[error(
        "mail sender {from:?} is not an e-mail address (name@domain or \"Name <name@domain>\")"
    )]
    From {
        /// What was given.
        from: String,
    },
}

impl MailConfig {
    /// Reads `smtp://[user:password@]host[:port]` (user and password
    /// percent-encoded) and the sender mailbox.
    pub fn new(smtp_url: &str, from: &str) -> Result<MailConfig, MailConfigError> {
        let err = |why: &str| {
            let shown = url::Url::parse(smtp_url)
                .map(|mut u| {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    u.to_string()
                })
                .unwrap_or_else(|_| "(unparsable)".into());
            MailConfigError::Url {
                url: shown,
                why: why.into(),
            }
        };
        let url = url::Url::parse(smtp_url).map_err(|e| err(&e.to_string()))?;
        #[cfg(feature = "mail-tls")]
        let tls = |host: &str| {
            lettre::transport::smtp::client::TlsParameters::new(host.to_string())
                .map_err(|e| err(&format!("TLS: {e}")))
        };
        let scheme = url.scheme().to_string();
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| err("it names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let (security, default_port) = match scheme.as_str() {
            "smtp" => (Security::Plain, 25),
            #[cfg(feature = "mail-tls")]
            "smtps" => (Security::Wrapper(tls(&host)?), 465),
            #[cfg(feature = "mail-tls")]
            "smtp+starttls" => (Security::StartTls(tls(&host)?), 587),
            #[cfg(not(feature = "mail-tls"))]
            "smtps" | "smtp+starttls" => {
                return Err(err(
                    "TLS is not built into this server (cargo feature mail-tls); relay \
                     through a local SMTP server with smtp://host:port",
                ));
            }
            other => {
                return Err(err(&format!(
                    "the scheme must be smtp{}, not {other:?}",
                    if cfg!(feature = "mail-tls") {
                        ", smtps or smtp+starttls"
                    } else {
                        ""
                    }
                )));
            }
        };
        if url.path() != "" && url.path() != "/" || url.query().is_some() {
            return Err(err("it may have no path or query"));
        }
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| err("the user or password is not valid UTF-8"))
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, password) => Some((decode(user)?, decode(password.unwrap_or(""))?)),
        };
        let from = from.trim();
        let from: Mailbox = from.parse().map_err(|_| MailConfigError::From {
            from: from.to_string(),
        })?;
        Ok(MailConfig {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            credentials,
            from,
        })
    }

    /// The sender mailbox.
    pub fn sender(&self) -> &Mailbox {
        &self.from
    }
}

/// Decodes `%XX` escapes (user and password in a URL).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Why one e-mail was not accepted.
#[derive(Debug)]
pub(crate) struct SendError {
    /// What went wrong, for the activity log.
    pub message: String,
    /// The server refused for good (5xx, a bad address): retrying cannot help.
    pub permanent: bool,
}

/// Sends notification e-mails through the configured SMTP server, one SMTP
/// conversation per message.
pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A mailer for `config`; connects only when sending.
    pub(crate) fn new(config: &MailConfig) -> Mailer {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .timeout(Some(SMTP_TIMEOUT));
        match &config.security {
            Security::Plain => {}
            #[cfg(feature = "mail-tls")]
            Security::Wrapper(p) => {
                builder = builder.tls(lettre::transport::smtp::client::Tls::Wrapper(p.clone()));
            }
            #[cfg(feature = "mail-tls")]
            Security::StartTls(p) => {
                builder = builder.tls(lettre::transport::smtp::client::Tls::Required(p.clone()));
            }
        }
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Mailer {
            transport: builder.build(),
            from: config.from.clone(),
        }
    }

    /// Sends the notification of `d` to `to`.
    pub(crate) async fn send(
        &self,
        d: &DueNotification,
        to: &str,
        link: &str,
    ) -> Result<(), SendError> {
        let message = message(&self.from, to, d, link).map_err(|e| SendError {
            message: e,
            permanent: true,
        })?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| SendError {
                message: format!("mail failed: {e}"),
                permanent: e.is_permanent(),
            })
    }
}

impl Mailer {
    /// Sends a plain-text message to `to`.
    pub(crate) async fn send_text(
        &self,
        to: &str,
        subject: &str,
        body: String,
    ) -> Result<(), String> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| format!("{to:?} is not an e-mail address"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("building the message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("mail failed: {e}"))
    }
}

/// The message: a subject naming the build and release, and a plain-text
/// body with the counts and the absolute release link.
pub fn message(
    from: &Mailbox,
    to: &str,
    d: &DueNotification,
    link: &str,
) -> Result<Message, String> {
    let to: Mailbox = to
        .parse()
        .map_err(|_| format!("{to:?} is not an e-mail address"))?;
    let c = super::Counts::of(d);
    let subject = format!(
        "[Depicted] {}: release {} #{} is ready for review ({} diff{})",
        d.build_name,
        d.name,
        d.number,
        c.diffs,
        if c.diffs == 1 { "" } else { "s" }
    );
    let body = format!(
        "Release {} #{} of build {} is ready for review.\n\
         \n\
         Diffs found: {}\n\
         Failed runs: {}\n\
         Runs:        {}\n\
         \n\
         Review it at:\n\
         {link}\n\
         \n\
         -- \n\
         Depicted: you get this as an owner of build {}.\n",
        d.name, d.number, d.build_name, c.diffs, c.failed, c.runs, d.build_name
    );
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("building the message: {e}"))
}

#[cfg(test)]
mod tests {
    use dpxdt_core::{BuildId, ReleaseId, RunStatus};

    use super::*;
    use crate::storage::notifications::Channel;

    #[test]
    fn names_outside_ascii_are_encoded_and_the_counts_are_in_the_body() {
        let d = DueNotification {
            release_id: ReleaseId(1),
            build_id: BuildId(7),
            build_name: "Café <b>".into(),
            name: "été".into(),
            number: 2,
            channel: Channel::Mail("a@example.test".into()),
            attempts: 0,
            counts: vec![(RunStatus::DiffFound, 2), (RunStatus::DiffNotFound, 5)],
            branch: None,
            commit_sha: None,
        };
        let from: Mailbox = "Depicted <d@example.test>".parse().unwrap();
        let m = message(&from, "a@example.test", &d, "https://x.test/release?n=1").unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        // 7-bit clean: encoded words in the subject, quoted-printable body.
        assert!(raw.is_ascii(), "{raw}");
        assert!(
            raw.contains("Subject: [Depicted] =?utf-8?b?Q2Fmw6k=?= <b>"),
            "{raw}"
        );
        assert!(
            raw.contains("Content-Transfer-Encoding: quoted-printable"),
            "{raw}"
        );
        assert!(raw.contains("Diffs found: 2"), "{raw}");
        assert!(raw.contains("Runs:        7"), "{raw}");
        assert!(message(&from, "not an address", &d, "x").is_err());
    }
}
