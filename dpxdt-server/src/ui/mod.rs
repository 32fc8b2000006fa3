//! The review UI: server-rendered pages (handlebars, escaped by default),
//! login sessions, CSRF checks and the authorized image route.
//!
//! Warp filters route every path outside `/api/` to a [`Page`], which
//! [`Ui::show`] carries out.
//! Each handler is short: who is asking ([`auth`]), may they
//! ([`crate::storage::builds::build_access`]), what the core says (state
//! machines), store, render or redirect.

mod accounts;
mod auth;
mod format;
mod pages;
mod release;
mod review;
mod thumbs;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use handlebars::Handlebars;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;
use warp::{Buf, Filter, Rejection};

pub use auth::{create_user, ensure_admin_password, hash_password, set_user_email};

use crate::AppState;
use crate::error::{Doing, Fault};
use crate::storage::StoreError;
use crate::storage::sessions::Session;

/// Most bytes of a form body the UI accepts.
const FORM_LIMIT: usize = 64 << 10;

/// Templates and static files, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout", include_str!("../../templates/layout.hbs")),
    ("home", include_str!("../../templates/home.hbs")),
    ("login", include_str!("../../templates/login.hbs")),
    ("new_build", include_str!("../../templates/new_build.hbs")),
    ("build", include_str!("../../templates/build.hbs")),
    ("release", include_str!("../../templates/release.hbs")),
    ("run", include_str!("../../templates/run.hbs")),
    ("error", include_str!("../../templates/error.hbs")),
    ("queue", include_str!("../../templates/queue.hbs")),
    ("users", include_str!("../../templates/users.hbs")),
    ("bulk", include_str!("../../templates/bulk.hbs")),
    ("account", include_str!("../../templates/account.hbs")),
    ("confirm", include_str!("../../templates/confirm.hbs")),
    ("welcome", include_str!("../../templates/welcome.hbs")),
    ("latest", include_str!("../../templates/latest.hbs")),
];
const STATIC: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/app.js"),
    ),
];

/// A page or action that could not be served, shown as an HTML error page.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// Nothing here (also: a private build someone else may not see).
    #[error("page not found")]
    NotFound,
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The request may not be done (a missing or wrong CSRF token, not an owner).
    #[error("{0}")]
    Forbidden(String),
    /// The action conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// A one-time link that no longer works.
    #[error("{0}")]
    Gone(String),
    /// Too many failed logins.
    #[error("{0}")]
    TooManyRequests(String),
    /// A server fault.
    #[error("internal error: {0}")]
    Internal(#[from] Fault),
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => UiError::NotFound,
            StoreError::Conflict(m) => UiError::Conflict(m),
            StoreError::Invalid(m) => UiError::BadRequest(m),
            StoreError::Forbidden(m) => UiError::Forbidden(m),
            StoreError::OverLimit(m) => UiError::BadRequest(m),
            StoreError::RateLimited { message, .. } => UiError::TooManyRequests(message),
            other => Fault::new("using the store", other).into(),
        }
    }
}

