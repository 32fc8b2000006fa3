//! What the home page says of each build: its newest release, and how many
//! of that release's runs still wait for a person.

use std::collections::HashMap;

use dpxdt_core::{BuildId, ReleaseStatus};

use super::StoreError;
use super::db::Db;
use super::reviews::WAITS_SQL;

/// A build's newest release, as the home page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    /// The release name.
    pub name: String,
    /// The attempt number.
    pub number: i64,
    /// Its state.
    pub status: ReleaseStatus,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Runs that wait for a person (see [`super::reviews::waits`]).
    pub waiting: i64,
}

/// The newest release of every build that has one.
pub fn latest_releases(conn: &Db) -> Result<HashMap<BuildId, Latest>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT r.build_id, r.name, r.number, r.status, r.created,
                (SELECT COUNT(*) FROM run WHERE run.release_id = r.id AND {WAITS_SQL})
         FROM release r
         WHERE r.id IN (SELECT MAX(id) FROM release GROUP BY build_id)"
    ))?;
    let rows = stmt.query_map([], |r| {
        let status: String = r.get(3)?;
        Ok((
            BuildId(r.get(0)?),
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            status,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let (build, name, number, status, created_ms, waiting) = row?;
        let status = status
            .parse()
            .map_err(|e| StoreError::Invalid(format!("release {name} #{number}: {e}")))?;
        out.insert(
            build,
            Latest {
                name,
                number,
                status,
                created_ms,
                waiting,
            },
        );
    }
    Ok(out)
}
