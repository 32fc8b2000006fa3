//! Invitations: a superuser creates an account without a password, and a
//! one-time link (valid for [`INVITE_LIFETIME_MS`]) lets its person choose
//! one. Only the link's SHA-256 is stored, as with sessions.

use super::db::{Db, OptionalExtension, params};
use super::sessions::{hash_token, random_token};
use super::users::{
    USER_COLS, UserRow, find_user, set_password_hash, user_from_row, validate_email,
    validate_user_name,
};
use super::{StoreError, now_ms, write_tx};

/// How long an invitation link works.
pub const INVITE_LIFETIME_MS: i64 = 7 * 24 * 3_600_000;

/// Who is invited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser<'a> {
    /// The user name.
    pub name: &'a str,
    /// Where their notifications go (and the link, when mail is set up).
    pub email: Option<&'a str>,
    /// Whether they will be a superuser.
    pub superuser: bool,
}

/// Creates the account `who` without a password and an invitation for it,
/// by the user `by`; the link's token (shown once). A taken name is
/// refused.
pub fn invite(conn: &mut Db, who: &NewUser<'_>, by: i64) -> Result<String, StoreError> {
    validate_user_name(who.name)?;
    if let Some(email) = who.email {
        validate_email(email)?;
    }
    let tx = write_tx(conn)?;
    if find_user(&tx, who.name)?.is_some() {
        return Err(StoreError::Conflict(format!(
            "there is already a user called {:?}",
            who.name
        )));
    }
    let now = now_ms();
    let id: i64 = tx.query_row(
        "INSERT INTO user (name, superuser, created, email) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        params![who.name, who.superuser, now, who.email],
        |r| r.get(0),
    )?;
    let token = random_token(24);
    tx.execute(
        "INSERT INTO user_invite (token_sha256, user_id, created_by, created, expires)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![hash_token(&token), id, by, now, now + INVITE_LIFETIME_MS],
    )?;
    tx.commit()?;
    Ok(token)
}

/// The account an unexpired invitation `token` is for.
pub fn invited(conn: &Db, token: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {} FROM user_invite i JOIN user u ON u.id = i.user_id
                 WHERE i.token_sha256 = ?1 AND i.expires > ?2 AND u.disabled = 0",
                USER_COLS
                    .split(", ")
                    .map(|c| format!("u.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            params![hash_token(token), now_ms()],
            user_from_row,
        )
        .optional()?)
}

/// Uses the invitation `token`: sets its account's password hash and ends
/// every invitation of that account; the account.
pub fn redeem(conn: &mut Db, token: &str, password_hash: &str) -> Result<UserRow, StoreError> {
    let tx = write_tx(conn)?;
    let user = invited(&tx, token)?.ok_or_else(|| {
        StoreError::NotFound(
            "this invitation link does not work: it was used, it expired, or it never existed"
                .into(),
        )
    })?;
    set_password_hash(&tx, user.id, password_hash)?;
    tx.execute("DELETE FROM user_invite WHERE user_id = ?1", [user.id])?;
    tx.commit()?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Store;

    #[test]
    fn an_invitation_works_once_and_names_are_not_taken_twice() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.blocking(|c| {
            let root = crate::storage::users::upsert_user(c, "root", "x", true)?;
            let who = NewUser {
                name: "carol",
                email: Some("carol@example.test"),
                superuser: false,
            };
            let token = invite(c, &who, root)?;
            assert!(matches!(
                invite(c, &who, root),
                Err(StoreError::Conflict(_))
            ));
            let bad = NewUser {
                email: Some("not an address"),
                name: "dave",
                ..who.clone()
            };
            assert!(matches!(invite(c, &bad, root), Err(StoreError::Invalid(_))));
            assert_eq!(invited(c, &token)?.map(|u| u.name), Some("carol".into()));
            assert_eq!(invited(c, "guess")?, None);
            let carol = redeem(c, &token, "phc")?;
            assert_eq!(carol.name, "carol");
            assert_eq!(
                find_user(c, "carol")?.and_then(|u| u.password_hash),
                Some("phc".into())
            );
            assert!(matches!(
                redeem(c, &token, "again"),
                Err(StoreError::NotFound(_))
            ));
            Ok(())
        })
        .unwrap();
    }
}
