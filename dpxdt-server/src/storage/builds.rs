//! Builds and who may touch them: API keys, owners and invitations,
//! settings, and the first-start bootstrap.
//!
//! Access of people is decided here in one place ([`build_access`]): owners
//! and superusers may do everything on a build, anyone may read a public
//! build, nobody else learns that a private build exists.
//!
//! A key is a random id (128 bits) and a random secret (256 bits); only the
//! SHA-256 of the secret is stored. A slow password hash (argon2) protects
//! low-entropy human passwords against guessing; a 256-bit random secret
//! cannot be guessed, so a fast hash loses nothing and keeps every API call
//! (each one authenticates) cheap.

use crate::storage::db::{Db, OptionalExtension, params};
use dpxdt_core::BuildId;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::activity::log_in;
use super::users::{UserRow, validate_user_name};
use super::{StoreError, now_ms, write_tx};

/// A freshly created API key; the secret is shown once and never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// The key id (the HTTP Basic user name).
    pub id: String,
    /// The secret (the HTTP Basic password).
    pub secret: String,
}

/// What an authenticated key may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyScope {
    /// The key's id.
    pub key_id: String,
    /// The one build a normal key is scoped to.
    pub build_id: Option<BuildId>,
    /// A superuser key may touch every build and the work queue.
    pub superuser: bool,
    /// A worker key may lease, heartbeat and finish work-queue tasks, and
    /// upload, download and report only for the tasks it holds a lease on.
    pub worker: bool,
}

impl ApiKeyScope {
    /// Whether this key may act on `build` as a whole.
    pub fn may_access(&self, build: BuildId) -> bool {
        self.superuser || self.build_id == Some(build)
    }

