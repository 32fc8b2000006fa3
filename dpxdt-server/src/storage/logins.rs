//! Login attempt counters, kept in the database so that they survive a
//! restart and hold for every server process sharing it: per client
//! address, and per user name from one address. The review UI's limiter
//! (`ui::auth`) decides with them before each password check.

use crate::storage::db::{Db, OptionalExtension, params};

use super::{StoreError, write_tx};

/// Failed logins allowed per user name (from one address) within [`WINDOW_MS`].
pub const MAX_FAILURES_PER_USER: u32 = 5;
/// Failed logins allowed per client address within [`WINDOW_MS`].
pub const MAX_FAILURES_PER_IP: u32 = 20;
/// The counting window.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// The wait after [`MAX_FAILURES_PER_USER`] failures; it doubles with each
/// further failure.
pub const FIRST_DELAY_MS: i64 = 5_000;
/// Longest wait a user name's failures impose between attempts.
pub const MAX_DELAY_MS: i64 = 60_000;
/// How long an attempt counts as in flight at most: a password check that
/// never finished (the process died) stops holding the next one back.
pub const IN_FLIGHT_MS: i64 = 30_000;

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    in_flight: u32,
    since: i64,
    next_allowed: i64,
}

fn read(conn: &Db, key: &str, now: i64) -> Result<Counter, StoreError> {
    let row = conn
        .query_row(
            "SELECT failures, in_flight, in_flight_until, since, next_allowed
             FROM login_limit WHERE key = ?1",
            [key],
            |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            },
        )
        .optional()?;
    let fresh = Counter {
        failures: 0,
        in_flight: 0,
        since: now,
        next_allowed: now,
    };
    Ok(match row {
        None => fresh,
        Some((failures, in_flight, until, since, next_allowed)) => {
            let in_flight = if until > now { in_flight } else { 0 };
            if in_flight == 0 && now - since >= WINDOW_MS {
                fresh
            } else {
                Counter {
                    failures,
                    in_flight,
                    since,
                    next_allowed,
                }
            }
        }
    })
}

fn write(conn: &Db, key: &str, c: &Counter, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO login_limit (key, failures, in_flight, in_flight_until, since, next_allowed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,
             in_flight = excluded.in_flight, in_flight_until = excluded.in_flight_until,
             since = excluded.since, next_allowed = excluded.next_allowed",
        params![
            key,
            c.failures,
            c.in_flight,
            now + IN_FLIGHT_MS,
            c.since,
            c.next_allowed
        ],
    )?;
    Ok(())
}

/// The two counters an attempt of `user` from `ip` counts against.
pub fn keys(user: &str, ip: &str) -> [String; 2] {
    [
        format!("user:{}|{ip}", user.to_lowercase()),
        format!("ip:{ip}"),
    ]
}

/// Counts an attempt on `keys` (from [`keys`]) at `now` (ms), or says how
/// many ms to wait when a limit holds. Counted before the password check,
/// so a parallel burst gets no more guesses than a sequential one.
pub fn begin(conn: &mut Db, keys: &[String; 2], now: i64) -> Result<Result<(), i64>, StoreError> {
    let tx = write_tx(conn)?;
    // Old counters go, a few at a time.
    tx.execute(
        "DELETE FROM login_limit WHERE key IN (SELECT key FROM login_limit
             WHERE since < ?1 AND in_flight_until < ?2 LIMIT 100)",
        params![now - WINDOW_MS, now],
    )?;
    let [user_key, ip_key] = keys;
    let (mut user, mut ip) = (read(&tx, user_key, now)?, read(&tx, ip_key, now)?);
    if ip.failures + ip.in_flight >= MAX_FAILURES_PER_IP {
        return Ok(Err((WINDOW_MS - (now - ip.since)).max(0)));
    }
    if user.failures + user.in_flight >= MAX_FAILURES_PER_USER
        && (user.in_flight > 0 || now < user.next_allowed)
    {
        return Ok(Err((user.next_allowed - now).max(1000)));
    }
    user.in_flight += 1;
    ip.in_flight += 1;
    write(&tx, user_key, &user, now)?;
    write(&tx, ip_key, &ip, now)?;
    tx.commit()?;
    Ok(Ok(()))
}