impl UiError {
    fn status(&self) -> StatusCode {
        match self {
            UiError::NotFound => StatusCode::NOT_FOUND,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Forbidden(_) => StatusCode::FORBIDDEN,
            UiError::Conflict(_) => StatusCode::CONFLICT,
            UiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            UiError::Gone(_) => StatusCode::GONE,
            UiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// One UI request, parsed.
pub(crate) struct Req {
    method: Method,
    path: String,
    /// The path with its query, as requested (where a login returns to).
    target: String,
    query: HashMap<String, String>,
    form: HashMap<String, String>,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    /// The logged-in session, if any.
    session: Option<Session>,
}

impl Req {
    /// A query parameter.
    fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A form field.
    fn f(&self, name: &str) -> Option<&str> {
        self.form.get(name).map(String::as_str)
    }

    /// Whether the request reached us over HTTPS (directly or through a proxy).
    fn secure(&self, state: &AppState) -> bool {
        let forwarded = self
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
        forwarded
            || state
                .config
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    }

    /// A named cookie.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == name)
            .map(|c| c.value().to_string())
    }
}

/// What the UI handlers share.
pub(crate) struct Ui {
    state: AppState,
    hb: Handlebars<'static>,
    limiter: auth::Limiter,
    renders: thumbs::Renders,
}

/// Every UI route as a warp filter: each path and method names a [`Page`],
/// anything else outside `/api/` gets the not-found page.
pub fn routes(
    state: AppState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    use warp::path;
    let ui = Arc::new(Ui::new(state));
    let get = || warp::get().or(warp::head()).unify().boxed();
    let post = || warp::post().boxed();
    // Each route is boxed on its own, so the table stays cheap to compile.
    let table: Vec<BoxedFilter<(Page,)>> = vec![
        route(path::end().and(get()), Page::Home),
        route(path!("login").and(get()), Page::LoginForm),
        route(path!("login").and(post()), Page::Login),
        route(path!("logout").and(post()), Page::Logout),
        route(path!("new_build").and(get()), Page::NewBuildForm),
        route(path!("new_build").and(post()), Page::NewBuild),
        route(path!("build").and(get()), Page::Build),
        route(path!("build" / "api_key").and(post()), Page::CreateKey),
        route(path!("build" / "revoke_key").and(post()), Page::RevokeKey),
        route(path!("build" / "settings").and(post()), Page::Settings),
        route(path!("build" / "owners").and(post()), Page::Owners),
        route(path!("account").and(get()), Page::Account),
        route(path!("account").and(post()), Page::SetAccount),
        route(path!("account" / "invite").and(post()), Page::AnswerInvite),
        route(
            path!("account" / "password").and(post()),
            Page::ChangePassword,
        ),
        route(path!("queue").and(get()), Page::Queue),
        route(path!("users").and(get()), Page::Users),
        route(path!("users").and(post()), Page::ChangeUser),
        route(path!("users" / "invite").and(post()), Page::InviteUser),
        route(path!("welcome").and(get()), Page::WelcomeForm),
        route(path!("welcome").and(post()), Page::Welcome),
        route(path!("release").and(get()), Page::Release),
        route(
            path!("release" / "status").and(post()),
            Page::ReleaseVerdict,
        ),
        route(path!("release" / "keep").and(post()), Page::KeepRelease),
        route(
            path!("release" / "progress").and(get()),
            Page::ReleaseProgress,
        ),
        route(path!("release" / "bulk").and(get()), Page::BulkPreview),
        route(path!("release" / "bulk").and(post()), Page::BulkApprove),
        route(path!("ignore").and(post()), Page::AddIgnore),
        route(path!("ignore" / "remove").and(post()), Page::RemoveIgnore),
        route(path!("run").and(get()), Page::Run),
        route(path!("run" / "verdict").and(post()), Page::RunVerdict),
        route(path!("run" / "comment").and(post()), Page::AddComment),
        route(path!("image").and(get()), Page::Image),
        route(path!("thumb").and(get()), Page::Thumb),
        path("static")
            .and(path::tail())
            .and(get())
            .map(|tail: path::Tail| Page::Static(tail.as_str().to_string()))
            .boxed(),
    ];
    let pages = table
        .into_iter()
        .reduce(|a, b| a.or(b).unify().boxed())
        .expect("the UI has routes");
    // Any other path outside the API: the not-found page.
    let not_found = path::full()
        .and_then(|full: path::FullPath| async move {
            if full.as_str() == "/api" || full.as_str().starts_with("/api/") {
                Err(warp::reject::not_found())
            } else {
                Ok(Page::NotFound)
            }
        })
        .boxed();
    pages
        .or(not_found)
        .unify()
        .and(path::full())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::addr::remote())
        .and(warp::body::stream())
        .then(
            move |page: Page,
                  full: path::FullPath,
                  method: Method,
                  headers: HeaderMap,
                  query: String,
                  remote: Option<SocketAddr>,
                  body| {
                let ui = ui.clone();
                async move {
                    let started = Instant::now();
                    let form = if method == Method::POST {
                        match read_form(body).await {
                            Ok(f) => f,
                            Err(e) => return ui.error_page(None, &e),
                        }
                    } else {
                        HashMap::new()
                    };
                    let target = if query.is_empty() {
                        full.as_str().to_string()
                    } else {
                        format!("{}?{query}", full.as_str())
                    };
                    let deep_link = page.needs_login_to_see();
                    let mut req = Req {
                        method,
                        path: full.as_str().to_string(),
                        target,
                        query: parse_pairs(query.as_bytes()),
                        form,
                        headers,
                        remote,
                        session: None,
                    };
                    let response = match ui.load_session(&mut req).await {
                        Ok(()) => ui.show(page, &req).await,
                        Err(e) => Err(e),
                    };
                    let response = match response {
                        Ok(r) => r,
                        // A page that is not there for someone logged out
                        // (a link from a mail, say) asks them to log in
                        // and returns there, whether or not it exists.
                        Err(UiError::NotFound | UiError::Forbidden(_))
                            if deep_link && req.session.is_none() && req.method != Method::POST =>
                        {
                            auth::login_to_return(&ui, &req)
                                .unwrap_or_else(|e| ui.error_page(Some(&req), &e))
                        }
                        Err(e) => ui.error_page(Some(&req), &e),
                    };
                    tracing::info!(
                        method = %req.method,
                        path = %req.path,
                        status = response.status().as_u16(),
                        ms = started.elapsed().as_millis() as u64,
                        "ui request"
                    );
                    response
                }
            },
        )
}

/// The route of one page: `filter` matched means `page`.
fn route(
    filter: impl Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static,
    page: Page,
) -> BoxedFilter<(Page,)> {
    filter.map(move || page.clone()).boxed()
}

/// What a UI route shows or does; chosen by the route filters in
/// [`routes`], carried out by [`Ui::show`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Page {
    Home,
    LoginForm,
    Login,
    Logout,
    NewBuildForm,
    NewBuild,
    Build,
    CreateKey,
    RevokeKey,
    Settings,
    Owners,
    Account,
    SetAccount,
    AnswerInvite,
    ChangePassword,
    Queue,
    Users,
    ChangeUser,
    InviteUser,
    WelcomeForm,
    Welcome,
    Release,
    ReleaseVerdict,
    KeepRelease,
    ReleaseProgress,
    BulkPreview,
    BulkApprove,
    AddIgnore,
    RemoveIgnore,
    Run,
    RunVerdict,
    AddComment,
    Image,
    Thumb,
    Static(String),
    NotFound,
}