    /// The lease owner recorded for `owner` as named by this key: a worker
    /// key's leases carry its id, so no other key can heartbeat, finish or
    /// report for them.
    pub fn lease_owner(&self, owner: &str) -> String {
        if self.worker {
            format!("{}/{owner}", self.key_id)
        } else {
            owner.to_string()
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Creates a build and returns its id.
pub fn create_build(conn: &mut Db, name: &str) -> Result<BuildId, StoreError> {
    dpxdt_core::model::validate_name("build name", name).map_err(StoreError::Invalid)?;
    let tx = write_tx(conn)?;
    let now = now_ms();
    tx.execute(
        "INSERT INTO build (name, public, created, modified) VALUES (?1, 0, ?2, ?2)",
        params![name, now],
    )?;
    let id = BuildId(tx.last_insert_rowid()?);
    tx.execute(
        "INSERT INTO admin_log (build_id, log_type, message, created) VALUES (?1, 'create_build', ?2, ?3)",
        params![id.0, name, now],
    )?;
    tx.commit()?;
    Ok(id)
}

/// Whether build `id` exists.
pub fn build_exists(conn: &Db, id: BuildId) -> Result<bool, StoreError> {
    Ok(conn
        .query_row("SELECT 1 FROM build WHERE id = ?1", [id.0], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Creates an API key: scoped to `build`, or a superuser key when `build` is `None`.
pub fn create_api_key(
    conn: &mut Db,
    build: Option<BuildId>,
    purpose: &str,
) -> Result<NewApiKey, StoreError> {
    let tx = write_tx(conn)?;
    if let Some(b) = build
        && !build_exists(&tx, b)?
    {
        return Err(StoreError::NotFound(format!("build {b} does not exist")));
    }
    let key = NewApiKey {
        id: random_hex(16),
        secret: random_hex(32),
    };
    let role = match build {
        Some(b) => Role::Build(b),
        None => Role::Superuser,
    };
    insert_key(&tx, &key, role, purpose)?;
    tx.execute(
        "INSERT INTO admin_log (build_id, api_key_id, log_type, message, created)
         VALUES (?1, ?2, 'create_api_key', ?3, ?4)",
        params![build.map(|b| b.0), key.id, purpose, now_ms()],
    )?;
    tx.commit()?;
    Ok(key)
}

/// Creates a worker key: work-queue leases, and uploads, downloads and
/// reports only for the tasks it holds (for `dpxdt-server worker`).
pub fn create_worker_key(conn: &mut Db, purpose: &str) -> Result<NewApiKey, StoreError> {
    let tx = write_tx(conn)?;
    let key = NewApiKey {
        id: random_hex(16),
        secret: random_hex(32),
    };
    insert_key(&tx, &key, Role::Worker, purpose)?;
    tx.execute(
        "INSERT INTO admin_log (api_key_id, log_type, message, created)
         VALUES (?1, 'create_worker_key', ?2, ?3)",
        params![key.id, purpose, now_ms()],
    )?;
    tx.commit()?;
    Ok(key)
}

/// What a new key may do.
#[derive(Debug, Clone, Copy)]
enum Role {
    Build(BuildId),
    Worker,
    Superuser,
}

fn insert_key(conn: &Db, key: &NewApiKey, role: Role, purpose: &str) -> Result<(), StoreError> {
    let build = match role {
        Role::Build(b) => Some(b.0),
        _ => None,
    };
    conn.execute(
        "INSERT INTO api_key (id, secret_sha256, purpose, build_id, superuser, worker, active, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7)",
        params![
            key.id,
            hash_secret(&key.secret),
            purpose,
            build,
            matches!(role, Role::Superuser),
            matches!(role, Role::Worker),
            now_ms()
        ],
    )?;
    Ok(())
}

/// Makes sure a superuser key with this id and secret exists (for
/// deployments that configure the workers' key up front).
pub fn ensure_api_key(conn: &mut Db, key: &NewApiKey) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    tx.execute("DELETE FROM api_key WHERE id = ?1", [&key.id])?;
    insert_key(&tx, key, Role::Superuser, "configured superuser key")?;
    tx.commit()?;
    Ok(())
}

/// Revokes the API keys that in-process workers of earlier versions minted
/// for themselves at every start (they call into the store directly now):
/// no credential is left that nothing uses.
pub fn remove_internal_keys(conn: &mut Db) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    tx.execute(
        "DELETE FROM api_key WHERE purpose = ?1",
        ["in-process workers"],
    )?;
    tx.commit()?;
    Ok(())
}

/// Revokes the active API key `key` of `build`, for the API's
/// `revoke_api_key` and the build page (`user` = the person, logged with
/// the entry). A key of another build, a superuser key, an unknown or an
/// already revoked key is "not found", so the answer tells nothing about
/// keys outside the build. Authentication reads `active` on every request,
/// so the key is refused from the next request on.
pub fn revoke_build_api_key(
    conn: &mut Db,
    build: BuildId,
    key: &str,
    user: Option<i64>,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let now = now_ms();
    let n = tx.execute(
        "UPDATE api_key SET active = 0, revoked = ?1
         WHERE id = ?2 AND build_id = ?3 AND superuser = 0 AND active = 1",
        params![now, key, build.0],
    )?;
    if n != 1 {
        return Err(StoreError::NotFound(format!(
            "no active API key {key:?} in build {build}"
        )));
    }
    tx.execute(
        "INSERT INTO admin_log (build_id, user_id, api_key_id, log_type, message, created)
         VALUES (?1, ?2, ?3, 'revoke_api_key', ?3, ?4)",
        params![build.0, user, key, now],
    )?;
    tx.commit()?;
    Ok(())
}

/// The scope of the key `id` if `secret` matches and it is active.
pub fn check_api_key(conn: &Db, id: &str, secret: &str) -> Result<Option<ApiKeyScope>, StoreError> {
    let row: Option<(String, Option<i64>, bool, bool)> = conn
        .query_row(
            "SELECT secret_sha256, build_id, superuser, worker FROM api_key
             WHERE id = ?1 AND active = 1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    Ok(match row {
        Some((hash, build, superuser, worker)) if hash == hash_secret(secret) => {
            Some(ApiKeyScope {
                key_id: id.to_string(),
                build_id: build.map(BuildId),
                superuser,
                worker,
            })
        }
        _ => None,
    })
}

/// On an empty database: creates the `admin` account placeholder and a
/// superuser API key, returned so the caller can show it once.
pub fn bootstrap(conn: &mut Db) -> Result<Option<NewApiKey>, StoreError> {
    let tx = write_tx(conn)?;
    let users: i64 = tx.query_row("SELECT COUNT(*) FROM user", [], |r| r.get(0))?;
    if users > 0 {
        return Ok(None);
    }
    let now = now_ms();
    tx.execute(
        "INSERT INTO user (name, password_hash, superuser, created) VALUES ('admin', NULL, 1, ?1)",
        [now],
    )?;
    let key = NewApiKey {
        id: random_hex(16),
        secret: random_hex(32),
    };
    insert_key(&tx, &key, Role::Superuser, "admin (created at first start)")?;
    tx.commit()?;
    Ok(Some(key))
}

/// What a person may do with a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Nothing; the build must look as if it did not exist.
    None,
    /// Read (a public build).
    Read,
    /// Everything (an owner or a superuser).
    Owner,
}

/// A build as the UI lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// Database id.
    pub id: BuildId,
    /// Its name.
    pub name: String,
    /// Readable by anyone.
    pub public: bool,
    /// The build's API keys may mark its releases good or bad (off by
    /// default: a verdict is a person's).
    pub key_verdicts: bool,
    /// The branch whose good releases are every branch's fallback baseline.
    pub default_branch: String,
}

/// An API key as the build page lists it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// The key id.
    pub id: String,
    /// What it is for.
    pub purpose: String,
    /// Not revoked.
    pub active: bool,
    /// Creation time, ms since the epoch.
    pub created: i64,
}

/// What `user` (`None`: not logged in) may do with `build`;
/// [`Access::None`] also for a build that does not exist.
pub fn build_access(
    conn: &Db,
    build: BuildId,
    user: Option<&UserRow>,
) -> Result<(Option<BuildInfo>, Access), StoreError> {
    let Some(info) = build_info(conn, build)? else {
        return Ok((None, Access::None));
    };
    let access = match user {
        Some(u) if u.superuser => Access::Owner,
        Some(u) if is_owner(conn, build, u.id)? => Access::Owner,
        _ if info.public => Access::Read,
        _ => Access::None,
    };
    if access == Access::None {
        return Ok((None, Access::None));
    }
    Ok((Some(info), access))
}

fn is_owner(conn: &Db, build: BuildId, user: i64) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM build_owner WHERE build_id = ?1 AND user_id = ?2",
            params![build.0, user],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Build `build`, if it exists.
pub fn build_info(conn: &Db, build: BuildId) -> Result<Option<BuildInfo>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, name, public, key_verdicts, default_branch FROM build WHERE id = ?1",
            [build.0],
            |r| {
                Ok(BuildInfo {
                    id: BuildId(r.get(0)?),
                    name: r.get(1)?,
                    public: r.get(2)?,
                    key_verdicts: r.get(3)?,
                    default_branch: r.get(4)?,
                })
            },
        )
        .optional()?)
}

