//! The durable work queue, in the same SQLite database as everything else.
//!
//! A task is `live` until it is `done`, `error` (given up) or `canceled`.
//! Leasing a live task whose `eta` has passed makes the caller its owner and
//! pushes `eta` to the end of the lease; a worker that dies simply stops
//! heartbeating, its lease runs out and the next `lease` call hands the task
//! out again. After `max_attempts` leases without success the task is given
//! up and its run is marked failed, so a release never waits forever.
//!
//! Times are milliseconds since the Unix epoch in the database and seconds on
//! the wire.

use crate::storage::db::{Db, Dialect, OptionalExtension, Tx, params};
use dpxdt_core::api::LeasedTask;
use dpxdt_core::{ArtifactId, BuildId, ReleaseId, RunId, TaskId};

use crate::storage::{StoreError, build_statements_tx, now_ms, write_tx};

/// What becomes of a given-up task's run: called in the same transaction
/// with the run, the queue's name and why the task was given up. The queue
/// knows runs only by id; the caller passes the releases module's rule
/// ([`crate::storage::fail_run_for_task`]), so this module does not depend
/// on it.
pub type OnGiveUp = fn(&Tx<'_>, RunId, &str, &str) -> Result<(), StoreError>;

/// Upper bound on a lease's length, so a typo cannot park a task for years.
pub const MAX_LEASE_SECS: u64 = 24 * 3600;
/// Upper bound on tasks handed out by one lease call.
pub const MAX_LEASE_COUNT: u32 = 100;

/// The records a task belongs to (used to cancel and to fail runs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Links {
    /// The build.
    pub build: Option<BuildId>,
    /// The release.
    pub release: Option<ReleaseId>,
    /// The run.
    pub run: Option<RunId>,
}

/// Checks a queue name taken from a URL: 1..=64 of `[a-z0-9_-]`.
pub fn validate_queue_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid queue name {name:?}: use 1 to 64 of a-z, 0-9, - and _"
        )))
    }
}

/// Adds a live task, leasable at once.
pub fn add(
    conn: &Db,
    queue: &str,
    payload: &str,
    max_attempts: u32,
    links: Links,
) -> Result<TaskId, StoreError> {
    validate_queue_name(queue)?;
    if max_attempts == 0 {
        return Err(StoreError::Invalid(
            "max_attempts must be at least 1".into(),
        ));
    }
    let now = now_ms();
    let id = conn.query_row(
        "INSERT INTO task (queue, payload, status, eta, max_attempts, build_id, release_id, run_id,
                           created, modified)
         VALUES (?1, ?2, 'live', ?3, ?4, ?5, ?6, ?7, ?3, ?3)
         RETURNING id",
        params![
            queue,
            payload,
            now,
            max_attempts,
            links.build.map(|b| b.0),
            links.release.map(|r| r.0),
            links.run.map(|r| r.0)
        ],
        |r| r.get(0),
    )?;
    Ok(TaskId(id))
}

/// Adds a task in its own transaction (the HTTP `add` endpoint).
pub fn add_task(
    conn: &mut Db,
    queue: &str,
    payload: &str,
    max_attempts: u32,
) -> Result<TaskId, StoreError> {
    let tx = write_tx(conn)?;
    let id = add(&tx, queue, payload, max_attempts, Links::default())?;
    tx.commit()?;
    Ok(id)
}

