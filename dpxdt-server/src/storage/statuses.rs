//! Commit statuses: a build may name a GitHub-compatible statuses API (the
//! base URL, a repository and a token, sealed with the server key). Each
//! state change of a release that names its commit queues one status; the
//! notifier sends them in order, one release at a time, with retries.

use crate::storage::db::{Db, OptionalExtension, Tx, params};
use dpxdt_core::{BuildId, ReleaseId, ReleaseStatus};

use super::activity::log_in;
use super::users::UserRow;
use super::{StoreError, now_ms, write_tx};

/// Where a build's commit statuses go, as its page shows it (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusTarget {
    /// API base URL, e.g. `https://api.github.com`.
    pub api: String,
    /// `owner/name`.
    pub repo: String,
    /// Whether a token is stored.
    pub token_set: bool,
}

/// What to do with the stored token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenChange {
    /// Leave it as it is.
    Keep,
    /// Store this one, sealed with the server key.
    Set(Vec<u8>),
}

/// The build's status target, if it has one.
pub fn target(conn: &Db, build: BuildId) -> Result<Option<StatusTarget>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT status_api, status_repo, status_token IS NOT NULL FROM build WHERE id = ?1",
            [build.0],
            |r| {
                Ok(
                    match (
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                    ) {
                        (Some(api), Some(repo)) => Some(StatusTarget {
                            api,
                            repo,
                            token_set: r.get(2)?,
                        }),
                        _ => None,
                    },
                )
            },
        )
        .optional()?
        .flatten())
}

/// Checks a target typed by a person; the error names the field. Plain
/// `http://` sends the token unencrypted, so it is refused unless the
/// server allows it (`--allow-http-status-api`, for tests).
pub fn validate(api: &str, repo: &str, allow_http: bool) -> Result<(), StoreError> {
    let url = url::Url::parse(api)
        .map_err(|e| StoreError::Invalid(format!("status API URL {api:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(StoreError::Invalid(format!(
            "status API URL must be http:// or https:// with a host, not {api:?}"
        )));
    }
    if url.scheme() == "http" && !allow_http {
        return Err(StoreError::Invalid(format!(
            "status API URL {api:?} is plain http://, which would send the token \
             unencrypted: use https:// (the server takes http:// only when started with \
             --allow-http-status-api)"
        )));
    }
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 100
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    match repo.split_once('/') {
        Some((owner, name)) if part_ok(owner) && part_ok(name) => Ok(()),
        _ => Err(StoreError::Invalid(format!(
            "status repository must be OWNER/NAME (letters, digits, - _ .), not {repo:?}"
        ))),
    }
}

/// The origin (scheme, host and port) of a status API URL: a stored token
/// goes only to the origin it was given for.
pub fn origin(api: &str) -> String {
    url::Url::parse(api).map_or_else(|_| api.to_string(), |u| u.origin().ascii_serialization())
}

/// What a build's token is sealed to: the build and the API's origin, so
/// that its sealed bytes open for no other build or address.
pub fn token_binding(build: BuildId, api: &str) -> Vec<u8> {
    format!("commit-status token of build {build} for {}", origin(api)).into_bytes()
}

/// Opens the sealed token of `build` for the API at `api`. Tokens stored
/// before they were bound (older versions) open unbound; they are bound
/// when their build's target is next saved with a token.
pub fn open_token(
    key: &super::secrets::SecretKey,
    sealed: &[u8],
    build: BuildId,
    api: &str,
) -> Result<Vec<u8>, StoreError> {
    key.open(sealed, &token_binding(build, api))
        .or_else(|e| key.open(sealed, b"").map_err(|_| e))
}

/// Refuses to keep the stored token when the API's origin changes: the
/// token was given for one address and must be given again for another
/// (otherwise whoever may edit the settings could send it anywhere).
pub fn check_token_kept(
    current: Option<&StatusTarget>,
    api: &str,
    token: &TokenChange,
) -> Result<(), StoreError> {
    match (current, token) {
        (Some(t), TokenChange::Keep) if t.token_set && origin(&t.api) != origin(api) => {
            Err(StoreError::Invalid(format!(
                "status token: the status API moved from {} to {}; give the token again \
                 (a stored token is sent only to the address it was given for)",
                origin(&t.api),
                origin(api)
            )))
        }
        _ => Ok(()),
    }
}

