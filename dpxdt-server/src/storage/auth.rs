//! Builds, API keys and the first-start bootstrap.
//!
//! A key is a random id (128 bits) and a random secret (256 bits); only the
//! SHA-256 of the secret is stored. A slow password hash (argon2) protects
//! low-entropy human passwords against guessing; a 256-bit random secret
//! cannot be guessed, so a fast hash loses nothing and keeps every API call
//! (each one authenticates) cheap.

use dpxdt_core::BuildId;
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

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
pub fn create_build(conn: &mut Connection, name: &str) -> Result<BuildId, StoreError> {
    dpxdt_core::model::validate_name("build name", name).map_err(StoreError::Invalid)?;
    let tx = write_tx(conn)?;
    let now = now_ms();
    tx.execute(
        "INSERT INTO build (name, public, created, modified) VALUES (?1, 0, ?2, ?2)",
        params![name, now],
    )?;
    let id = BuildId(tx.last_insert_rowid());
    tx.execute(
        "INSERT INTO admin_log (build_id, log_type, message, created) VALUES (?1, 'create_build', ?2, ?3)",
        params![id.0, name, now],
    )?;
    tx.commit()?;
    Ok(id)
}

/// Whether build `id` exists.
pub fn build_exists(conn: &Connection, id: BuildId) -> Result<bool, StoreError> {
    Ok(conn
        .query_row("SELECT 1 FROM build WHERE id = ?1", [id.0], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Creates an API key: scoped to `build`, or a superuser key when `build` is `None`.
pub fn create_api_key(
    conn: &mut Connection,
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
pub fn create_worker_key(conn: &mut Connection, purpose: &str) -> Result<NewApiKey, StoreError> {
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

fn insert_key(
    conn: &Connection,
    key: &NewApiKey,
    role: Role,
    purpose: &str,
) -> Result<(), StoreError> {
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
pub fn ensure_api_key(conn: &mut Connection, key: &NewApiKey) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    tx.execute("DELETE FROM api_key WHERE id = ?1", [&key.id])?;
    insert_key(&tx, key, Role::Superuser, "configured superuser key")?;
    tx.commit()?;
    Ok(())
}

/// Replaces the worker key of the in-process workers with a fresh one
/// (each start makes a new one; the old one is dropped).
pub fn replace_internal_key(conn: &mut Connection) -> Result<NewApiKey, StoreError> {
    const PURPOSE: &str = "in-process workers";
    let tx = write_tx(conn)?;
    tx.execute("DELETE FROM api_key WHERE purpose = ?1", [PURPOSE])?;
    let key = NewApiKey {
        id: random_hex(16),
        secret: random_hex(32),
    };
    insert_key(&tx, &key, Role::Worker, PURPOSE)?;
    tx.commit()?;
    Ok(key)
}

/// Revokes the active API key `key` of `build`, for the API's
/// `revoke_api_key` and the build page (`user` = the person, logged with
/// the entry). A key of another build, a superuser key, an unknown or an
/// already revoked key is "not found", so the answer tells nothing about
/// keys outside the build. Authentication reads `active` on every request,
/// so the key is refused from the next request on.
pub fn revoke_build_api_key(
    conn: &mut Connection,
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
pub fn check_api_key(
    conn: &Connection,
    id: &str,
    secret: &str,
) -> Result<Option<ApiKeyScope>, StoreError> {
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
pub fn bootstrap(conn: &mut Connection) -> Result<Option<NewApiKey>, StoreError> {
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