/// Creates a build owned by `user` and logs it.
pub fn create_owned_build(
    conn: &mut Db,
    user: &UserRow,
    name: &str,
    public: bool,
) -> Result<BuildId, StoreError> {
    dpxdt_core::model::validate_name("build name", name).map_err(StoreError::Invalid)?;
    let tx = write_tx(conn)?;
    let now = now_ms();
    tx.execute(
        "INSERT INTO build (name, public, created, modified) VALUES (?1, ?2, ?3, ?3)",
        params![name, public, now],
    )?;
    let id = BuildId(tx.last_insert_rowid()?);
    tx.execute(
        "INSERT INTO build_owner (build_id, user_id) VALUES (?1, ?2)",
        params![id.0, user.id],
    )?;
    log_in(&tx, id, Some(user.id), "create_build", name)?;
    tx.commit()?;
    Ok(id)
}

/// A build's settings as its owners edit them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSettings {
    /// Its name.
    pub name: String,
    /// Readable by anyone.
    pub public: bool,
    /// Its API keys may give verdicts.
    pub key_verdicts: bool,
    /// The branch every other branch falls back to for baselines.
    pub default_branch: String,
}

/// Sets a build's name, whether it is public and whether its API keys may
/// give verdicts.
pub fn set_build_settings(
    conn: &mut Db,
    build: BuildId,
    user: &UserRow,
    settings: &BuildSettings,
) -> Result<(), StoreError> {
    let BuildSettings {
        name,
        public,
        key_verdicts,
        default_branch,
    } = settings;
    dpxdt_core::model::validate_name("build name", name).map_err(StoreError::Invalid)?;
    dpxdt_core::model::validate_branch("default branch", default_branch)
        .map_err(StoreError::Invalid)?;
    let tx = write_tx(conn)?;
    tx.execute(
        "UPDATE build SET name = ?1, public = ?2, key_verdicts = ?3, default_branch = ?4, modified = ?5
         WHERE id = ?6",
        params![name, public, key_verdicts, default_branch, now_ms(), build.0],
    )?;
    let msg = format!(
        "name {name:?}, default branch {default_branch:?}, {}, {}",
        if *public { "public" } else { "private" },
        if *key_verdicts {
            "API keys may give verdicts"
        } else {
            "only people give verdicts"
        }
    );
    log_in(&tx, build, Some(user.id), "settings", &msg)?;
    tx.commit()?;
    Ok(())
}

