//! User accounts: names, password hashes, e-mail addresses.

use crate::storage::db::{Db, DbResult, OptionalExtension, Row, params};

use super::{StoreError, now_ms, write_tx};

/// A stored user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Database id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// Argon2 PHC string; `None` when no password was ever set.
    pub password_hash: Option<String>,
    /// Superusers may see and change every build.
    pub superuser: bool,
    /// A disabled account cannot log in.
    pub disabled: bool,
}

/// The columns [`user_from_row`] reads, in order.
pub(crate) const USER_COLS: &str = "id, name, password_hash, superuser, disabled";

pub(crate) fn user_from_row(r: &Row) -> DbResult<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        name: r.get(1)?,
        password_hash: r.get(2)?,
        superuser: r.get(3)?,
        disabled: r.get(4)?,
    })
}

/// Checks a user name: 1 to 64 characters of letters, digits, `.`, `_`, `-`, `@`.
pub fn validate_user_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "user name {name:?} must be 1 to 64 letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

/// The user called `name`.
pub fn find_user(conn: &Db, name: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLS} FROM user WHERE name = ?1"),
            [name],
            user_from_row,
        )
        .optional()?)
}

/// Creates a user, or sets the password of an existing one (e.g. the
/// `admin` account created at first start without a password).
pub fn upsert_user(
    conn: &mut Db,
    name: &str,
    password_hash: &str,
    superuser: bool,
) -> Result<i64, StoreError> {
    validate_user_name(name)?;
    let tx = write_tx(conn)?;
    let id = match find_user(&tx, name)? {
        Some(u) => {
            tx.execute(
                "UPDATE user SET password_hash = ?1,
                 superuser = CASE WHEN superuser = 1 OR ?2 = 1 THEN 1 ELSE 0 END WHERE id = ?3",
                params![password_hash, superuser, u.id],
            )?;
            // A new password logs every browser out (it may be why it changed).
            end_sessions(&tx, u.id)?;
            u.id
        }
        None => {
            tx.execute(
                "INSERT INTO user (name, password_hash, superuser, created) VALUES (?1, ?2, ?3, ?4)",
                params![name, password_hash, superuser, now_ms()],
            )?;
            tx.last_insert_rowid()?
        }
    };
    tx.commit()?;
    Ok(id)
}

/// Stores `user`'s new password hash (and nothing else).
pub(crate) fn set_password_hash(conn: &Db, user: i64, hash: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE user SET password_hash = ?1 WHERE id = ?2",
        params![hash, user],
    )?;
    Ok(())
}

/// Sets `user`'s password hash and ends every other session of theirs:
/// all but the one whose token hashes to `keep` (where they changed it).
pub fn change_password(
    conn: &mut Db,
    user: i64,
    password_hash: &str,
    keep: &str,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    set_password_hash(&tx, user, password_hash)?;
    tx.execute(
        "DELETE FROM session WHERE user_id = ?1 AND token_sha256 <> ?2",
        params![user, keep],
    )?;
    tx.commit()?;
    Ok(())
}

/// Ends every session and invitation of `user`. Sessions hang off their user, so this
/// module owns the rule (and `sessions`, which reads users, is not needed
/// here).
fn end_sessions(conn: &Db, user: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM session WHERE user_id = ?1", [user])?;
    // An unused invitation would let its link set the password again.
    conn.execute("DELETE FROM user_invite WHERE user_id = ?1", [user])?;
    Ok(())
}

/// Checks an e-mail address (at most 254 characters, as SMTP allows).
pub fn validate_email(email: &str) -> Result<(), StoreError> {
    if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
        return Err(StoreError::Invalid(format!(
            "{email:?} is not an e-mail address (name@domain)"
        )));
    }
    Ok(())
}

/// The e-mail address of user `user`, if it has one.
pub fn user_email(conn: &Db, user: i64) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT email FROM user WHERE id = ?1", [user], |r| {
            r.get::<_, Option<String>>(0)
        })
        .optional()?
        .flatten())
}

/// Sets (or with `""` clears) the e-mail address of the user called `name`.
/// Addresses are only where notifications go: they grant nothing, so two
/// accounts may share one, and setting one never says whether another
/// account has it.
pub fn set_user_email(conn: &mut Db, name: &str, email: &str) -> Result<(), StoreError> {
    let email = email.trim();
    if !email.is_empty() {
        validate_email(email)?;
    }
    let tx = write_tx(conn)?;
    let user = find_user(&tx, name)?
        .ok_or_else(|| StoreError::NotFound(format!("there is no user named {name:?}")))?;
    tx.execute(
        "UPDATE user SET email = ?1 WHERE id = ?2",
        params![(!email.is_empty()).then_some(email), user.id],
    )?;
    tx.commit()?;
    Ok(())
}

/// A user as the admin page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    /// The account.
    pub user: UserRow,
    /// Its e-mail address, if set.
    pub email: Option<String>,
}

/// Every account, by name.
pub fn list_users(conn: &Db) -> Result<Vec<UserSummary>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {USER_COLS}, email FROM user ORDER BY name"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok(UserSummary {
            user: user_from_row(r)?,
            email: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What a superuser may change about another account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    /// It can no longer log in, and its sessions end.
    Disable,
    /// It can log in again.
    Enable,
    /// It may see and change every build.
    MakeSuperuser,
    /// It is an ordinary user again.
    RevokeSuperuser,
}

/// Applies `change` to the account `name`, on behalf of the superuser
/// `by`, who may not disable or demote themselves (nobody would be left to
/// undo it).
pub fn change_account(
    conn: &mut Db,
    name: &str,
    change: AccountChange,
    by: &str,
) -> Result<(), StoreError> {
    if name == by
        && matches!(
            change,
            AccountChange::Disable | AccountChange::RevokeSuperuser
        )
    {
        return Err(StoreError::Conflict(
            "you cannot disable or demote your own account".into(),
        ));
    }
    let tx = write_tx(conn)?;
    let user =
        find_user(&tx, name)?.ok_or_else(|| StoreError::NotFound(format!("no user {name:?}")))?;
    let (column, value) = match change {
        AccountChange::Disable => ("disabled", true),
        AccountChange::Enable => ("disabled", false),
        AccountChange::MakeSuperuser => ("superuser", true),
        AccountChange::RevokeSuperuser => ("superuser", false),
    };
    tx.execute(
        &format!("UPDATE user SET {column} = ?1 WHERE id = ?2"),
        params![value, user.id],
    )?;
    if change == AccountChange::Disable {
        end_sessions(&tx, user.id)?;
    }
    tx.commit()?;
    Ok(())
}
