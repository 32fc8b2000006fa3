//! Who is asking: passwords (argon2), login and logout, session cookies,
//! CSRF tokens and login rate limiting.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use super::{Req, Ui, UiError, redirect};
use crate::error::Doing;
use crate::storage::sessions::{self, random_token};
use crate::storage::users::{self, UserRow};
use crate::storage::{Store, StoreError, logins, now_ms};

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "dpxdt_session";
/// The cookie holding the login form's CSRF token (before there is a session).
const LOGIN_COOKIE: &str = "dpxdt_login";

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

/// Longest user name a login looks up.
pub const MAX_NAME_LEN: usize = 64;
/// Password checks (argon2, 19 MiB each) running at once; more wait.
const CONCURRENT_PASSWORD_CHECKS: usize = 4;
/// Login attempts, counted before the password check (so a parallel burst
/// gets no more guesses than a sequential one), in the database
/// ([`crate::storage::logins`], so a restart does not reset them):
/// - per client address, at most [`logins::MAX_FAILURES_PER_IP`] failures in 15
///   minutes;
/// - per user name *from one address*, after [`logins::MAX_FAILURES_PER_USER`]
///   failures each further attempt waits a delay that doubles from 5 s up
///   to 60 s, and only one attempt is in flight. Keyed by address so that
///   nobody can lock a user (say `admin`) out from elsewhere.
///
/// The limiter itself only bounds how many password checks run at once.
pub(crate) struct Limiter {
    checks: tokio::sync::Semaphore,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            checks: tokio::sync::Semaphore::new(CONCURRENT_PASSWORD_CHECKS),
        }
    }
}

/// Who the login limits count a client as: its address (see [`client_ip`]),
/// or for IPv6 its /64 network, the block one subscriber line or one
/// machine is given, so that walking the addresses of one's own /64 buys no
/// further guesses. An IPv4 address inside IPv6 counts as that IPv4 address.
fn client_bucket(req: &Req, trusted: &[dpxdt_core::netpolicy::Rule]) -> String {
    match client_ip(req, trusted) {
        None => String::new(),
        Some(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(std::net::IpAddr::V6(v6)) => v6.to_canonical().to_string(),
        Some(ip) => ip.to_string(),
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the last address in `X-Forwarded-For` that is not a trusted proxy.
fn client_ip(req: &Req, trusted: &[dpxdt_core::netpolicy::Rule]) -> Option<std::net::IpAddr> {
    let peer = req.remote.map(|a| a.ip())?;
    let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|r| r.matches_ip(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in forwarded.iter().rev() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) if is_trusted(ip) => continue,
            Ok(ip) => return Some(ip),
            Err(_) => break,
        }
    }
    Some(peer)
}

/// Equal-time comparison of two tokens.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A `Set-Cookie` value for the UI's own cookies: the whole site, never
/// readable by scripts, not sent along cross-site requests.
fn cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let cookie = cookie::Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age))
        .secure(secure)
        .build();
    HeaderValue::from_str(&cookie.to_string())
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
    let next = safe_next(req.q("next").or(req.f("next")));
    render_login(ui, req, next, message, status)
}

/// The login page for someone logged out who opened a page that needs a
/// login: it returns there once they are in. The same for a page that does
/// not exist, so it tells nothing of which builds there are.
pub(crate) fn login_to_return(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let next = safe_next(Some(&req.target));
    render_login(
        ui,
        req,
        next,
        Some("Log in to see this page."),
        StatusCode::UNAUTHORIZED,
    )
}

fn render_login(
    ui: &Ui,
    req: &Req,
    next: String,
    message: Option<&str>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let token = random_token(16);
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
    resp.headers_mut()
        .append("set-cookie", login_cookie(&token, req.secure(&ui.state)));
    Ok(resp)
}