/// Lets build `build`'s API keys give verdicts, or stops them (for
/// `dpxdt-server create-build --key-verdicts`); logged without a person.
pub fn set_key_verdicts(conn: &mut Db, build: BuildId, allow: bool) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let n = tx.execute(
        "UPDATE build SET key_verdicts = ?1, modified = ?2 WHERE id = ?3",
        params![allow, now_ms(), build.0],
    )?;
    if n != 1 {
        return Err(StoreError::NotFound(format!(
            "build {build} does not exist"
        )));
    }
    let msg = if allow {
        "API keys may give verdicts"
    } else {
        "only people give verdicts"
    };
    log_in(&tx, build, None, "settings", msg)?;
    tx.commit()?;
    Ok(())
}

/// The names and e-mail addresses of a build's owners, sorted by name.
pub fn list_owners(conn: &Db, build: BuildId) -> Result<Vec<(String, Option<String>)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT u.name, u.email FROM build_owner o JOIN user u ON u.id = o.user_id
         WHERE o.build_id = ?1 ORDER BY u.name",
    )?;
    let rows = stmt.query_map([build.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Invites the user called `name` to own `build`. The invitation waits
/// until that person accepts it; it is the same whether or not such a user
/// exists.
pub fn invite_owner(
    conn: &mut Db,
    build: BuildId,
    by: &UserRow,
    name: &str,
) -> Result<(), StoreError> {
    validate_user_name(name)?;
    let tx = write_tx(conn)?;
    let owner: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM build_owner o JOIN user u ON u.id = o.user_id
                        WHERE o.build_id = ?1 AND u.name = ?2)",
        params![build.0, name],
        |r| r.get(0),
    )?;
    if owner {
        // The build page lists its owners already: this tells nothing new.
        return Err(StoreError::Conflict(format!(
            "{name} is already an owner of this build"
        )));
    }
    tx.execute(
        "INSERT OR IGNORE INTO owner_invite (build_id, user_name, invited_by, created)
         VALUES (?1, ?2, ?3, ?4)",
        params![build.0, name, by.id, now_ms()],
    )?;
    log_in(&tx, build, Some(by.id), "invite_owner", name)?;
    tx.commit()?;
    Ok(())
}

/// Withdraws the invitation of `name` to `build`.
pub fn cancel_invite(
    conn: &mut Db,
    build: BuildId,
    by: &UserRow,
    name: &str,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let n = tx.execute(
        "DELETE FROM owner_invite WHERE build_id = ?1 AND user_name = ?2",
        params![build.0, name],
    )?;
    if n == 0 {
        return Err(StoreError::Invalid(format!(
            "{name:?} has no pending invitation to this build"
        )));
    }
    log_in(&tx, build, Some(by.id), "cancel_invite", name)?;
    tx.commit()?;
    Ok(())
}

/// The user names invited to `build` and not yet answered, sorted.
pub fn list_invites(conn: &Db, build: BuildId) -> Result<Vec<String>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT user_name FROM owner_invite WHERE build_id = ?1 ORDER BY user_name")?;
    let rows = stmt.query_map([build.0], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// An invitation waiting for its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The build.
    pub build: BuildId,
    /// Its name.
    pub build_name: String,
    /// Who invited (`None` if that account is gone).
    pub invited_by: Option<String>,
}

