//! PostgreSQL-only behaviour: what several replicas on one database must
//! get right beside each other.

use std::collections::HashSet;

use dpxdt_server::storage::queue::{self, Links};
use dpxdt_server::storage::{ArtifactsConfig, DatabaseUrl, Store, fail_run_for_task};

use crate::common::count;

/// Two replicas' stores on one fresh PostgreSQL database.
fn two_stores() -> (tempfile::TempDir, Store, Store) {
    let url = DatabaseUrl::Postgres(dpxdt_e2e::postgres::shared().fresh_database());
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        Store::open_shared_at(&dir.path().join(name), &url, &ArtifactsConfig::default()).unwrap()
    };
    let (a, b) = (open("a"), open("b"));
    (dir, a, b)
}

/// Leases from two replicas at once hand out every task exactly once, and
/// neither waits for the other: each takes what the other has not locked.
#[test]
fn concurrent_leases_on_two_replicas_never_hand_out_a_task_twice() {
    let (_dir, a, b) = two_stores();
    const TASKS: usize = 600;
    a.blocking(|c| {
        for i in 0..TASKS {
            let links = Links {
                build: Some(dpxdt_core::BuildId(1 + (i % 3) as i64)),
                ..Links::default()
            };
            queue::add(c, "q", &format!("task {i}"), 3, links)?;
        }
        Ok(())
    })
    .unwrap();
    let leaser = |store: Store, who: &'static str| {
        std::thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                let tasks = store
                    .blocking(|c| queue::lease(c, "q", who, 7, 600, fail_run_for_task))
                    .unwrap();
                if tasks.is_empty() {
                    // Nothing left that the other replica has not locked or
                    // leased; one more look after it commits ends it.
                    let more = store
                        .blocking(|c| queue::lease(c, "q", who, 7, 600, fail_run_for_task))
                        .unwrap();
                    if more.is_empty() {
                        return got;
                    }
                    got.extend(more.into_iter().map(|t| t.task_id));
                    continue;
                }
                got.extend(tasks.into_iter().map(|t| t.task_id));
            }
        })
    };
    let (ta, tb) = (
        leaser(a.clone(), "replica-a"),
        leaser(b.clone(), "replica-b"),
    );
    let (got_a, got_b) = (ta.join().unwrap(), tb.join().unwrap());
    let all: HashSet<_> = got_a.iter().chain(&got_b).collect();
    assert_eq!(
        got_a.len() + got_b.len(),
        all.len(),
        "a task was handed out twice"
    );
    assert_eq!(all.len(), TASKS, "every task was handed out");
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "both replicas leased: {} and {}",
        got_a.len(),
        got_b.len()
    );
    // The database agrees: each task has one owner, the one that got it.
    let owners: Vec<(i64, String)> = a
        .blocking(|c| {
            Ok(
                c.query_rows("SELECT id, owner FROM task WHERE queue = 'q'", [])?
                    .iter()
                    .map(|r| Ok((r.get(0)?, r.get(1)?)))
                    .collect::<Result<_, dpxdt_server::storage::DbError>>()?,
            )
        })
        .unwrap();
    for (id, owner) in owners {
        let id = dpxdt_core::TaskId(id);
        let want = if got_a.contains(&id) {
            "replica-a"
        } else {
            "replica-b"
        };
        assert_eq!(owner, want, "task {id}");
    }
}

/// Replicas given one `--server-key-file` open each other's sealed secrets
/// (a build's commit-status token sealed by one is used by another); a
/// replica with a key of its own cannot.
#[test]
fn replicas_given_one_key_file_share_sealed_secrets() {
    let (dir, a, b) = two_stores();
    let key = dir.path().join("shared.key");
    let (a, b) = (a.with_key_file(&key), b.with_key_file(&key));
    let sealed = a
        .secret_key()
        .unwrap()
        .seal(b"status token", b"build 1")
        .unwrap();
    assert_eq!(
        b.secret_key().unwrap().open(&sealed, b"build 1").unwrap(),
        b"status token"
    );
    assert!(!dir.path().join("a/server.key").exists());
    let own = Store::open_shared_at(
        &dir.path().join("c"),
        &DatabaseUrl::DataDir,
        &ArtifactsConfig::default(),
    )
    .unwrap();
    assert!(own.secret_key().unwrap().open(&sealed, b"build 1").is_err());
}

