//! `site_diff START_URL`: crawls a site under the start URL's path and asks
//! the server to capture every page as a run of a new release, compared with
//! the same page in the last good release.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use dpxdt_core::CaptureConfig;
use dpxdt_core::api::RequestRunRequest;
use dpxdt_core::capture::{Browser, BrowserOptions};
use dpxdt_tools::crawl::{self, CrawlOptions};
use dpxdt_tools::release;
use dpxdt_tools::tool_args::{CaptureArgs, ServerArgs, WaitArgs};
use url::Url;

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

    /// Crawl at most this many pages (it says so when it stops there).
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

    /// Also crawl the pages this sitemap lists (repeatable; `/sitemap.xml`
    /// of the start URL's site is read anyway when it exists).
    #[arg(long = "sitemap", value_name = "URL")]
    sitemaps: Vec<String>,

    /// Follow only the links in each page's HTML; do not render pages in
    /// Chromium to find the links their scripts add.
    #[arg(long = "no-render", visible_alias = "no_render")]
    no_render: bool,

    /// Stop at the first broken link instead of listing broken links at the end.
    #[arg(long)]
    strict: bool,

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
    let mut sitemaps = Vec::new();
    for raw in &args.sitemaps {
        let url = Url::parse(raw.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .with_context(|| format!("--sitemap {raw:?} is not an absolute http(s) URL"))?;
        sitemaps.push(url);
    }
    // Check the flags that need no network before crawling.
    let config = args.capture.config_json()?;
    let client = if args.list_pages {
        None
    } else {
        args.server.build_id()?;
        Some(args.server.client()?)
    };
    let render_config = CaptureConfig::from_json(&config).context("capture flags")?;
    let browser = if args.no_render {
        None
    } else {
        let options = BrowserOptions {
            sessions: 2,
            ..BrowserOptions::default()
        };
        let browser = Browser::launch(options).await.context(
            "cannot start Chromium to render pages for links (install it, or pass --no-render to follow only the links in each page's HTML)",
        )?;
        Some(Arc::new(browser))
    };
    let options = CrawlOptions {
        max_depth: u32::try_from(args.crawl_depth).ok(),
        ignore_prefixes: args.ignore_prefixes.clone(),
        basic_auth: args.capture.basic_auth()?,
        max_pages: args.max_pages,
        concurrency: 4,
        timeout: Duration::from_secs(30),
        sitemaps,
        browser: browser.clone(),
        render_config,
        strict: args.strict,
    };

    eprintln!("site_diff: crawling {start}");
    let crawled = crawl::crawl(&start, &options).await;
    // Chromium is not needed past the crawl: dropping it kills it.
    drop(options);
    drop(browser);
    let found = crawled.context("crawl failed")?;
    for warning in &found.warnings {
        eprintln!("site_diff: warning: {warning}");
    }
    for (url, reason) in &found.skipped {
        eprintln!("site_diff: skipped {url}: {reason}");
    }
    if found.not_visited > 0 {
        eprintln!(
            "site_diff: stopped at --max-pages {}: {} more linked pages were not crawled",
            args.max_pages, found.not_visited
        );
    }
    eprintln!(
        "site_diff: found {} pages under {start}{}",
        found.pages.len(),
        match found.broken.len() {
            0 => String::new(),
            n => format!(" and {n} broken links"),
        }
    );
    let report_broken = || {
        for broken in &found.broken {
            eprintln!("site_diff: broken link: {broken}");
        }
    };
    let Some(client) = client else {
        for page in &found.pages {
            println!("{page}");
        }
        report_broken();
        return Ok(ExitCode::SUCCESS);
    };
    if found.pages.is_empty() {
        anyhow::bail!("the crawl from {start} found no pages");
    }

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
    let code = release::finish(&client, &key, &args.wait).await;
    report_broken();
    code
}