/// [`check_login`] within the login limits: refused while `name` or the
/// client's address is throttled, and counted as a success or a failure.
async fn counted_check(
    ui: &Ui,
    req: &Req,
    name: &str,
    password: String,
) -> Result<Option<UserRow>, UiError> {
    let ip = client_bucket(req, &ui.state.config.trusted_proxies);
    let keys = logins::keys(name, &ip);
    let counted = keys.clone();
    ui.state
        .store
        .call(move |c| logins::begin(c, &counted, now_ms()))
        .await?
        .map_err(|wait_ms| {
            metrics::counter!("dpxdt_login_refusals_total", "reason" => "throttled").increment(1);
            UiError::TooManyRequests(format!(
                "too many failed logins; try again in {} seconds",
                (wait_ms / 1000).max(1)
            ))
        })?;
    let checked = check_login(ui, name, password).await;
    let ok = matches!(checked, Ok(Some(_)));
    ui.state
        .store
        .call(move |c| logins::end(c, &keys, ok, now_ms()))
        .await?;
    checked
}

/// Looks `name` up and checks `password`, one of a few password checks at
/// a time. `None`: no such user or a wrong password.
async fn check_login(ui: &Ui, name: &str, password: String) -> Result<Option<UserRow>, UiError> {
    let lookup = name.to_string();
    let user = ui
        .state
        .store
        .call(move |c| users::find_user(c, &lookup))
        .await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let _permit = ui
        .limiter
        .checks
        .acquire()
        .await
        .doing("waiting for a password check slot")?;
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
    .doing("checking a password")?;
    // A disabled account fails like a wrong password: no oracle.
    Ok(user.filter(|u| ok && !u.disabled))
}

/// The pre-session cookie of the login and welcome forms.
pub(crate) fn login_cookie(token: &str, secure: bool) -> HeaderValue {
    cookie(LOGIN_COOKIE, token, 3600, secure)
}

/// Checks a pre-session form's CSRF token against its cookie.
pub(crate) fn check_login_csrf(req: &Req) -> Result<(), UiError> {
    let expected = req.cookie(LOGIN_COOKIE).unwrap_or_default();
    match req.f("csrf") {
        Some(t) if !expected.is_empty() && same_token(t, &expected) => Ok(()),
        _ => Err(UiError::Forbidden(
            "the form's CSRF token is missing or wrong; reload the page".into(),
        )),
    }
}