/// The invitations waiting for `user`, oldest first.
pub fn invitations_for(conn: &Db, user: &UserRow) -> Result<Vec<Invitation>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT i.build_id, b.name, u.name FROM owner_invite i
         JOIN build b ON b.id = i.build_id
         LEFT JOIN user u ON u.id = i.invited_by
         WHERE i.user_name = ?1 ORDER BY i.created, i.build_id",
    )?;
    let rows = stmt.query_map([&user.name], |r| {
        Ok(Invitation {
            build: BuildId(r.get(0)?),
            build_name: r.get(1)?,
            invited_by: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Accepts (the user becomes an owner) or declines `user`'s invitation to
/// `build`.
pub fn answer_invite(
    conn: &mut Db,
    build: BuildId,
    user: &UserRow,
    accept: bool,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let n = tx.execute(
        "DELETE FROM owner_invite WHERE build_id = ?1 AND user_name = ?2",
        params![build.0, user.name],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!(
            "you have no invitation to build {build}"
        )));
    }
    if accept {
        tx.execute(
            "INSERT OR IGNORE INTO build_owner (build_id, user_id) VALUES (?1, ?2)",
            params![build.0, user.id],
        )?;
    }
    let what = if accept {
        "accept_invite"
    } else {
        "decline_invite"
    };
    log_in(&tx, build, Some(user.id), what, &user.name)?;
    tx.commit()?;
    Ok(())
}

/// Removes owner `name` from `build`; the last owner cannot be removed.
pub fn remove_owner(
    conn: &mut Db,
    build: BuildId,
    by: &UserRow,
    name: &str,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let owners: i64 = tx.query_row(
        "SELECT COUNT(*) FROM build_owner WHERE build_id = ?1",
        [build.0],
        |r| r.get(0),
    )?;
    let n = tx.execute(
        "DELETE FROM build_owner WHERE build_id = ?1
         AND user_id = (SELECT id FROM user WHERE name = ?2)",
        params![build.0, name],
    )?;
    if n == 0 {
        return Err(StoreError::Invalid(format!(
            "{name:?} is not an owner of this build"
        )));
    }
    if owners <= 1 {
        return Err(StoreError::Conflict(
            "the last owner of a build cannot be removed".into(),
        ));
    }
    log_in(&tx, build, Some(by.id), "revoke_admin", name)?;
    tx.commit()?;
    Ok(())
}

/// The builds `user` owns (all for a superuser), then the public ones, by name.
/// The flag says whether the user owns it.
pub fn list_builds(
    conn: &Db,
    user: Option<&UserRow>,
) -> Result<Vec<(BuildInfo, bool)>, StoreError> {
    let (uid, superuser) = user.map_or((-1, false), |u| (u.id, u.superuser));
    let mut stmt = conn.prepare(
        "SELECT id, name, public, key_verdicts, default_branch, owned FROM (
             SELECT b.id, b.name, b.public, b.key_verdicts, b.default_branch,
                    CASE WHEN ?2 = 1 OR EXISTS (SELECT 1 FROM build_owner o
                                                WHERE o.build_id = b.id AND o.user_id = ?1)
                         THEN 1 ELSE 0 END AS owned
             FROM build b) AS listed
         WHERE owned = 1 OR public = 1
         ORDER BY owned DESC, name, id",
    )?;
    let rows = stmt.query_map(params![uid, superuser], |r| {
        Ok((
            BuildInfo {
                id: BuildId(r.get(0)?),
                name: r.get(1)?,
                public: r.get(2)?,
                key_verdicts: r.get(3)?,
                default_branch: r.get(4)?,
            },
            r.get::<_, bool>(5)?,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The API keys of a build, newest first.
pub fn list_api_keys(conn: &Db, build: BuildId) -> Result<Vec<ApiKeyInfo>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, purpose, active, created FROM api_key WHERE build_id = ?1
         ORDER BY created DESC, id",
    )?;
    let rows = stmt.query_map([build.0], |r| {
        Ok(ApiKeyInfo {
            id: r.get(0)?,
            purpose: r.get(1)?,
            active: r.get(2)?,
            created: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