/// Sets (or with an empty `api`, removes) the build's status target; logged.
pub fn set_target(
    conn: &mut Db,
    build: BuildId,
    user: &UserRow,
    api: &str,
    repo: &str,
    token: TokenChange,
    allow_http: bool,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    if api.is_empty() {
        tx.execute(
            "UPDATE build SET status_api = NULL, status_repo = NULL, status_token = NULL WHERE id = ?1",
            [build.0],
        )?;
        log_in(&tx, build, Some(user.id), "status_target", "removed")?;
        tx.commit()?;
        return Ok(());
    }
    validate(api, repo, allow_http)?;
    let current = target(&tx, build)?;
    check_token_kept(current.as_ref(), api, &token)?;
    let has_token = current.is_some_and(|t| t.token_set);
    match token {
        TokenChange::Set(sealed) => {
            tx.execute(
                "UPDATE build SET status_api = ?1, status_repo = ?2, status_token = ?3 WHERE id = ?4",
                params![api, repo, sealed, build.0],
            )?;
        }
        TokenChange::Keep if has_token => {
            tx.execute(
                "UPDATE build SET status_api = ?1, status_repo = ?2 WHERE id = ?3",
                params![api, repo, build.0],
            )?;
        }
        TokenChange::Keep => {
            return Err(StoreError::Invalid(
                "status token: give the API token the statuses are posted with".into(),
            ));
        }
    }
    log_in(
        &tx,
        build,
        Some(user.id),
        "status_target",
        &format!("{api} {repo}"),
    )?;
    tx.commit()?;
    Ok(())
}

/// The status a release in state `status` shows on its commit, if any.
fn status_for(
    tx: &Tx<'_>,
    release: ReleaseId,
    status: ReleaseStatus,
) -> Result<Option<(&'static str, String)>, StoreError> {
    Ok(match status {
        ReleaseStatus::Receiving => Some(("pending", "Taking screenshots".to_string())),
        ReleaseStatus::Processing => None,
        ReleaseStatus::Reviewing => {
            let open: i64 = tx.query_row(
                "SELECT COUNT(*) FROM run WHERE release_id = ?1 AND status IN ('diff_found', 'failed')",
                [release.0],
                |r| r.get(0),
            )?;
            Some(match open {
                0 => ("success", "No visual changes".to_string()),
                1 => ("pending", "1 change to review".to_string()),
                n => ("pending", format!("{n} changes to review")),
            })
        }
        ReleaseStatus::Good => Some(("success", "Approved".to_string())),
        ReleaseStatus::Bad => Some(("failure", "Rejected or superseded".to_string())),
    })
}

/// Queues the status of `release` (of `build`) now in state `status`, when
/// it names a commit (`has_commit`) and its build has a status target.
pub(crate) fn on_release(
    tx: &Tx<'_>,
    release: ReleaseId,
    build: BuildId,
    has_commit: bool,
    status: ReleaseStatus,
) -> Result<(), StoreError> {
    if !has_commit || target(tx, build)?.is_none() {
        return Ok(());
    }
    if let Some((state, description)) = status_for(tx, release, status)? {
        let now = now_ms();
        tx.execute(
            "INSERT INTO commit_status (release_id, state, description, status, next_try, created)
             VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
            params![release.0, state, description, now],
        )?;
    }
    Ok(())
}

/// A status due to be sent.
#[derive(Debug, Clone)]
pub struct DueStatus {
    /// Its row.
    pub id: i64,
    /// The release and its build.
    pub release_id: ReleaseId,
    /// The build.
    pub build_id: BuildId,
    /// The build's name (the status context).
    pub build_name: String,
    /// Release name and number.
    pub name: String,
    /// Attempt number.
    pub number: i64,
    /// The commit.
    pub commit_sha: String,
    /// Where to.
    pub api: String,
    /// Repository.
    pub repo: String,
    /// The sealed token.
    pub token: Vec<u8>,
    /// `pending`, `success` or `failure`.
    pub state: String,
    /// What it says.
    pub description: String,
    /// Failed tries so far.
    pub attempts: i64,
}