/// The next task to lease in `queue`: from the build (tasks without one
/// form group 0) with the fewest tasks leased right now, then the one
/// served longest ago, then the one waiting longest; within it, its oldest
/// ready task. A build that queues a thousand captures gets one worker
/// after another only while no other build is waiting. Tasks out of
/// attempts are left for [`give_up_exhausted`]. On PostgreSQL the task row
/// is locked, and rows another replica's lease has locked are skipped
/// (`FOR UPDATE SKIP LOCKED`); if every ready task of the chosen build is
/// locked so, there is nothing to lease this time.
fn next_fair(tx: &Tx<'_>, queue: &str, now: i64) -> Result<Option<(i64, TaskRow)>, StoreError> {
    let group: Option<i64> = tx
        .query_row(
            "WITH ready AS (
                 SELECT COALESCE(build_id, 0) AS b, MIN(eta) AS first FROM task
                 WHERE queue = ?1 AND status = 'live' AND eta <= ?2
                   AND lease_attempts < max_attempts
                 GROUP BY COALESCE(build_id, 0)
             ), busy AS (
                 SELECT COALESCE(build_id, 0) AS b, COUNT(*) AS n FROM task
                 WHERE queue = ?1 AND status = 'live' AND eta > ?2 AND owner IS NOT NULL
                 GROUP BY COALESCE(build_id, 0)
             )
             SELECT ready.b FROM ready
             LEFT JOIN busy ON busy.b = ready.b
             LEFT JOIN queue_turn t ON t.queue = ?1 AND t.build_id = ready.b
             ORDER BY COALESCE(busy.n, 0), COALESCE(t.turn, 0), ready.first, ready.b
             LIMIT 1",
            params![queue, now],
            |r| r.get(0),
        )
        .optional()?;
    let Some(group) = group else {
        return Ok(None);
    };
    let pick = match tx.dialect() {
        Dialect::Sqlite => PICK.to_owned(),
        Dialect::Postgres => format!("{PICK} FOR UPDATE SKIP LOCKED"),
    };
    let task = tx
        .query_row(&pick, params![queue, now, group], |r| {
            Ok(TaskRow {
                id: TaskId(r.get(0)?),
                payload: r.get(1)?,
                lease_attempts: r.get(2)?,
                run: r.get::<_, Option<i64>>(3)?.map(RunId),
                last_error: r.get(4)?,
            })
        })
        .optional()?;
    Ok(task.map(|t| (group, t)))
}

const PICK: &str = "SELECT id, payload, lease_attempts, run_id, last_error FROM task
     WHERE queue = ?1 AND status = 'live' AND eta <= ?2 AND COALESCE(build_id, 0) = ?3
       AND lease_attempts < max_attempts
     ORDER BY eta, id LIMIT 1";

struct TaskRow {
    id: TaskId,
    payload: String,
    lease_attempts: u32,
    run: Option<RunId>,
    last_error: Option<String>,
}

/// Gives a task up: `error` state, and its run (if any) failed.
fn give_up(
    tx: &Tx<'_>,
    queue: &str,
    task: &TaskRow,
    why: &str,
    on_give_up: OnGiveUp,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE task SET status = 'error', owner = NULL, last_error = ?1, modified = ?2 WHERE id = ?3",
        params![why, now_ms(), task.id.0],
    )?;
    tracing::warn!(task = %task.id, queue, why, "task given up");
    if let Some(run) = task.run {
        on_give_up(tx, run, queue, why)?;
    }
    Ok(())
}

/// Gives up the ready tasks of `queue` that have no attempts left (their
/// last lease ran out, or their last attempt failed), and tells `on_give_up`.
fn give_up_exhausted(
    conn: &mut Db,
    queue: &str,
    now: i64,
    on_give_up: OnGiveUp,
) -> Result<(), StoreError> {
    const EXHAUSTED: &str = "SELECT id, lease_attempts, run_id, last_error FROM task
         WHERE queue = ?1 AND status = 'live' AND eta <= ?2 AND lease_attempts >= max_attempts";
    // Almost always there are none: look before taking the write lock,
    // which every lease would otherwise take and wait for.
    if conn.query_rows(EXHAUSTED, params![queue, now])?.is_empty() {
        return Ok(());
    }
    let tx = write_tx(conn)?;
    let exhausted = tx
        .query_rows(EXHAUSTED, params![queue, now])?
        .iter()
        .map(|r| {
            Ok(TaskRow {
                id: TaskId(r.get(0)?),
                payload: String::new(),
                lease_attempts: r.get(1)?,
                run: r.get::<_, Option<i64>>(2)?.map(RunId),
                last_error: r.get(3)?,
            })
        })
        .collect::<Result<Vec<_>, crate::storage::DbError>>()?;
    for task in &exhausted {
        let why = match &task.last_error {
            Some(e) => format!("gave up after {} attempts: {e}", task.lease_attempts),
            None => format!(
                "gave up after {} attempts (lease expired)",
                task.lease_attempts
            ),
        };
        give_up(&tx, queue, task, &why, on_give_up)?;
    }
    tx.commit()?;
    Ok(())
}