/// Replicas started together on a new database: each applies or waits for
/// the migrations under the write lock, and all of them open (found by the
/// load benchmark: without the lock, two could race to create the schema
/// table and one failed to start).
#[test]
fn replicas_starting_together_on_a_new_database_all_open() {
    let url = DatabaseUrl::Postgres(dpxdt_e2e::postgres::shared().fresh_database());
    let dir = tempfile::tempdir().unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let starts: Vec<_> = (0..4)
        .map(|i| {
            let (url, barrier) = (url.clone(), barrier.clone());
            let data = dir.path().join(format!("r{i}"));
            std::thread::spawn(move || {
                barrier.wait();
                Store::open_shared_at(&data, &url, &ArtifactsConfig::default()).map(|_| ())
            })
        })
        .collect();
    for start in starts {
        start.join().unwrap().unwrap();
    }
    let store =
        Store::open_shared_at(&dir.path().join("r0"), &url, &ArtifactsConfig::default()).unwrap();
    let versions = count(&store, "SELECT COUNT(*) FROM dpxdt_schema");
    assert_eq!(versions, 1, "one version row");
}

/// A lost database session (the database restarted, a proxy cut it) is
/// made again by the next statement; but within a transaction nothing runs
/// on a new session, so a transaction the server rolled back can never
/// commit half of itself.
#[test]
fn a_lost_database_session_is_made_again_but_never_inside_a_transaction() {
    let pg = dpxdt_e2e::postgres::shared();
    let url = pg.fresh_database();
    let name = url.rsplit('/').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_shared_at(
        dir.path(),
        &DatabaseUrl::Postgres(url),
        &ArtifactsConfig::default(),
    )
    .unwrap();
    let cut = || {
        let ended = pg
            .psql(
                "postgres",
                &format!(
                    "SELECT COUNT(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE datname = '{name}'"
                ),
            )
            .unwrap();
        // The store's sessions (a pool of them).
        assert!(ended.trim().parse::<u32>().unwrap() >= 1, "{ended}");
    };
    let users = |s: &Store| -> Result<i64, dpxdt_server::storage::StoreError> {
        s.blocking(|c| Ok(c.query_row("SELECT COUNT(*) FROM user", [], |r| r.get(0))?))
    };
    assert_eq!(users(&store).unwrap(), 0);

    // Between statements: at most the first use of each session fails
    // (sequential calls reuse the last one), then all is well.
    cut();
    let first = users(&store);
    assert_eq!(users(&store).unwrap(), 0, "after {first:?}");

    // Inside a transaction: the statement that meets the cut fails, and
    // so does every later one (a caller that went on anyway must not get a
    // new session in the middle); nothing of the transaction stays.
    let (met, late) = store
        .blocking(|c| {
            let tx = dpxdt_server::storage::db::write_tx(c)?;
            tx.execute(
                "INSERT INTO user (name, superuser, created) VALUES ('early', 0, 0)",
                [],
            )?;
            cut();
            let insert = |name: &str| {
                tx.execute(
                    "INSERT INTO user (name, superuser, created) VALUES (?1, 0, 0)",
                    [name],
                )
            };
            let met = insert("met").map_err(|e| e.to_string());
            let late = insert("late").map_err(|e| e.to_string());
            Ok((met, late))
        })
        .unwrap();
    assert!(met.is_err(), "{met:?}");
    let late = late.unwrap_err();
    assert!(
        late.contains("lost in the middle of a transaction"),
        "{late}"
    );
    assert_eq!(
        users(&store).unwrap(),
        0,
        "nothing of the transaction stayed"
    );
}

/// A build's writers lock only that build (and share the database lock):
/// while one transaction holds build 1's lock on replica A, replica B
/// reports a run of build 2 at once; a report of build 1 and a
/// database-wide writer wait until build 1's transaction ends.
#[test]
fn writers_of_different_builds_do_not_wait_for_each_other() {
    use dpxdt_core::api::ReportRunRequest;
    use dpxdt_server::storage::db::{build_write_tx, write_tx};
    use dpxdt_server::storage::releases::NewRelease;
    use dpxdt_server::storage::{Limits, create_build, create_release, report_run};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let (_dir, a, b) = two_stores();
    let limits = Limits::default();
    let builds = a
        .blocking(|c| {
            let mut ids = Vec::new();
            for name in ["one", "two"] {
                let build = create_build(c, name)?;
                let release = NewRelease {
                    name: "r",
                    url: "u",
                    branch: None,
                    commit_sha: None,
                };
                create_release(c, build, &release, &limits)?;
                ids.push(build);
            }
            Ok(ids)
        })
        .unwrap();
    let (one, two) = (builds[0], builds[1]);
    let report = |store: &Store, build: dpxdt_core::BuildId, run: &str| {
        let (store, run) = (store.clone(), run.to_owned());
        std::thread::spawn(move || {
            let req = ReportRunRequest {
                build_id: build,
                release_name: "r".into(),
                release_number: 1,
                run_name: run,
                ..Default::default()
            };
            store.blocking(|c| report_run(c, &req, &Limits::default()))
        })
    };
    // Waits (up to a deadline) until `n` lock requests are waiting.
    let waiting = |n: i64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = count(
                &b,
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            );
            if now >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{now} lock requests wait, not {n}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    let (held_tx, held) = mpsc::channel();
    let (end_tx, end) = mpsc::channel::<()>();
    let holder = {
        let a = a.clone();
        std::thread::spawn(move || {
            a.blocking(|c| {
                let tx = build_write_tx(c, one.0)?;
                // The lock goes out with the transaction's first statement.
                tx.execute(
                    "UPDATE release SET modified = modified WHERE build_id = ?1",
                    [one.0],
                )?;
                held_tx.send(()).unwrap();
                end.recv().unwrap();
                tx.commit()?;
                Ok(())
            })
        })
    };
    held.recv().unwrap();

    // Build 2 is not held up: its report finishes while build 1 is locked.
    let (done_tx, done) = mpsc::channel();
    let other = report(&b, two, "/other");
    std::thread::spawn(move || done_tx.send(other.join().unwrap()).unwrap());
    let outcome = done
        .recv_timeout(Duration::from_secs(30))
        .expect("a report of build 2 waited for build 1's lock");
    outcome.unwrap();

    // Build 1's report, and a database-wide writer, wait for the holder.
    let same = report(&b, one, "/same");
    waiting(1);
    let global = {
        let b = b.clone();
        std::thread::spawn(move || {
            b.blocking(|c| {
                let tx = write_tx(c)?;
                tx.execute(
                    "UPDATE build SET modified = modified WHERE id = ?1",
                    [two.0],
                )?;
                tx.commit()?;
                Ok(())
            })
        })
    };
    waiting(2);
    assert!(!same.is_finished() && !global.is_finished());
    end_tx.send(()).unwrap();
    holder.join().unwrap().unwrap();
    same.join().unwrap().unwrap();
    global.join().unwrap().unwrap();
    assert_eq!(count(&a, "SELECT COUNT(*) FROM run"), 2);
}

