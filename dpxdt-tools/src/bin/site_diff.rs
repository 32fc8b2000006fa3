//! `site_diff START_URL`: crawls a site under the start URL's path and asks
//! the server to capture every page as a run of a new release, compared with
//! the same page in the last good release.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use dpxdt_core::api::RequestRunRequest;
use dpxdt_tools::crawl::{self, CrawlOptions};
use dpxdt_tools::release;
use dpxdt_tools::tool_args::{CaptureArgs, ServerArgs, WaitArgs};

/// Crawl a site and diff every page against the last good release.
#[derive(Debug, Parser)]
#[command(name = "site_diff", version)]
struct Args {
    /// Where the crawl starts; only links under its directory are followed.
    start_url: String,

    /// How many links deep to crawl from the start page (0 = the start page
    /// only, -1 = no limit).
    #[arg(
        long = "crawl-depth",
        visible_alias = "crawl_depth",
        default_value_t = -1,
        allow_negative_numbers = true,
        value_name = "N"
    )]
    crawl_depth: i64,

    /// Do not crawl links starting with these (paths or absolute URLs;
    /// repeat the flag or separate with commas).
    #[arg(
        long = "ignore-prefixes",
        visible_alias = "ignore_prefixes",
        value_delimiter = ',',
        value_name = "PREFIX"
    )]
    ignore_prefixes: Vec<String>,

    /// Stop with an error when the crawl finds more pages than this.
    #[arg(
        long = "max-pages",
        visible_alias = "max_pages",
        default_value_t = 1000,
        value_name = "N"
    )]
    max_pages: usize,

    /// Print the pages the crawl finds, one per line, and stop (no server needed).
    #[arg(long = "list-pages", visible_alias = "list_pages")]
    list_pages: bool,

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

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let start = crawl::parse_start_url(&args.start_url)?;
    let options = CrawlOptions {
        max_depth: u32::try_from(args.crawl_depth).ok(),
        ignore_prefixes: args.ignore_prefixes.clone(),
        basic_auth: args.capture.basic_auth()?,
        max_pages: args.max_pages,
        concurrency: 4,
        timeout: Duration::from_secs(30),
    };
    // Check the flags that need no network before crawling.
    let config = args.capture.config_json()?;
    let client = if args.list_pages {
        None
    } else {
        args.server.build_id()?;
        Some(args.server.client()?)
    };

    let found = crawl::crawl(&start, &options)
        .await
        .context("crawl failed")?;
    for (url, reason) in &found.skipped {
        eprintln!("site_diff: skipped {url}: {reason}");
    }
    let Some(client) = client else {
        for page in &found.pages {
            println!("{page}");
        }
        return Ok(ExitCode::SUCCESS);
    };
    if found.pages.is_empty() {
        anyhow::bail!("the crawl from {start} found no pages");
    }
    eprintln!("site_diff: found {} pages under {start}", found.pages.len());

    let key = release::create_release(&client, &args.server, "site_diff", start.as_str()).await?;
    for page in &found.pages {
        let run_name = crawl::run_name(page);
        let request = RequestRunRequest {
            build_id: key.build_id,
            release_name: key.release_name.clone(),
            release_number: key.release_number,
            run_name: run_name.clone(),
            url: page.to_string(),
            config: config.clone(),
            ref_url: None,
            ref_config: None,
        };
        client
            .request_run(&request)
            .await
            .with_context(|| format!("cannot request a run for {page}"))?;
    }
    release::finish(&client, &key, &args.wait).await
}
