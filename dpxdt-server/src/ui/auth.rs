//! Who is asking: passwords (argon2), login and logout, session cookies,
//! CSRF tokens and login rate limiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use super::{Req, Ui, UiError, redirect};
use crate::storage::sessions::{self, random_token};
use crate::storage::users::{self, UserRow};
use crate::storage::{Store, StoreError};

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "dpxdt_session";
/// The cookie holding the login form's CSRF token (before there is a session).
const LOGIN_COOKIE: &str = "dpxdt_login";
/// Failed logins allowed per user name within [`WINDOW`].
pub const MAX_FAILURES_PER_USER: u32 = 5;
/// Failed logins allowed per client address within [`WINDOW`].
pub const MAX_FAILURES_PER_IP: u32 = 20;
/// The rate limiting window.
const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Hashes a password with argon2id (the crate's recommended parameters)
/// into a PHC string that carries its own salt and parameters.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| StoreError::Invalid(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Invalid(format!("hashing the password: {e}")))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Creates a user (or resets an existing user's password). Passwords must
/// have at least 8 characters.
pub fn create_user(
    store: &Store,
    name: &str,
    password: &str,
    superuser: bool,
) -> Result<(), StoreError> {
    if password.chars().count() < 8 {
        return Err(StoreError::Invalid(
            "a password must have at least 8 characters".into(),
        ));
    }
    let hash = hash_password(password)?;
    store.blocking(|c| users::upsert_user(c, name, &hash, superuser))?;
    Ok(())
}

/// Sets (or with `""` clears) the e-mail address of the user called `name`,
/// where notifications of the builds it owns go.
pub fn set_user_email(store: &Store, name: &str, email: &str) -> Result<(), StoreError> {
    store.blocking(|c| users::set_user_email(c, name, email))
}

/// Gives the `admin` account made at first start a random password if it
/// has none yet, returning it once so the caller can show it.
pub fn ensure_admin_password(store: &Store) -> Result<Option<String>, StoreError> {
    let admin = store.blocking(|c| users::find_user(c, "admin"))?;
    match admin {
        Some(u) if u.password_hash.is_none() => {
            let password = random_token(12);
            create_user(store, "admin", &password, true)?;
            Ok(Some(password))
        }
        _ => Ok(None),
    }
}

/// Counts failed logins per key (user name or address) in a fixed window.
#[derive(Default)]
pub(crate) struct Limiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Limiter {
    fn blocked(&self, key: &str, max: u32) -> bool {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .is_some_and(|(n, since)| *n >= max && since.elapsed() < WINDOW)
    }

    fn fail(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        let entry = map.entry(key.to_string()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    fn clear(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// Equal-time comparison of two tokens.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

impl Ui {
    /// Looks up the session of the request's cookie.
    pub(crate) async fn load_session(&self, req: &mut Req) -> Result<(), UiError> {
        let Some(token) = req.cookie(SESSION_COOKIE) else {
            return Ok(());
        };
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(());
        }
        req.session = self
            .state
            .store
            .call(move |c| sessions::find_session(c, &token))
            .await?;
        Ok(())
    }
}

/// Refuses a POST whose `csrf` field is not the session's token.
pub(crate) fn check_csrf(req: &Req) -> Result<(), UiError> {
    let Some(session) = &req.session else {
        return Err(UiError::Forbidden(
            "log in first (the session has expired or is missing)".into(),
        ));
    };
    match req.f("csrf") {
        Some(t) if same_token(t, &session.csrf) => Ok(()),
        _ => Err(UiError::Forbidden(
            "the form's CSRF token is missing or wrong; reload the page and try again".into(),
        )),
    }
}

/// The logged-in user, or a redirect to the login page.
pub(crate) fn require_user(req: &Req) -> Result<&UserRow, Box<Response>> {
    match &req.session {
        Some(s) => Ok(&s.user),
        None => {
            let next: String = url::form_urlencoded::byte_serialize(req.path.as_bytes()).collect();
            Err(Box::new(redirect(&format!("/login?next={next}"))))
        }
    }
}

/// A local path to go to after logging in; anything else becomes `/`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        // Browsers drop tabs and newlines and read `\` as `/`: only plain
        // printable ASCII, so `/\t/evil.example` cannot become `//evil.example`.
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.chars().all(|c| c.is_ascii_graphic() && c != '\\') =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The login form, with a fresh login CSRF cookie.
pub(crate) fn login_page(
    ui: &Ui,
    req: &Req,
    message: Option<&str>,
    status: StatusCode,
) -> Result<Response, UiError> {
    if req.session.is_some() && message.is_none() {
        return Ok(redirect("/"));
    }
    let token = random_token(16);
    let next = safe_next(req.q("next").or(req.f("next")));
    let mut resp = ui.render(
        req,
        "login",
        status,
        serde_json::json!({
            "title": "Log in",
            "login_csrf": token,
            "next": next,
            "message": message,
            "name": req.f("name"),
        }),
    )?;
    resp.headers_mut().append(
        "set-cookie",
        cookie(LOGIN_COOKIE, &token, 3600, req.secure(&ui.state)),
    );
    Ok(resp)
}

/// `POST /login`: checks the login CSRF token, the rate limits and the password.
pub(crate) async fn login(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let expected = req.cookie(LOGIN_COOKIE).unwrap_or_default();
    match req.f("csrf") {
        Some(t) if !expected.is_empty() && same_token(t, &expected) => {}
        _ => {
            return Err(UiError::Forbidden(
                "the login form's CSRF token is missing or wrong; reload the page".into(),
            ));
        }
    }
    let name = req.f("name").unwrap_or("").trim().to_string();
    let password = req.f("password").unwrap_or("").to_string();
    let user_key = format!("user:{}", name.to_lowercase());
    let ip_key = format!(
        "ip:{}",
        req.remote.map(|a| a.ip().to_string()).unwrap_or_default()
    );
    if ui.limiter.blocked(&user_key, MAX_FAILURES_PER_USER)
        || ui.limiter.blocked(&ip_key, MAX_FAILURES_PER_IP)
    {
        return Err(UiError::TooManyRequests(
            "too many failed logins; wait 15 minutes and try again".into(),
        ));
    }
    let lookup = name.clone();
    let user = ui
        .state
        .store
        .call(move |c| users::find_user(c, &lookup))
        .await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_password(&password, &h),
        None => {
            // Spend the same time as a real check so timing does not tell
            // which user names exist.
            let _ = hash_password(&password);
            false
        }
    })
    .await
    .map_err(|e| UiError::Internal(e.to_string()))?;
    let Some(user) = user.filter(|_| ok) else {
        ui.limiter.fail(&user_key);
        ui.limiter.fail(&ip_key);
        tracing::warn!(user = %name, ip = %ip_key, "failed login");
        return login_page(
            ui,
            req,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
        );
    };
    ui.limiter.clear(&user_key);
    let token = ui
        .state
        .store
        .call(move |c| sessions::create_session(c, user.id))
        .await?;
    let mut resp = redirect(&safe_next(req.f("next")));
    let secure = req.secure(&ui.state);
    let h = resp.headers_mut();
    h.append(
        "set-cookie",
        cookie(
            SESSION_COOKIE,
            &token,
            sessions::SESSION_LIFETIME_MS / 1000,
            secure,
        ),
    );
    h.append("set-cookie", cookie(LOGIN_COOKIE, "", 0, secure));
    Ok(resp)
}

/// `POST /logout` (CSRF checked by the route table).
pub(crate) async fn logout(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    if let Some(token) = req.cookie(SESSION_COOKIE) {
        ui.state
            .store
            .call(move |c| sessions::delete_session(c, &token))
            .await?;
    }
    let mut resp = redirect("/");
    resp.headers_mut().append(
        "set-cookie",
        cookie(SESSION_COOKIE, "", 0, req.secure(&ui.state)),
    );
    Ok(resp)
}