/// Leases up to `count` live tasks of `queue` whose eta has passed, fairly
/// across builds (see [`next_fair`]). Tasks out of attempts are given up
/// first, and `on_give_up` told.
///
/// On SQLite the lease is one write transaction. On PostgreSQL it does not
/// take the write lock: each task row it hands out is locked and others
/// are skipped, so replicas lease at the same time without waiting for each
/// other and never hand out one task twice; a heartbeat or finish locks its
/// task row too ([`held`]), so it never races a new lease of the same task.
/// The builds' turns are written last, in build order, so two leases never
/// wait for each other's turn rows in opposite orders.
pub fn lease(
    conn: &mut Db,
    queue: &str,
    owner: &str,
    count: u32,
    timeout_secs: u64,
    on_give_up: OnGiveUp,
) -> Result<Vec<LeasedTask>, StoreError> {
    validate_queue_name(queue)?;
    if owner.is_empty() {
        return Err(StoreError::Invalid("owner must not be empty".into()));
    }
    if timeout_secs == 0 || timeout_secs > MAX_LEASE_SECS {
        return Err(StoreError::Invalid(format!(
            "timeout must be between 1 and {MAX_LEASE_SECS} seconds"
        )));
    }
    let count = count.clamp(1, MAX_LEASE_COUNT);
    let now = now_ms();
    give_up_exhausted(conn, queue, now, on_give_up)?;
    let tx = match conn.dialect() {
        Dialect::Sqlite => write_tx(conn)?,
        Dialect::Postgres => conn.unlocked_tx()?,
    };
    let lease_ms = (timeout_secs * 1000) as i64;
    let mut leased = Vec::new();
    let mut served = Vec::new();
    while (leased.len() as u32) < count {
        let Some((group, task)) = next_fair(&tx, queue, now)? else {
            break;
        };
        let attempts = task.lease_attempts + 1;
        let eta = now + lease_ms;
        tx.execute(
            "UPDATE task SET owner = ?1, eta = ?2, lease_ms = ?3, lease_attempts = ?4,
                 heartbeat = NULL, heartbeat_index = -1, modified = ?5
             WHERE id = ?6 AND status = 'live'",
            params![owner, eta, lease_ms, attempts, now, task.id.0],
        )?;
        if !served.contains(&group) {
            served.push(group);
        }
        leased.push(LeasedTask {
            task_id: task.id,
            queue_name: queue.to_string(),
            payload: task.payload,
            lease_attempts: attempts,
            eta: eta / 1000,
        });
    }
    served.sort_unstable();
    for group in served {
        tx.execute(
            "INSERT INTO queue_turn (queue, build_id, turn)
             VALUES (?1, ?2, (SELECT COALESCE(MAX(turn), 0) + 1 FROM queue_turn WHERE queue = ?1))
             ON CONFLICT (queue, build_id) DO UPDATE SET turn = excluded.turn",
            params![queue, group],
        )?;
    }
    tx.commit()?;
    Ok(leased)
}

/// Whether the worker key `key_id` holds an unexpired lease on a task of
/// `build` and, given `run` (release name, release number, run name), on
/// that run: what a worker key needs to upload, download or report.
pub fn worker_holds(
    conn: &Db,
    key_id: &str,
    build: BuildId,
    run: Option<(&str, i64, &str)>,
) -> Result<bool, StoreError> {
    let prefix = format!("{key_id}/");
    let (release_name, release_number, run_name) = run.unwrap_or_default();
    let found = conn
        .query_row(
            "SELECT 1 FROM task t
             LEFT JOIN release r ON r.id = t.release_id
             LEFT JOIN run u ON u.id = t.run_id
             WHERE t.status = 'live' AND t.eta > ?1 AND t.build_id = ?2
               AND substr(t.owner, 1, length(?3)) = ?3
               AND (?4 = 0 OR (r.name = ?5 AND r.number = ?6 AND u.name = ?7))
             LIMIT 1",
            params![
                now_ms(),
                build.0,
                prefix,
                run.is_some(),
                release_name,
                release_number,
                run_name
            ],
            |_| Ok(()),
        )
        .optional()?;
    Ok(found.is_some())
}

