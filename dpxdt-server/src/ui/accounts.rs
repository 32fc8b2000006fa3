//! Accounts made by superusers: an invitation creates the account without
//! a password and gives a one-time link (mailed when the server has SMTP
//! and the address is known, shown to the superuser always), where its
//! person chooses a password and is logged in.

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::{Req, Ui, UiError, auth, pages};
use crate::error::Doing;
use crate::storage::invites::{self, NewUser};
use crate::storage::sessions::random_token;

/// What a used, expired or unknown invitation link says.
const GONE: &str =
    "this invitation link does not work: it was used, it expired, or it never existed";

/// `POST /users/invite`: a superuser creates an account and its
/// invitation; the users page then shows the link (and whether it was
/// mailed).
pub(crate) async fn invite(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let me = req
        .session
        .as_ref()
        .filter(|s| s.user.superuser)
        .map(|s| s.user.clone())
        .ok_or(UiError::NotFound)?;
    let name = req.f("name").unwrap_or("").trim().to_string();
    let email = req
        .f("email")
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string);
    let superuser = req.f("superuser").is_some();
    let (n, e) = (name.clone(), email.clone());
    let token = ui
        .state
        .store
        .call(move |c| {
            let who = NewUser {
                name: &n,
                email: e.as_deref(),
                superuser,
            };
            invites::invite(c, &who, me.id)
        })
        .await?;
    let link = format!("{}/welcome?token={token}", base_url(ui, req));
    // Mailed only with a configured public URL: a link built from the
    // request's Host header could point anywhere.
    let mailed = match (&ui.state.config.mail, &email, &ui.state.config.public_url) {
        (Some(config), Some(to), Some(_)) => {
            Some(crate::notify::mail_invitation(config, to, &name, &link).await)
        }
        (Some(_), Some(_), None) => Some(Err(
            "the server has no --public-url to build the link from".to_string(),
        )),
        _ => None,
    };
    tracing::info!(user = %name, by = %me.name, mailed = ?mailed.as_ref().map(Result::is_ok), "user invited");
    let notice = json!({
        "name": name,
        "link": link,
        "mailed_to": mailed.as_ref().and_then(|m| m.as_ref().ok()).and(email.as_deref()),
        "mail_error": mailed.and_then(Result::err),
    });
    pages::users(ui, req, Some(json!({ "invited": notice }))).await
}

/// Where links to this server start: the configured public URL, else the
/// host the request came to.
fn base_url(ui: &Ui, req: &Req) -> String {
    if let Some(u) = &ui.state.config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = req
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if req.secure(&ui.state) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// `GET /welcome?token=`: the invited person chooses a password.
pub(crate) async fn welcome_page(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let token = req.q("token").unwrap_or("").to_string();
    let lookup = token.clone();
    let user = ui
        .state
        .store
        .call(move |c| invites::invited(c, &lookup))
        .await?;
    let Some(user) = user else {
        return Err(UiError::Gone(GONE.into()));
    };
    // As on the login form: a token in a cookie and in the form, so no
    // other site can post this form into someone's browser.
    let csrf = random_token(16);
    let mut resp = ui.render(
        req,
        "welcome",
        StatusCode::OK,
        json!({"title": "Welcome", "name": user.name, "token": token, "welcome_csrf": csrf}),
    )?;
    resp.headers_mut().append(
        "set-cookie",
        auth::login_cookie(&csrf, req.secure(&ui.state)),
    );
    Ok(resp)
}

/// `POST /welcome`: sets the invited account's password (twice, 8
/// characters or more), ends the invitation and logs the person in.
pub(crate) async fn welcome(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    auth::check_login_csrf(req)?;
    let token = req.f("token").unwrap_or("").to_string();
    let password = req.f("password").unwrap_or("");
    if password != req.f("password_again").unwrap_or("") {
        return Err(UiError::BadRequest(
            "the password and its repetition differ".into(),
        ));
    }
    auth::check_new_password(password)?;
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .doing("hashing a password")??;
    let user = ui
        .state
        .store
        .call(move |c| invites::redeem(c, &token, &hash))
        .await
        .map_err(|e| match e {
            crate::storage::StoreError::NotFound(_) => UiError::Gone(GONE.into()),
            e => e.into(),
        })?;
    tracing::info!(user = %user.name, "invitation accepted");
    auth::start_session(ui, req, user.id, "/").await
}