/// Settles an attempt begun on `keys`: a success forgets the user name's
/// failures; a failure counts, and past the allowance starts or doubles the
/// wait.
pub fn end(conn: &mut Db, keys: &[String; 2], success: bool, now: i64) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    for key in keys {
        let mut c = read(&tx, key, now)?;
        c.in_flight = c.in_flight.saturating_sub(1);
        if !success {
            c.failures += 1;
            if let Some(over) = c.failures.checked_sub(MAX_FAILURES_PER_USER) {
                c.next_allowed = now + (FIRST_DELAY_MS << over.min(8)).min(MAX_DELAY_MS);
            }
        }
        write(&tx, key, &c, now)?;
    }
    if success {
        tx.execute("DELETE FROM login_limit WHERE key = ?1", [&keys[0]])?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn attempts_are_counted_before_the_check_and_delays_grow() {
        let (_dir, s) = store();
        let t0 = 1_000_000_000;
        let k = keys("Admin", "10.0.0.1");
        let begin = |k: &[String; 2], now| s.blocking(|c| begin(c, k, now)).unwrap();
        let end = |k: &[String; 2], ok, now| s.blocking(|c| end(c, k, ok, now)).unwrap();
        // A burst: only as many attempts start as failures are allowed.
        let started = (0..20).filter(|_| begin(&k, t0).is_ok()).count();
        assert_eq!(started, MAX_FAILURES_PER_USER as usize);
        for _ in 0..started {
            end(&k, false, t0);
        }
        // Then one attempt per delay: 5 s, 10 s, 20 s, ... up to 60 s.
        let mut now = t0;
        let lower = keys("admin", "10.0.0.1");
        assert_eq!(lower, k, "user names count case-insensitively");
        for delay in [5_000, 10_000, 20_000, 40_000, 60_000, 60_000] {
            let wait = begin(&k, now).unwrap_err();
            assert_eq!(wait, delay);
            now += wait;
            assert!(begin(&k, now).is_ok());
            assert!(begin(&k, now).is_err(), "one in flight");
            end(&k, false, now);
        }
        // The same name from elsewhere is not held up: no lockout by others.
        let other = keys("admin", "10.0.0.2");
        assert!(begin(&other, now).is_ok());
        end(&other, true, now);
        assert!(begin(&other, now).is_ok(), "nor after a success there");
    }

    #[test]
    fn an_address_gets_a_bounded_number_of_failures_and_a_dead_check_stops_counting() {
        let (_dir, s) = store();
        let now = 5_000_000_000;
        for i in 0..MAX_FAILURES_PER_IP {
            let k = keys(&format!("user{i}"), "10.0.0.9");
            assert!(s.blocking(|c| begin(c, &k, now)).unwrap().is_ok());
            s.blocking(|c| end(c, &k, false, now)).unwrap();
        }
        let k = keys("someone", "10.0.0.9");
        assert_eq!(s.blocking(|c| begin(c, &k, now)).unwrap(), Err(WINDOW_MS));
        // After the window it may try again.
        assert!(
            s.blocking(|c| begin(c, &k, now + WINDOW_MS))
                .unwrap()
                .is_ok()
        );
        // That attempt never ends (the process died): past IN_FLIGHT_MS it
        // no longer holds the next one.
        let k = keys("carol", "10.0.0.10");
        for _ in 0..MAX_FAILURES_PER_USER {
            assert!(s.blocking(|c| begin(c, &k, now)).unwrap().is_ok());
        }
        assert!(s.blocking(|c| begin(c, &k, now)).unwrap().is_err());
        assert!(
            s.blocking(|c| begin(c, &k, now + IN_FLIGHT_MS))
                .unwrap()
                .is_ok()
        );
    }
}