/// The statuses due now: for each release only its oldest unsent one, so a
/// commit's statuses arrive in the order they happened.
pub fn due_statuses(conn: &Db) -> Result<Vec<DueStatus>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT s.id, r.id, b.id, b.name, r.name, r.number, r.commit_sha, b.status_api, b.status_repo,
                b.status_token, s.state, s.description, s.attempts
         FROM commit_status s JOIN release r ON r.id = s.release_id JOIN build b ON b.id = r.build_id
         WHERE s.status = 'pending' AND s.next_try <= ?1
           AND s.id = (SELECT MIN(o.id) FROM commit_status o
                       WHERE o.release_id = s.release_id AND o.status = 'pending')
           AND b.status_api IS NOT NULL AND b.status_token IS NOT NULL AND r.commit_sha IS NOT NULL
         ORDER BY s.id LIMIT 20",
    )?;
    let rows = stmt.query_map([now_ms()], |r| {
        Ok(DueStatus {
            id: r.get(0)?,
            release_id: ReleaseId(r.get(1)?),
            build_id: BuildId(r.get(2)?),
            build_name: r.get(3)?,
            name: r.get(4)?,
            number: r.get(5)?,
            commit_sha: r.get(6)?,
            api: r.get(7)?,
            repo: r.get(8)?,
            token: r.get(9)?,
            state: r.get(10)?,
            description: r.get(11)?,
            attempts: r.get(12)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records the outcome of sending a status: sent, retried at `retry_at`,
/// or given up; each outcome is in the build's activity log.
pub fn status_done(
    conn: &mut Db,
    d: &DueStatus,
    error: Option<&str>,
    retry_at: Option<i64>,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let (status, log_type) = match (error, retry_at) {
        (None, _) => ("sent", "status_sent"),
        (Some(_), Some(_)) => ("pending", "status_retry"),
        (Some(_), None) => ("failed", "status_failed"),
    };
    tx.execute(
        "UPDATE commit_status SET status = ?1, attempts = attempts + ?2, next_try = ?3, last_error = ?4
         WHERE id = ?5",
        params![
            status,
            i64::from(error.is_some()),
            retry_at.unwrap_or(0),
            error,
            d.id
        ],
    )?;
    let msg = format!(
        "{} #{} {} {}: {}{}",
        d.name,
        d.number,
        &d.commit_sha[..d.commit_sha.len().min(12)],
        d.state,
        d.description,
        error.map(|e| format!(" ({e})")).unwrap_or_default()
    );
    log_in(&tx, d.build_id, None, log_type, &msg)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_status_apis_need_the_servers_leave() {
        assert!(validate("https://api.example", "a/b", false).is_ok());
        let err = validate("http://api.example", "a/b", false).unwrap_err();
        assert!(err.to_string().contains("plain http://"), "{err}");
        assert!(validate("http://api.example", "a/b", true).is_ok());
    }

    #[test]
    fn a_kept_token_stays_with_its_origin() {
        let stored = StatusTarget {
            api: "https://api.example/v3".into(),
            repo: "a/b".into(),
            token_set: true,
        };
        let keep = TokenChange::Keep;
        let given = TokenChange::Set(vec![1]);
        // Same origin, another path: kept.
        assert!(check_token_kept(Some(&stored), "https://api.example/v4", &keep).is_ok());
        // Another host, port or scheme: the token must be given again.
        for moved in [
            "https://evil.example/v3",
            "https://api.example:8443/v3",
            "http://api.example/v3",
        ] {
            let err = check_token_kept(Some(&stored), moved, &keep).unwrap_err();
            assert!(
                err.to_string().contains("give the token again"),
                "{moved}: {err}"
            );
            assert!(
                check_token_kept(Some(&stored), moved, &given).is_ok(),
                "{moved}"
            );
        }
        assert!(check_token_kept(None, "https://evil.example", &keep).is_ok());
        assert_ne!(
            token_binding(BuildId(1), "https://api.example/v3"),
            token_binding(BuildId(2), "https://api.example/v3")
        );
        assert_eq!(
            token_binding(BuildId(1), "https://api.example/v3"),
            token_binding(BuildId(1), "https://api.example/other")
        );
    }
}
