//! Garbage collection at scale: a data directory with RELEASES releases
//! of RUNS runs each (default 10,000 x 100 = 1,000,000 run rows) over a
//! pool of DISTINCT screenshots (default 20,000, files on disk), created
//! over 400 days, then one `storage::gc::collect` with the default policy
//! (20 releases per branch, 30 days). Prints the time and the process's
//! peak memory (VmHWM). Run by `benches/gc.sh`:
//!
//!     cargo run --release -p dpxdt-server --example gc_bench [RELEASES RUNS DISTINCT]

use std::time::Instant;

use dpxdt_core::ArtifactId;
use dpxdt_server::storage::db::params;
use dpxdt_server::storage::{Store, create_build, gc};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: u64| -> u64 {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (releases, runs, distinct) = (arg(1, 10_000), arg(2, 100), arg(3, 20_000));
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let started = Instant::now();
    let ids: Vec<ArtifactId> = (0..distinct)
        .map(|i| {
            store
                .artifacts()
                .write_bytes(format!("screenshot {i}").as_bytes())
        })
        .collect::<Result<_, _>>()?;
    let build = store.blocking(|c| create_build(c, "bench"))?;
    let day = 86_400_000i64;
    let now = dpxdt_server::storage::now_ms();
    store.blocking(|c| {
        let tx = dpxdt_server::storage::db::write_tx(c)?;
        {
            let mut art = tx.prepare(
                "INSERT INTO artifact (id, content_type, size, created) VALUES (?1, 'image/png', ?2, 0)",
            )?;
            let mut own = tx.prepare(
                "INSERT INTO artifact_owner (build_id, artifact_id, seen) VALUES (?1, ?2, 0)",
            )?;
            for (i, id) in ids.iter().enumerate() {
                art.execute(params![id.as_str(), 12 + i.to_string().len() as i64])?;
                own.execute(params![build.0, id.as_str()])?;
            }
            let mut rel = tx.prepare(
                "INSERT INTO release (build_id, name, number, url, status, created, modified, branch)
                 VALUES (?1, ?2, 1, 'u', ?3, ?4, ?4, ?5)",
            )?;
            let mut run = tx.prepare(
                "INSERT INTO run (release_id, name, status, image, ref_image, diff_image, created, modified)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            )?;
            for r in 0..releases {
                // Every fifth release is good; one in ten is on a feature branch.
                let status = if r % 5 == 0 { "good" } else { "reviewing" };
                let branch = (r % 10 == 3).then(|| format!("feature-{}", r % 50));
                let created = now - 400 * day + (r as i64 * 400 * day) / releases as i64;
                rel.execute(params![build.0, format!("r{r}"), status, created, branch])?;
                let release = tx.last_insert_rowid()?;
                for n in 0..runs {
                    // Most pages keep their screenshot for a while, then change.
                    let image = &ids[((n * 131 + r / 25) % distinct) as usize];
                    let reference = &ids[((n * 131 + r.saturating_sub(1) / 25) % distinct) as usize];
                    let changed = image != reference;
                    run.execute(params![
                        release,
                        format!("/page/{n}"),
                        if changed { "diff_found" } else { "diff_not_found" },
                        image.as_str(),
                        reference.as_str(),
                        changed.then(|| image.as_str()),
                        created
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    })?;
    eprintln!(
        "gc_bench: made {releases} releases, {} runs, {distinct} artifacts in {:.1} s",
        releases * runs,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let report = gc::collect(&store, &gc::GcOptions::default(), &mut |_| {})?;
    let took = started.elapsed();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: unknown");
    println!(
        "gc over {releases} releases / {} runs: {:.2} s, {peak}; deleted {} releases ({} runs), \
         ended {} claims, freed {} artifacts ({} bytes)",
        releases * runs,
        took.as_secs_f64(),
        report.releases,
        report.runs,
        report.claims,
        report.artifacts,
        report.bytes
    );
    Ok(())
}
