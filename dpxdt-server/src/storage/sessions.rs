//! Login sessions of the review UI.
//!
//! The cookie holds a random 256-bit token; only its SHA-256 is stored, so a
//! leaked database does not hand out live sessions. Each session has its own
//! CSRF token, which every state-changing form must echo.

use crate::storage::db::{Db, OptionalExtension, params};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::users::UserRow;
use super::{StoreError, now_ms};

/// How long a session lives at most: 14 days.
pub const SESSION_LIFETIME_MS: i64 = 14 * 24 * 3600 * 1000;
/// A session unused this long ends: 24 hours.
pub const SESSION_IDLE_MS: i64 = 24 * 3600 * 1000;
/// `last_seen` is written at most this often per session, so that reading
/// pages does not mean a database write per request.
const LAST_SEEN_STEP_MS: i64 = 60 * 1000;

/// A random hex token of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

pub(crate) fn hash_token(token: &str) -> String {
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
pub fn create_session(conn: &mut Db, user: i64) -> Result<String, StoreError> {
    create_session_at(conn, user, now_ms())
}

fn create_session_at(conn: &mut Db, user: i64, now: i64) -> Result<String, StoreError> {
    let token = random_token(32);
    conn.execute(
        "DELETE FROM session WHERE expires < ?1 OR last_seen < ?2",
        params![now, now - SESSION_IDLE_MS],
    )?;
    conn.execute(
        "INSERT INTO session (token_sha256, user_id, csrf, created, expires, last_seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?4)",
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

/// The live session of cookie `token`, if any: not past its lifetime and
/// used within [`SESSION_IDLE_MS`]. Finding it counts as using it.
pub fn find_session(conn: &mut Db, token: &str) -> Result<Option<Session>, StoreError> {
    find_session_at(conn, token, now_ms())
}

fn find_session_at(conn: &mut Db, token: &str, now: i64) -> Result<Option<Session>, StoreError> {
    let hash = hash_token(token);
    let found = conn
        .query_row(
            "SELECT u.id, u.name, u.password_hash, u.superuser, s.csrf, s.last_seen FROM session s
             JOIN user u ON u.id = s.user_id
             WHERE s.token_sha256 = ?1 AND s.expires > ?2 AND s.last_seen > ?3
               AND u.disabled = 0",
            params![hash, now, now - SESSION_IDLE_MS],
            |r| {
                Ok((
                    Session {
                        user: UserRow {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            password_hash: r.get(2)?,
                            superuser: r.get(3)?,
                            disabled: false,
                        },
                        csrf: r.get(4)?,
                    },
                    r.get::<_, i64>(5)?,
                ))
            },
        )
        .optional()?;
    let Some((session, last_seen)) = found else {
        return Ok(None);
    };
    if now - last_seen >= LAST_SEEN_STEP_MS {
        conn.execute(
            "UPDATE session SET last_seen = ?1 WHERE token_sha256 = ?2",
            params![now, hash],
        )?;
    }
    Ok(Some(session))
}

/// Ends the session of cookie `token`.
pub fn delete_session(conn: &mut Db, token: &str) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM session WHERE token_sha256 = ?1",
        [hash_token(token)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Db {
        let mut c = Db::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        crate::storage::schema::migrate(&mut c).unwrap();
        c.execute(
            "INSERT INTO user (name, password_hash, superuser, created) VALUES ('ann', 'x', 0, 0)",
            [],
        )
        .unwrap();
        c
    }

    #[test]
    fn a_session_ends_after_a_day_unused_but_not_while_used() {
        let mut c = db();
        // The clock is given, not read, so the bounds below are exact.
        let t0 = now_ms();
        let token = create_session_at(&mut c, 1, t0).unwrap();
        // Used every 20 hours, it lives on past the idle limit.
        for step in 1..=3 {
            let at = t0 + step * 20 * 3600 * 1000;
            assert!(
                find_session_at(&mut c, &token, at).unwrap().is_some(),
                "step {step}"
            );
        }
        // Then a day and a minute without use: gone.
        let later = t0 + 60 * 3600 * 1000 + SESSION_IDLE_MS + 60_000;
        assert!(find_session_at(&mut c, &token, later).unwrap().is_none());
        // The lifetime still bounds a session in constant use.
        let t0 = later + 1000;
        let token = create_session_at(&mut c, 1, t0).unwrap();
        let mut at = t0;
        while at < t0 + SESSION_LIFETIME_MS - 3600 * 1000 {
            at += 12 * 3600 * 1000;
            assert!(
                find_session_at(&mut c, &token, at.min(t0 + SESSION_LIFETIME_MS - 1))
                    .unwrap()
                    .is_some()
            );
        }
        assert!(
            find_session_at(&mut c, &token, t0 + SESSION_LIFETIME_MS + 1)
                .unwrap()
                .is_none()
        );
    }
}