/// Refuses, saying who (`who_holds`: "this worker key holds"), unless
/// [`worker_holds`]:
/// the check before a worker uploads or reports, through the API or in
/// the server's own process.
pub fn require_worker_holds(
    conn: &Db,
    key_id: &str,
    who_holds: &str,
    build: BuildId,
    run: Option<(&str, i64, &str)>,
) -> Result<(), StoreError> {
    if worker_holds(conn, key_id, build, run)? {
        return Ok(());
    }
    let what = match run {
        Some((release, number, run)) => format!("run {run:?} of release {release:?} {number}"),
        None => format!("build {build}"),
    };
    Err(StoreError::Forbidden(format!(
        "{who_holds} no lease on a task of {what}"
    )))
}

/// Refuses, saying who as above, unless [`worker_may_download`]: the check
/// before a worker reads an artifact.
pub fn require_worker_may_download(
    conn: &Db,
    key_id: &str,
    who_holds: &str,
    build: BuildId,
    artifact: &ArtifactId,
) -> Result<(), StoreError> {
    if worker_may_download(conn, key_id, build, artifact)? {
        return Ok(());
    }
    Err(StoreError::Forbidden(format!(
        "{who_holds} no lease on a task that needs artifact {artifact}"
    )))
}

/// Whether the worker key `key_id` holds an unexpired lease on a task of
/// `build` whose run names `artifact` (its screenshot, reference, config or
/// log, new or reference side): a worker reads what its tasks need, not
/// every artifact of a build it happens to hold one task of.
pub fn worker_may_download(
    conn: &Db,
    key_id: &str,
    build: BuildId,
    artifact: &ArtifactId,
) -> Result<bool, StoreError> {
    let prefix = format!("{key_id}/");
    let found = conn
        .query_row(
            "SELECT 1 FROM task t
             JOIN run u ON u.id = t.run_id
             WHERE t.status = 'live' AND t.eta > ?1 AND t.build_id = ?2
               AND substr(t.owner, 1, length(?3)) = ?3
               AND ?4 IN (u.image, u.ref_image, u.config, u.ref_config, u.log, u.ref_log)
             LIMIT 1",
            params![now_ms(), build.0, prefix, artifact.as_str()],
            |_| Ok(()),
        )
        .optional()?;
    Ok(found.is_some())
}

struct Held {
    status: String,
    owner: Option<String>,
    eta: i64,
    lease_ms: i64,
    heartbeat_index: i64,
    lease_attempts: u32,
    max_attempts: u32,
    run: Option<RunId>,
}

const HELD: &str =
    "SELECT status, owner, eta, lease_ms, heartbeat_index, lease_attempts, max_attempts, run_id
     FROM task WHERE id = ?1 AND queue = ?2";

/// The task if `owner` holds an unexpired lease on it in `queue`; refused
/// otherwise. On PostgreSQL its row stays locked until the transaction ends.
fn held(tx: &Tx<'_>, queue: &str, task: TaskId, owner: &str, now: i64) -> Result<Held, StoreError> {
    let sql = match tx.dialect() {
        Dialect::Sqlite => HELD.to_owned(),
        Dialect::Postgres => format!("{HELD} FOR UPDATE"),
    };
    let row = tx
        .query_row(&sql, params![task.0, queue], |r| {
            Ok(Held {
                status: r.get(0)?,
                owner: r.get(1)?,
                eta: r.get(2)?,
                lease_ms: r.get(3)?,
                heartbeat_index: r.get(4)?,
                lease_attempts: r.get(5)?,
                max_attempts: r.get(6)?,
                run: r.get::<_, Option<i64>>(7)?.map(RunId),
            })
        })
        .optional()?;
    let Some(h) = row else {
        return Err(StoreError::NotFound(format!(
            "task {task} does not exist in queue {queue:?}"
        )));
    };
    if h.status != "live" {
        return Err(StoreError::Conflict(format!("task {task} is {}", h.status)));
    }
    if h.owner.as_deref() != Some(owner) {
        return Err(StoreError::Conflict(format!(
            "task {task} is not leased by {owner:?}"
        )));
    }
    if h.eta <= now {
        return Err(StoreError::Conflict(format!(
            "the lease on task {task} has expired"
        )));
    }
    Ok(h)
}

