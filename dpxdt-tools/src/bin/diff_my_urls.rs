//! `diff_my_urls`: asks the server to capture a list of pages (each with an
//! optional baseline page) as the runs of a new release.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use dpxdt_core::api::RequestRunRequest;
use dpxdt_tools::release;
use dpxdt_tools::tests_json;
use dpxdt_tools::tool_args::TestsJsonArgs;

/// Capture and diff a list of pages described in a JSON file.
/// The tests JSON file is a list of {name, run_url, run_config, ref_url, ref_config}.
#[derive(Debug, Parser)]
#[command(name = "diff_my_urls", version)]
struct Args {
    #[command(flatten)]
    tests: TestsJsonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    dpxdt_tools::tool_args::run_tool(run(args))
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tests = tests_json::load_url_tests(&args.tests.tests_json_path)?;
    let (client, key) = args.tests.start_release("diff_my_urls").await?;
    for test in &tests {
        let (ref_url, ref_config) = match &test.ref_url {
            Some(url) => (Some(url.clone()), Some(test.ref_config_json()?)),
            None => (None, None),
        };
        let request = RequestRunRequest {
            build_id: key.build_id,
            release_name: key.release_name.clone(),
            release_number: key.release_number,
            run_name: test.name.clone(),
            url: test.run_url.clone(),
            config: test.run_config_json()?,
            ref_url,
            ref_config,
        };
        client
            .request_run(&request)
            .await
            .with_context(|| format!("test {:?}: cannot request the run", test.name))?;
    }
    release::finish(&client, &key, &args.tests.wait).await
}