/// Statements sent together (`query_many`) after a deferred BEGIN run inside
/// the transaction, in order: a rolled-back transaction leaves none of
/// them, and a statement failing as it runs fails the call.
#[test]
fn statements_sent_together_run_in_order_inside_the_transaction() {
    use dpxdt_server::storage::db::{Value, build_statements_tx};
    let (_dir, a, _b) = two_stores();
    let builds = |store: &Store| count(store, "SELECT COUNT(*) FROM build");
    let insert = "INSERT INTO build (name, created, modified) VALUES (?1, 0, 0) RETURNING id";
    let named = |name: &str| vec![Value::Text(name.into())];
    let answers = a
        .blocking(|c| {
            // Its BEGIN and locks go out with the first statement.
            let tx = build_statements_tx(c, 1)?;
            let answers = tx.query_many(&[
                (insert, named("first")),
                ("SELECT COUNT(*) FROM build WHERE name = 'first'", vec![]),
                (insert, named("second")),
            ])?;
            // The count saw the first insert: they ran in order.
            let seen: i64 = answers[1][0].get(0)?;
            // Dropped uncommitted: rolled back.
            Ok((answers.iter().map(Vec::len).collect::<Vec<_>>(), seen))
        })
        .unwrap();
    assert_eq!(answers, (vec![1, 1, 1], 1));
    assert_eq!(builds(&a), 0, "a statement ran outside the transaction");
    let failed = a.blocking(|c| {
        let tx = build_statements_tx(c, 1)?;
        // Prepared fine; fails only when it runs, after the first insert.
        tx.query_many(&[
            (insert, named("third")),
            ("SELECT 1 / ?1", vec![Value::Int(0)]),
            (insert, named("fourth")),
        ])?;
        tx.commit()?;
        Ok(())
    });
    let err = failed.unwrap_err().to_string();
    assert!(err.contains("division by zero"), "{err}");
    assert_eq!(builds(&a), 0);
}

/// `build_write_tx` holds its build's lock when it returns (whatever the
/// caller then writes to files or a bucket is under it); the statements-only
/// kind takes it with its first statement.
#[test]
fn a_build_write_transaction_holds_its_lock_before_its_first_statement() {
    use dpxdt_server::storage::db::{build_statements_tx, build_write_tx};
    let (_dir, a, b) = two_stores();
    let held = |build: i64| -> i64 {
        b.blocking(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM pg_locks
                 WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND objid::text::bigint = ?1",
                [build],
                |r| r.get(0),
            )?)
        })
        .unwrap()
    };
    a.blocking(|c| {
        let tx = build_write_tx(c, 41)?;
        assert_eq!(held(41), 1, "build_write_tx returned without its lock");
        tx.commit()?;
        Ok(())
    })
    .unwrap();
    assert_eq!(held(41), 0);
    a.blocking(|c| {
        let tx = build_statements_tx(c, 42)?;
        assert_eq!(held(42), 0);
        tx.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
        assert_eq!(held(42), 1);
        Ok(())
    })
    .unwrap();
    assert_eq!(held(42), 0, "rolled back when dropped");
}