impl Page {
    /// Whether this is a page a person opens from a link and may see
    /// once logged in (not an action, an asset or an unknown path).
    fn needs_login_to_see(&self) -> bool {
        matches!(
            self,
            Page::Build
                | Page::Release
                | Page::Run
                | Page::BulkPreview
                | Page::Account
                | Page::Queue
                | Page::Users
                | Page::NewBuildForm
        )
    }
}

/// The UI's routes in front of `api` (which answers everything under `/api/`).
pub fn with_ui(
    state: AppState,
    api: impl Filter<Extract = (Response,), Error = std::convert::Infallible>
    + Clone
    + Send
    + Sync
    + 'static,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static
{
    routes(state).or(api).unify()
}

/// Reads a urlencoded form body of at most [`FORM_LIMIT`] bytes.
async fn read_form<S, B>(body: S) -> Result<HashMap<String, String>, UiError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| UiError::BadRequest(format!("reading the form: {e}")))?;
        if bytes.len() + chunk.remaining() > FORM_LIMIT {
            return Err(UiError::BadRequest(format!(
                "the form is larger than {FORM_LIMIT} bytes"
            )));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            bytes.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(parse_pairs(&bytes))
}

/// Parses urlencoded pairs; the first value of a repeated name wins.
fn parse_pairs(raw: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// Security headers every HTML page carries.
fn page_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
}

/// A 303 redirect to a local path.
fn redirect(to: &str) -> Response {
    let mut resp = Response::new(Default::default());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert("location", v);
    }
    resp
}

impl Ui {
    fn new(state: AppState) -> Ui {
        let mut hb = Handlebars::new();
        for (name, text) in TEMPLATES {
            // The templates are part of the binary and covered by tests.
            hb.register_template_string(name, *text)
                .unwrap_or_else(|e| panic!("template {name} does not parse: {e}"));
            if matches!(*name, "layout" | "latest") {
                hb.register_partial(name, *text)
                    .unwrap_or_else(|e| panic!("partial {name} does not parse: {e}"));
            }
        }
        Ui {
            state,
            hb,
            limiter: auth::Limiter::default(),
            renders: thumbs::Renders::default(),
        }
    }

