//! `Idempotency-Key`: a create request (`create_release`, `create_build`,
//! `create_api_key`) sent again with the same key by the same API key gets
//! the first answer again instead of creating a second thing, so clients
//! may retry them after a lost answer.
//!
//! Keys are kept 24 hours per build and API key (the scope). The same key with a
//! different request is refused. A request is reserved before it runs and
//! its answer stored after; if the server died in between, the outcome is
//! unknown, and a retry is refused with a conflict rather than guessed.

use crate::storage::db::{Db, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{StoreError, now_ms, write_tx};

/// How long a key is remembered.
pub const TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// Longest accepted key.
pub const MAX_KEY_LEN: usize = 255;

/// One keyed request: who sent it, its key, the endpoint and its parameters.
#[derive(Debug, Clone)]
pub struct Keyed<'a> {
    /// The build the request is for and the caller's API key id.
    pub scope: &'a str,
    /// The client's `Idempotency-Key`.
    pub key: &'a str,
    /// The endpoint, e.g. `create_release`.
    pub endpoint: &'a str,
    /// The request's parameters in a stable order.
    pub request: &'a str,
}

/// Checks a key's form: 1 to 255 visible ASCII characters.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StoreError::Invalid(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
        )));
    }
    Ok(())
}

/// Runs `create` once per key: the first time it runs and its answer is
/// stored; afterwards the stored answer is returned. A failed `create`
/// forgets the key, so the request may be retried with it.
pub fn once(
    conn: &mut Db,
    keyed: &Keyed<'_>,
    create: impl FnOnce(&mut Db) -> Result<serde_json::Value, StoreError>,
) -> Result<serde_json::Value, StoreError> {
    validate_key(keyed.key)?;
    let fingerprint = hex::encode(Sha256::digest(
        format!("{}\n{}", keyed.endpoint, keyed.request).as_bytes(),
    ));
    {
        let tx = write_tx(conn)?;
        let now = now_ms();
        tx.execute(
            "DELETE FROM idempotency WHERE created < ?1",
            params![now - TTL_MS],
        )?;
        let found: Option<(String, Option<String>)> = tx
            .query_row(
                "SELECT request_sha256, response FROM idempotency WHERE scope = ?1 AND key = ?2",
                params![keyed.scope, keyed.key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match found {
            Some((earlier, _)) if earlier != fingerprint => {
                return Err(StoreError::Invalid(format!(
                    "Idempotency-Key {:?} was used for a different request in the last 24 hours",
                    keyed.key
                )));
            }
            Some((_, Some(response))) => {
                return serde_json::from_str(&response)
                    .map_err(|e| StoreError::Io(std::io::Error::other(e)));
            }
            Some((_, None)) => {
                return Err(StoreError::Conflict(format!(
                    "an earlier request with Idempotency-Key {:?} did not finish, so its outcome is unknown; look before creating again",
                    keyed.key
                )));
            }
            None => {
                tx.execute(
                    "INSERT INTO idempotency (scope, key, endpoint, request_sha256, response, created)
                     VALUES (?1, ?2, ?3, ?4, NULL, ?5)",
                    params![keyed.scope, keyed.key, keyed.endpoint, fingerprint, now],
                )?;
            }
        }
        tx.commit()?;
    }
    let forget = |conn: &mut Db| {
        conn.execute(
            "DELETE FROM idempotency WHERE scope = ?1 AND key = ?2",
            params![keyed.scope, keyed.key],
        )
    };
    match create(conn) {
        Ok(response) => {
            let text = response.to_string();
            conn.execute(
                "UPDATE idempotency SET response = ?3 WHERE scope = ?1 AND key = ?2",
                params![keyed.scope, keyed.key, text],
            )?;
            Ok(response)
        }
        Err(e) => {
            forget(conn)?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Store;

    fn keyed<'a>(key: &'a str, request: &'a str) -> Keyed<'a> {
        Keyed {
            scope: "k1",
            key,
            endpoint: "create_release",
            request,
        }
    }

    #[test]
    fn the_same_key_answers_the_first_result_and_creates_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut runs = 0;
        let mut call = |key: &str, request: &str| {
            store.blocking(|c| {
                once(c, &keyed(key, request), |_| {
                    runs += 1;
                    Ok(serde_json::json!({ "n": runs }))
                })
            })
        };
        assert_eq!(call("a", "x=1").unwrap()["n"], 1);
        assert_eq!(call("a", "x=1").unwrap()["n"], 1, "replayed");
        assert_eq!(call("b", "x=1").unwrap()["n"], 2, "another key runs");
        let err = call("a", "x=2").unwrap_err();
        assert!(err.to_string().contains("different request"), "{err}");
        assert!(call("", "x=1").is_err());
        assert!(call("a\u{7f}", "x=1").is_err());
        assert_eq!(runs, 2);
    }

    #[test]
    fn a_failed_create_forgets_the_key_and_an_unfinished_one_is_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let err = store
            .blocking(|c| {
                once(c, &keyed("k", "x=1"), |_| {
                    Err(StoreError::OverLimit("too many".into()))
                })
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::OverLimit(_)));
        let ok = store
            .blocking(|c| once(c, &keyed("k", "x=1"), |_| Ok(serde_json::json!(7))))
            .unwrap();
        assert_eq!(ok, 7);
        // A reservation without an answer: the server died mid-request.
        store
            .blocking(|c| {
                c.execute(
                    "INSERT INTO idempotency (scope, key, endpoint, request_sha256, response, created)
                     SELECT scope, 'dead', endpoint, request_sha256, NULL, created FROM idempotency",
                    [],
                )?;
                Ok(())
            })
            .unwrap();
        let err = store
            .blocking(|c| once(c, &keyed("dead", "x=1"), |_| Ok(serde_json::json!(8))))
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    }
}
