//! The server's metrics in the Prometheus text format, for `GET /metrics`.
//!
//! Counters and histograms are recorded where things happen, through the
//! `metrics` facade, into one Prometheus recorder for the process
//! (installed by the first server; an embedding program that installed its
//! own recorder keeps it, and its `/metrics` then has only the gauges
//! below). Gauges of the work queue are read from the database at each
//! scrape, so every replica reports the same truth. Every name starts
//! with `dpxdt_`; README.md lists them.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::storage::db::params;
use crate::storage::{Store, StoreError, now_ms};

/// Histogram buckets, in seconds: from a fast query to a slow capture.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0,
];

/// The process's recorder, installed on first use; `None` when another
/// recorder was installed first.
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Installs the recorder, so that what happens before the first scrape
/// is counted.
pub fn install() {
    if handle().is_none() {
        tracing::warn!("another metrics recorder is installed: /metrics has the queue gauges only");
        return;
    }
    for (name, help) in DESCRIBED {
        if name.ends_with("_total") {
            metrics::describe_counter!(*name, *help);
        } else {
            metrics::describe_histogram!(*name, *help);
        }
    }
}

/// Every recorded metric and its help text (README.md has the same table).
const DESCRIBED: &[(&str, &str)] = &[
    (
        "dpxdt_http_requests_total",
        "API requests by route and status.",
    ),
    (
        "dpxdt_http_request_duration_seconds",
        "API request latency by route.",
    ),
    (
        "dpxdt_tasks_finished_total",
        "Tasks ended by queue and outcome (done, failed, abandoned).",
    ),
    (
        "dpxdt_task_duration_seconds",
        "Time from lease to finish by queue and outcome.",
    ),
    (
        "dpxdt_task_attempts",
        "Lease attempt of each task taken, by queue.",
    ),
    (
        "dpxdt_diff_duration_seconds",
        "Time to decode and diff one pair.",
    ),
    (
        "dpxdt_capture_duration_seconds",
        "Time to capture one page, by browser.",
    ),
    (
        "dpxdt_artifact_bytes_written_total",
        "Bytes of artifacts stored.",
    ),
    (
        "dpxdt_artifact_bytes_read_total",
        "Bytes of artifacts served or read by workers.",
    ),
    (
        "dpxdt_db_call_duration_seconds",
        "Time a database connection is held per call.",
    ),
    (
        "dpxdt_login_refusals_total",
        "Refused logins by reason (wrong, throttled).",
    ),
    (
        "dpxdt_limits_hit_total",
        "Requests refused by a build limit, by kind (size, rate).",
    ),
];

/// Counts an API request and its latency under `route`, one of a known
/// few labels (the API's endpoints, or `other`; the HTTP layer names it).
pub fn record_request(route: &'static str, status: u16, elapsed: Duration) {
    metrics::counter!("dpxdt_http_requests_total", "route" => route, "status" => status.to_string())
        .increment(1);
    metrics::histogram!("dpxdt_http_request_duration_seconds", "route" => route).record(elapsed);
}

/// The text of a scrape: the recorder's metrics, then the work queue's
/// tasks by queue and state.
pub async fn render(store: &Store) -> Result<String, StoreError> {
    let mut text = handle().map(PrometheusHandle::render).unwrap_or_default();
    let rows = store
        .call(|c| {
            let rows = c.query_rows(
                "SELECT queue,
                        CASE WHEN status = 'live' AND owner IS NOT NULL AND eta > ?1 THEN 'leased'
                             WHEN status = 'live' THEN 'waiting'
                             ELSE status END AS state,
                        COUNT(*)
                 FROM task GROUP BY 1, 2 ORDER BY 1, 2",
                params![now_ms()],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ));
            }
            Ok(out)
        })
        .await?;
    text.push_str(
        "# HELP dpxdt_tasks Tasks of the work queue by queue and state (waiting, leased, done, error, canceled).\n\
         # TYPE dpxdt_tasks gauge\n",
    );
    for (queue, state, n) in rows {
        // Queue names are checked at `add` (letters, digits, `-`, `_`).
        text.push_str(&format!(
            "dpxdt_tasks{{queue=\"{queue}\",state=\"{state}\"}} {n}\n"
        ));
    }
    Ok(text)
}