/// The write transaction a task's heartbeat or end runs in. On PostgreSQL:
/// its build's (a task's build never changes, so it is read before the
/// lock), so workers finishing one team's tasks do not wait for another
/// team's writers; the database's for a task without a build.
fn task_tx(conn: &mut Db, task: TaskId) -> Result<Tx<'_>, StoreError> {
    if conn.dialect() == Dialect::Sqlite {
        return write_tx(conn);
    }
    let build: Option<i64> = conn
        .query_row("SELECT build_id FROM task WHERE id = ?1", [task.0], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    match build {
        Some(build) => build_statements_tx(conn, BuildId(build)),
        None => write_tx(conn),
    }
}

/// Records progress and extends the lease. A heartbeat with an index not
/// above the last one is accepted but changes nothing (it arrived late).
pub fn heartbeat(
    conn: &mut Db,
    queue: &str,
    task: TaskId,
    owner: &str,
    message: &str,
    index: i64,
    timeout_secs: Option<u64>,
) -> Result<i64, StoreError> {
    let tx = task_tx(conn, task)?;
    let now = now_ms();
    let h = held(&tx, queue, task, owner, now)?;
    if index <= h.heartbeat_index {
        tx.commit()?;
        return Ok(0);
    }
    let lease_ms = match timeout_secs {
        Some(s) if s > 0 && s <= MAX_LEASE_SECS => (s * 1000) as i64,
        Some(_) => {
            return Err(StoreError::Invalid(format!(
                "timeout must be between 1 and {MAX_LEASE_SECS} seconds"
            )));
        }
        None => h.lease_ms,
    };
    let eta = now + lease_ms;
    tx.execute(
        "UPDATE task SET heartbeat = ?1, heartbeat_index = ?2, eta = ?3, modified = ?4 WHERE id = ?5",
        params![message, index, eta, now, task.0],
    )?;
    tx.commit()?;
    Ok(eta / 1000)
}

