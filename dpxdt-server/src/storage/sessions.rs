//! Login sessions of the review UI.
//!
//! The cookie holds a random 256-bit token; only its SHA-256 is stored, so a
//! leaked database does not hand out live sessions. Each session has its own
//! CSRF token, which every state-changing form must echo.

use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::users::UserRow;
use super::{StoreError, now_ms};

/// The UI's migration (sessions table), appended to
/// [`MIGRATIONS`](super::MIGRATIONS).
pub const MIGRATION: &str = r#"
CREATE TABLE session (
    token_sha256 TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES user(id),
    csrf TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX session_expires ON session (expires);
"#;

/// How long a session lives: 14 days.
pub const SESSION_LIFETIME_MS: i64 = 14 * 24 * 3600 * 1000;

/// A random hex token of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A live session: who is logged in and the session's CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user.
    pub user: UserRow,
    /// The token forms must carry.
    pub csrf: String,
}

/// Starts a session for `user`; returns the cookie token (shown once).
/// Expired sessions are swept on the way.
pub fn create_session(conn: &mut Connection, user: i64) -> Result<String, StoreError> {
    let token = random_token(32);
    let now = now_ms();
    conn.execute("DELETE FROM session WHERE expires < ?1", [now])?;
    conn.execute(
        "INSERT INTO session (token_sha256, user_id, csrf, created, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            hash_token(&token),
            user,
            random_token(32),
            now,
            now + SESSION_LIFETIME_MS
        ],
    )?;
    Ok(token)
}

/// The live session of cookie `token`, if any.
pub fn find_session(conn: &Connection, token: &str) -> Result<Option<Session>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT u.id, u.name, u.password_hash, u.superuser, s.csrf FROM session s
             JOIN user u ON u.id = s.user_id
             WHERE s.token_sha256 = ?1 AND s.expires > ?2",
            params![hash_token(token), now_ms()],
            |r| {
                Ok(Session {
                    user: UserRow {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        password_hash: r.get(2)?,
                        superuser: r.get(3)?,
                    },
                    csrf: r.get(4)?,
                })
            },
        )
        .optional()?)
}

/// Ends the session of cookie `token`.
pub fn delete_session(conn: &mut Connection, token: &str) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM session WHERE token_sha256 = ?1",
        [hash_token(token)],
    )?;
    Ok(())
}