/// `POST /login`: checks the login CSRF token, the rate limits and the password.
pub(crate) async fn login(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    check_login_csrf(req)?;
    let name = req.f("name").unwrap_or("").trim().to_string();
    let password = req.f("password").unwrap_or("").to_string();
    if name.len() > MAX_NAME_LEN {
        return login_page(
            ui,
            req,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let checked = counted_check(ui, req, &name, password).await;
    let user = checked?;
    let Some(user) = user else {
        let ip = client_bucket(req, &ui.state.config.trusted_proxies);
        tracing::warn!(user = %name, %ip, "failed login");
        metrics::counter!("dpxdt_login_refusals_total", "reason" => "wrong").increment(1);
        return login_page(
            ui,
            req,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
        );
    };
    start_session(ui, req, user.id, &safe_next(req.f("next"))).await
}

/// A new password: 8 characters or more, at most 1024 bytes.
pub(crate) fn check_new_password(password: &str) -> Result<(), UiError> {
    if password.chars().count() < 8 {
        return Err(UiError::BadRequest(
            "a password must have at least 8 characters".into(),
        ));
    }
    if password.len() > 1024 {
        return Err(UiError::BadRequest(
            "a password may have at most 1024 bytes".into(),
        ));
    }
    Ok(())
}

/// Starts a session for `user` and goes on to `next` with its cookie set.
pub(crate) async fn start_session(
    ui: &Ui,
    req: &Req,
    user: i64,
    next: &str,
) -> Result<Response, UiError> {
    let token = ui
        .state
        .store
        .call(move |c| sessions::create_session(c, user))
        .await?;
    let mut resp = redirect(next);
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

/// `POST /account/password`: a person changes their own password. The
/// current one is required and counted like a login (a stolen session
/// cannot guess it faster than a login form could); every other session of
/// theirs ends, this one stays.
pub(crate) async fn change_password(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let user = req
        .session
        .as_ref()
        .map(|s| s.user.clone())
        .ok_or_else(|| UiError::Forbidden("log in first".into()))?;
    let current = req.f("current_password").unwrap_or("").to_string();
    let new = req.f("new_password").unwrap_or("");
    if new != req.f("new_password_again").unwrap_or("") {
        return Err(UiError::BadRequest(
            "the new password and its repetition differ".into(),
        ));
    }
    check_new_password(new)?;
    let checked = counted_check(ui, req, &user.name, current).await;
    if checked?.is_none() {
        return Err(UiError::Forbidden("the current password is wrong".into()));
    }
    let new = new.to_string();
    let hash = tokio::task::spawn_blocking(move || hash_password(&new))
        .await
        .doing("hashing a password")??;
    let keep = sessions::hash_token(&req.cookie(SESSION_COOKIE).unwrap_or_default());
    ui.state
        .store
        .call(move |c| users::change_password(c, user.id, &hash, &keep))
        .await?;
    tracing::info!(user = %user.name, "password changed");
    Ok(redirect("/account?password=1"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn req_from(peer: &str, forwarded: &[&str]) -> Req {
        let mut headers = warp::http::HeaderMap::new();
        for f in forwarded {
            headers.append("x-forwarded-for", f.parse().unwrap());
        }
        Req {
            method: warp::http::Method::POST,
            path: "/login".into(),
            target: "/login".into(),
            query: HashMap::new(),
            form: HashMap::new(),
            headers,
            remote: Some(peer.parse().unwrap()),
            session: None,
        }
    }

    #[test]
    fn x_forwarded_for_counts_only_from_trusted_proxies() {
        let trusted: Vec<dpxdt_core::netpolicy::Rule> = vec!["10.0.0.0/8".parse().unwrap()];
        // Straight from a client: the header is the client's own words.
        let r = req_from("203.0.113.5:1000", &["198.51.100.1"]);
        assert_eq!(client_bucket(&r, &trusted), "203.0.113.5");
        // Through the proxy: the last address the proxies did not add.
        let r = req_from("10.0.0.2:1000", &["198.51.100.1, 203.0.113.7", "10.0.0.3"]);
        assert_eq!(client_bucket(&r, &trusted), "203.0.113.7");
        let r = req_from("10.0.0.2:1000", &[]);
        assert_eq!(client_bucket(&r, &trusted), "10.0.0.2");
        assert_eq!(client_bucket(&r, &[]), "10.0.0.2");
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        // Two addresses of one /64 are one client; the next /64 is another.
        let a = req_from("[2001:db8:1:2:aaaa::1]:1000", &[]);
        let b = req_from("[2001:db8:1:2:ffff:ffff:ffff:fffe]:1000", &[]);
        let c = req_from("[2001:db8:1:3::1]:1000", &[]);
        assert_eq!(client_bucket(&a, &[]), "2001:db8:1:2::/64");
        assert_eq!(client_bucket(&a, &[]), client_bucket(&b, &[]));
        assert_ne!(client_bucket(&a, &[]), client_bucket(&c, &[]));
        // An IPv4 client on a dual-stack socket is its IPv4 address.
        let mapped = req_from("[::ffff:203.0.113.9]:1000", &[]);
        assert_eq!(client_bucket(&mapped, &[]), "203.0.113.9");
        // Through a trusted proxy, the forwarded IPv6 client is grouped too.
        let trusted: Vec<dpxdt_core::netpolicy::Rule> = vec!["10.0.0.0/8".parse().unwrap()];
        let r = req_from("10.0.0.2:1000", &["2001:db8:9:9::77"]);
        assert_eq!(client_bucket(&r, &trusted), "2001:db8:9:9::/64");
    }
}