/// Ends a lease: done, or with `error` back in the queue until its attempts
/// run out (then given up, and `on_give_up` told).
pub fn finish(
    conn: &mut Db,
    queue: &str,
    task: TaskId,
    owner: &str,
    error: Option<&str>,
    on_give_up: OnGiveUp,
) -> Result<(), StoreError> {
    let tx = task_tx(conn, task)?;
    let now = now_ms();
    let h = held(&tx, queue, task, owner, now)?;
    match error {
        None => {
            tx.execute(
                "UPDATE task SET status = 'done', eta = ?1, modified = ?1 WHERE id = ?2",
                params![now, task.0],
            )?;
        }
        Some(err) if h.lease_attempts < h.max_attempts => {
            // Back in line at once; the next lease is a new attempt.
            tx.execute(
                "UPDATE task SET owner = NULL, eta = ?1, last_error = ?2, modified = ?1 WHERE id = ?3",
                params![now, err, task.0],
            )?;
        }
        Some(err) => {
            let row = TaskRow {
                id: task,
                payload: String::new(),
                lease_attempts: h.lease_attempts,
                run: h.run,
                last_error: Some(err.to_string()),
            };
            give_up(
                &tx,
                queue,
                &row,
                &format!("gave up after {} attempts: {err}", row.lease_attempts),
                on_give_up,
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Cancels a live task (whoever holds it).
pub fn cancel(conn: &mut Db, queue: &str, task: TaskId) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let n = tx.execute(
        "UPDATE task SET status = 'canceled', owner = NULL, modified = ?1
         WHERE id = ?2 AND queue = ?3 AND status = 'live'",
        params![now_ms(), task.0, queue],
    )?;
    if n == 0 {
        let exists: Option<String> = tx
            .query_row(
                "SELECT status FROM task WHERE id = ?1 AND queue = ?2",
                params![task.0, queue],
                |r| r.get(0),
            )
            .optional()?;
        return Err(match exists {
            Some(status) => StoreError::Conflict(format!("task {task} is {status}")),
            None => StoreError::NotFound(format!("task {task} does not exist in queue {queue:?}")),
        });
    }
    tx.commit()?;
    Ok(())
}

/// Cancels every live task of a release; returns how many.
pub fn cancel_for_release(tx: &Tx<'_>, release: ReleaseId) -> Result<usize, StoreError> {
    Ok(tx.execute(
        "UPDATE task SET status = 'canceled', owner = NULL, modified = ?1
         WHERE release_id = ?2 AND status = 'live'",
        params![now_ms(), release.0],
    )?)
}

/// Counts of tasks per queue and status, for status pages and tests.
pub fn counts(conn: &Db) -> Result<Vec<(String, String, i64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT queue, status, COUNT(*) FROM task GROUP BY queue, status ORDER BY queue, status",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Task counts per queue and state, for the superusers' queue page.
pub fn queue_counts(conn: &Db) -> Result<Vec<(String, String, i64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT queue, status, COUNT(*) FROM task GROUP BY queue, status ORDER BY queue, status",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A task as the queue page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// Task id.
    pub id: i64,
    /// Queue name.
    pub queue: String,
    /// live, done, error or canceled.
    pub status: String,
    /// Who holds the lease.
    pub owner: Option<String>,
    /// Leases taken so far.
    pub attempts: i64,
    /// The last heartbeat message.
    pub heartbeat: Option<String>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it may be leased next, ms since the epoch.
    pub eta: i64,
}

/// The `limit` newest tasks that are live or failed.
pub fn recent_tasks(conn: &Db, limit: u32) -> Result<Vec<TaskInfo>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, queue, status, owner, lease_attempts, heartbeat, last_error, eta FROM task
         WHERE status IN ('live', 'error') ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        Ok(TaskInfo {
            id: r.get(0)?,
            queue: r.get(1)?,
            status: r.get(2)?,
            owner: r.get(3)?,
            attempts: r.get(4)?,
            heartbeat: r.get(5)?,
            last_error: r.get(6)?,
            eta: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Store;
    use crate::storage::fail_run_for_task;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn expire(conn: &Db, task: TaskId) {
        conn.execute("UPDATE task SET eta = 0 WHERE id = ?1", [task.0])
            .unwrap();
    }

    #[test]
    fn one_builds_backlog_does_not_starve_another() {
        let (_d, s) = store();
        s.blocking(|c| {
            c.execute_batch(
                "INSERT INTO build (id, name, public, created, modified) VALUES
                 (1, 'big', 0, 0, 0), (2, 'small', 0, 0, 0)",
            )?;
            let add_for = |c: &mut Db, build: i64, payload: &str| {
                let tx = write_tx(c)?;
                let links = Links {
                    build: Some(BuildId(build)),
                    ..Links::default()
                };
                add(&tx, "capture", payload, 3, links)?;
                tx.commit()?;
                Ok::<_, StoreError>(())
            };
            for i in 0..6 {
                add_for(c, 1, &format!("big {i}"))?;
            }
            add_for(c, 2, "small 0")?;
            add_for(c, 2, "small 1")?;
            // One worker, one task at a time: the builds take turns while
            // both wait, although all of "big" was queued first.
            let mut order = Vec::new();
            while let Some(t) = lease(c, "capture", "w", 1, 60, fail_run_for_task)?.pop() {
                order.push(t.payload.clone());
                finish(c, "capture", t.task_id, "w", None, fail_run_for_task)?;
            }
            assert_eq!(
                order,
                [
                    "big 0", "small 0", "big 1", "small 1", "big 2", "big 3", "big 4", "big 5"
                ]
            );
            // Several at once: "small" was served longest ago, then the
            // build with fewer tasks running goes first.
            for i in 0..4 {
                add_for(c, 1, &format!("big again {i}"))?;
            }
            add_for(c, 2, "small again")?;
            let batch: Vec<String> = lease(c, "capture", "w", 3, 60, fail_run_for_task)?
                .into_iter()
                .map(|t| t.payload)
                .collect();
            assert_eq!(batch, ["small again", "big again 0", "big again 1"]);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn lease_finish_and_retry() {
        let (_d, s) = store();
        s.blocking(|c| {
            let a = add_task(c, "q", "a", 2)?;
            let b = add_task(c, "q", "b", 1)?;
            let got = lease(c, "q", "w1", 1, 60, fail_run_for_task)?;
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].task_id, a);
            assert_eq!(got[0].lease_attempts, 1);
            // Leased tasks are not handed out again while the lease runs.
            let got = lease(c, "q", "w2", 10, 60, fail_run_for_task)?;
            assert_eq!(got.iter().map(|t| t.task_id).collect::<Vec<_>>(), [b]);
            assert!(lease(c, "q", "w2", 10, 60, fail_run_for_task)?.is_empty());
            // Someone else cannot finish a task; a failure requeues it.
            assert!(matches!(
                finish(c, "q", a, "w2", None, fail_run_for_task),
                Err(StoreError::Conflict(_))
            ));
            finish(c, "q", a, "w1", Some("boom"), fail_run_for_task)?;
            let again = lease(c, "q", "w3", 10, 60, fail_run_for_task)?;
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].lease_attempts, 2);
            // The second failure exhausts max_attempts = 2.
            finish(c, "q", a, "w3", Some("boom again"), fail_run_for_task)?;
            assert!(lease(c, "q", "w3", 10, 60, fail_run_for_task)?.is_empty());
            finish(c, "q", b, "w2", None, fail_run_for_task)?;
            let counts = counts(c)?;
            assert_eq!(
                counts,
                [
                    ("q".to_string(), "done".to_string(), 1),
                    ("q".to_string(), "error".to_string(), 1)
                ]
            );
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn expired_lease_is_released_and_refused() {
        let (_d, s) = store();
        s.blocking(|c| {
            let a = add_task(c, "q", "a", 2)?;
            lease(c, "q", "w1", 1, 60, fail_run_for_task)?;
            expire(c, a);
            // The dead worker's heartbeat and finish are refused.
            assert!(heartbeat(c, "q", a, "w1", "x", 1, None).is_err());
            let got = lease(c, "q", "w2", 1, 60, fail_run_for_task)?;
            assert_eq!(got[0].lease_attempts, 2);
            assert!(matches!(
                finish(c, "q", a, "w1", None, fail_run_for_task),
                Err(StoreError::Conflict(_))
            ));
            expire(c, a);
            // Attempts are used up: the next lease gives the task up.
            assert!(lease(c, "q", "w3", 1, 60, fail_run_for_task)?.is_empty());
            let status: String =
                c.query_row("SELECT status FROM task WHERE id = ?1", [a.0], |r| r.get(0))?;
            assert_eq!(status, "error");
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn heartbeat_extends_and_ignores_old_indexes() {
        let (_d, s) = store();
        s.blocking(|c| {
            let a = add_task(c, "q", "a", 3)?;
            lease(c, "q", "w", 1, 5, fail_run_for_task)?;
            let eta = heartbeat(c, "q", a, "w", "half way", 2, Some(600))?;
            assert!(eta >= now_ms() / 1000 + 590);
            assert_eq!(heartbeat(c, "q", a, "w", "stale", 1, None)?, 0);
            let msg: String =
                c.query_row("SELECT heartbeat FROM task WHERE id = ?1", [a.0], |r| {
                    r.get(0)
                })?;
            assert_eq!(msg, "half way");
            cancel(c, "q", a)?;
            assert!(matches!(cancel(c, "q", a), Err(StoreError::Conflict(_))));
            assert!(matches!(
                cancel(c, "q", TaskId(999)),
                Err(StoreError::NotFound(_))
            ));
            assert!(add_task(c, "Bad Name", "x", 1).is_err());
            Ok(())
        })
        .unwrap();
    }
}
