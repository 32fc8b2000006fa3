//! `url_pair_diff NEW_URL BASELINE_URL`: captures two live pages and diffs
//! the new one against the baseline, as one run of a new release.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use dpxdt_core::api::RequestRunRequest;
use dpxdt_tools::release;
use dpxdt_tools::tool_args::{CaptureArgs, ServerArgs, WaitArgs};
use url::Url;

/// Diff a new page against a baseline page, both captured live.
#[derive(Debug, Parser)]
#[command(name = "url_pair_diff", version)]
struct Args {
    /// The new page.
    new_url: String,

    /// The baseline page it is compared with.
    baseline_url: String,

    #[command(flatten)]
    capture: CaptureArgs,

    #[command(flatten)]
    server: ServerArgs,

    #[command(flatten)]
    wait: WaitArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    dpxdt_tools::tool_args::run_tool(run(args))
}

fn parse_page_url(what: &str, raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw.trim()).with_context(|| format!("invalid {what} {raw:?}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("invalid {what} {raw:?}: only http and https pages can be captured");
    }
    Ok(url)
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let new_url = parse_page_url("NEW_URL", &args.new_url)?;
    let baseline_url = parse_page_url("BASELINE_URL", &args.baseline_url)?;
    let config = args.capture.config_json()?;
    let client = args.server.client()?;

    let key =
        release::create_release(&client, &args.server, "url_pair_diff", new_url.as_str()).await?;
    let request = RequestRunRequest {
        build_id: key.build_id,
        release_name: key.release_name.clone(),
        release_number: key.release_number,
        run_name: dpxdt_tools::crawl::run_name(&new_url),
        url: new_url.to_string(),
        config: config.clone(),
        ref_url: Some(baseline_url.to_string()),
        ref_config: Some(config),
    };
    client
        .request_run(&request)
        .await
        .with_context(|| format!("cannot request a run for {new_url}"))?;
    release::finish(&client, &key, &args.wait).await
}
