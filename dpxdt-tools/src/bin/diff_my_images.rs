//! `diff_my_images`: uploads screenshots taken elsewhere (e.g. by Selenium)
//! as the runs of a new release; each is compared with the last good run of
//! the same name.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use dpxdt_core::api::ReportRunRequest;
use dpxdt_tools::release;
use dpxdt_tools::tests_json::{self, ImageTest};
use dpxdt_tools::tool_args::TestsJsonArgs;

/// Upload your own screenshots and diff them against the last good release.
/// The tests JSON file is a list of {name, run_failed, image_path, log_path, url}.
#[derive(Debug, Parser)]
#[command(name = "diff_my_images", version)]
struct Args {
    #[command(flatten)]
    tests: TestsJsonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    dpxdt_tools::tool_args::run_tool(run(args))
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tests = tests_json::load_image_tests(&args.tests.tests_json_path)?;
    let (client, key) = args.tests.start_release("diff_my_images").await?;
    let branch = args.tests.server.branch();
    for test in &tests {
        report(&client, &key, branch.as_deref(), test)
            .await
            .with_context(|| format!("test {:?}", test.name))?;
    }
    release::finish(&client, &key, &args.tests.wait).await
}

async fn report(
    client: &dpxdt_client::Client,
    key: &dpxdt_core::ReleaseKey,
    branch: Option<&str>,
    test: &ImageTest,
) -> anyhow::Result<()> {
    let build = key.build_id;
    let image = match &test.image_path {
        Some(path) if !test.run_failed => Some(
            client
                .upload_file(build, path)
                .await
                .with_context(|| format!("cannot upload {}", path.display()))?
                .sha1sum,
        ),
        _ => None,
    };
    let log = match &test.log_path {
        Some(path) => Some(
            client
                .upload_file(build, path)
                .await
                .with_context(|| format!("cannot upload {}", path.display()))?
                .sha1sum,
        ),
        None => None,
    };
    let baseline = client
        .find_run_on(build, &test.name, branch)
        .await
        .context("cannot look up the last good run")?;
    let request = ReportRunRequest {
        build_id: build,
        release_name: key.release_name.clone(),
        release_number: key.release_number,
        run_name: test.name.clone(),
        url: test.url.clone(),
        image,
        log,
        run_failed: test
            .run_failed
            .then(|| "the screenshot failed (reported by diff_my_images)".to_string()),
        ..Default::default()
    }
    .with_baseline(baseline);
    client
        .report_run(&request)
        .await
        .context("cannot report the run")
}