    /// Carries out `page` for `req`. Every form (every POST but the login
    /// and welcome forms) must carry the session's CSRF token.
    async fn show(&self, page: Page, req: &Req) -> Result<Response, UiError> {
        // The login form has no session yet, and an invitation's own
        // secret token (never known to another site) stands for one.
        if req.method == Method::POST && !matches!(page, Page::Login | Page::Welcome) {
            auth::check_csrf(req)?;
        }
        match page {
            Page::Home => pages::home(self, req).await,
            Page::LoginForm => auth::login_page(self, req, None, StatusCode::OK),
            Page::Login => auth::login(self, req).await,
            Page::Logout => auth::logout(self, req).await,
            Page::NewBuildForm => pages::new_build_page(self, req),
            Page::NewBuild => pages::new_build(self, req).await,
            Page::Build => pages::build(self, req, None).await,
            Page::CreateKey => pages::create_key(self, req).await,
            Page::RevokeKey => pages::revoke_key(self, req).await,
            Page::Settings => pages::settings(self, req).await,
            Page::Owners => pages::owners(self, req).await,
            Page::Account => {
                let saved = if req.q("password").is_some() {
                    Some("Password changed. Your other sessions have ended.")
                } else {
                    req.q("saved").is_some().then_some("Saved.")
                };
                pages::account(self, req, saved).await
            }
            Page::SetAccount => pages::set_account(self, req).await,
            Page::AnswerInvite => pages::answer_invite(self, req).await,
            Page::ChangePassword => auth::change_password(self, req).await,
            Page::Queue => pages::queue(self, req).await,
            Page::Users => pages::users(self, req, None).await,
            Page::ChangeUser => pages::change_user(self, req).await,
            Page::InviteUser => accounts::invite(self, req).await,
            Page::WelcomeForm => accounts::welcome_page(self, req).await,
            Page::Welcome => accounts::welcome(self, req).await,
            Page::Release => release::release(self, req).await,
            Page::ReleaseVerdict => release::release_verdict(self, req).await,
            Page::KeepRelease => release::keep_release(self, req).await,
            Page::ReleaseProgress => release::progress(self, req).await,
            Page::BulkPreview => review::bulk_preview(self, req).await,
            Page::BulkApprove => review::bulk_approve(self, req).await,
            Page::AddIgnore => review::add_ignore(self, req).await,
            Page::RemoveIgnore => review::remove_ignore(self, req).await,
            Page::Run => review::run(self, req).await,
            Page::RunVerdict => review::run_verdict(self, req).await,
            Page::AddComment => review::add_comment(self, req).await,
            Page::Image => pages::image(self, req).await,
            Page::Thumb => pages::thumb(self, req).await,
            Page::Static(name) => static_file(req, &name),
            Page::NotFound => Err(UiError::NotFound),
        }
    }

    /// Renders `template` with `data` into a full page.
    fn render(
        &self,
        req: &Req,
        template: &str,
        status: StatusCode,
        mut data: serde_json::Value,
    ) -> Result<Response, UiError> {
        if let Some(obj) = data.as_object_mut() {
            if let Some(s) = &req.session {
                obj.insert("user".into(), serde_json::json!(s.user.name));
                obj.insert("csrf".into(), serde_json::json!(s.csrf));
                obj.insert("superuser".into(), serde_json::json!(s.user.superuser));
            }
            obj.entry("title").or_insert(serde_json::json!("Depicted"));
        }
        let html = self
            .hb
            .render(template, &data)
            .doing_with(|| format!("rendering {template}"))?;
        let mut resp = Response::new(html.into());
        *resp.status_mut() = status;
        page_headers(&mut resp);
        Ok(resp)
    }

    /// The error page; it shows the requester's real session, if any.
    fn error_page(&self, req: Option<&Req>, e: &UiError) -> Response {
        let mut data = serde_json::json!({ "title": "Error", "status": e.status().as_u16(), "message": e.to_string() });
        if let Some(s) = req.and_then(|r| r.session.as_ref()) {
            data["user"] = serde_json::json!(s.user.name);
            data["csrf"] = serde_json::json!(s.csrf);
            data["superuser"] = serde_json::json!(s.user.superuser);
        }
        match self.hb.render("error", &data) {
            Ok(html) => {
                let mut resp = Response::new(html.into());
                *resp.status_mut() = e.status();
                page_headers(&mut resp);
                resp
            }
            Err(_) => {
                let mut resp = Response::new(e.to_string().into());
                *resp.status_mut() = e.status();
                resp
            }
        }
    }
}

fn static_file(req: &Req, name: &str) -> Result<Response, UiError> {
    let (_, content_type, body) = STATIC
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or(UiError::NotFound)?;
    // Assets change with the binary: revalidate with the ETag.
    let tag = format!("\"{:x}\"", fnv(body.as_bytes()));
    if req
        .headers
        .get("if-none-match")
        .is_some_and(|v| v.as_bytes() == tag.as_bytes())
    {
        let mut resp = Response::new(Default::default());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(resp);
    }
    let mut resp = Response::new((*body).into());
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type));
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert("etag", v);
    }
    Ok(resp)
}

/// FNV-1a, for the ETag of embedded assets.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}
