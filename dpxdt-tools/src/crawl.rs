//! The `site_diff` crawler: finds the HTML pages of a site under the start
//! URL's path prefix, breadth first, each page once.
//!
//! A link is followed when it has the start URL's scheme, host and port, its
//! path starts with the start URL's directory (`/docs/` for
//! `http://h/docs/index.html`), no ignore prefix matches it, and it is within
//! the depth limit. Fragments are dropped, so `/a#x` and `/a#y` are one page.
//! A page answering 404 is skipped with a note; a 5xx, 401 or 403 stops the
//! crawl with an error naming the page and the page that linked to it.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use scraper::{Html, Selector};
use url::Url;

/// How to crawl.
#[derive(Debug, Clone)]
pub struct CrawlOptions {
    /// Follow links this many clicks away from the start page (0 = the start
    /// page only); `None` means no limit.
    pub max_depth: Option<u32>,
    /// Links starting with one of these are not followed: absolute URLs
    /// (`http://h/docs/old/`) or paths (`/docs/old/`).
    pub ignore_prefixes: Vec<String>,
    /// HTTP basic auth (user name, password) sent to the site.
    pub basic_auth: Option<(String, String)>,
    /// Stop with an error when more pages than this are found.
    pub max_pages: usize,
    /// Pages fetched at the same time.
    pub concurrency: usize,
    /// Timeout per page.
    pub timeout: Duration,
}

impl Default for CrawlOptions {
    fn default() -> Self {
        CrawlOptions {
            max_depth: None,
            ignore_prefixes: Vec::new(),
            basic_auth: None,
            max_pages: 1000,
            concurrency: 4,
            timeout: Duration::from_secs(30),
        }
    }
}

/// What a crawl found.
#[derive(Debug, Clone, Default)]
pub struct CrawlResult {
    /// The HTML pages, in the order they were found (the start page first).
    pub pages: Vec<Url>,
    /// Links under the prefix that were not pages, with the reason (404, not HTML).
    pub skipped: Vec<(Url, String)>,
}

/// Why a crawl stopped.
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    /// The start URL is not an absolute http(s) URL.
    #[error("invalid start url {url:?}: {reason}")]
    InvalidStartUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A page could not be fetched at all.
    #[error("cannot fetch {url}{}: {detail}", linked_from(.referrer))]
    Fetch {
        /// The page.
        url: String,
        /// The page that linked to it.
        referrer: Option<String>,
        /// What went wrong.
        detail: String,
    },
    /// A page answered with an error status.
    #[error("{url} answered {status}{}{hint}", linked_from(.referrer))]
    Status {
        /// The page.
        url: String,
        /// The page that linked to it.
        referrer: Option<String>,
        /// The HTTP status, e.g. `500 Internal Server Error`.
        status: String,
        /// What to do about it, when there is something to say.
        hint: String,
    },
    /// The start page is not HTML.
    #[error("the start page {url} is not an HTML page (content type {content_type:?})")]
    StartNotHtml {
        /// The start page.
        url: String,
        /// Its content type.
        content_type: String,
    },
    /// More pages than allowed.
    #[error(
        "the crawl found more than {limit} pages; lower --crawl_depth, add --ignore_prefixes or raise --max_pages"
    )]
    TooManyPages {
        /// The limit.
        limit: usize,
    },
}

fn linked_from(referrer: &Option<String>) -> String {
    match referrer {
        Some(r) => format!(" (linked from {r})"),
        None => String::new(),
    }
}

/// Which links the crawl follows: the start URL's origin and directory,
/// minus the ignore prefixes.
#[derive(Debug, Clone)]
pub struct Scope {
    start: Url,
    dir: String,
    ignore: Vec<String>,
}

impl Scope {
    /// The scope of a crawl from `start`.
    pub fn new(start: &Url, ignore_prefixes: &[String]) -> Self {
        let path = start.path();
        let dir = match path.rfind('/') {
            Some(i) => path[..=i].to_string(),
            None => "/".to_string(),
        };
        let ignore = ignore_prefixes
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(|p| {
                if p.contains("://") || p.starts_with('/') {
                    p.to_string()
                } else {
                    format!("/{p}")
                }
            })
            .collect();
        Scope {
            start: start.clone(),
            dir,
            ignore,
        }
    }

    /// The path prefix every followed link has.
    pub fn prefix(&self) -> &str {
        &self.dir
    }

    /// True when the crawl follows `url` (given without a fragment).
    pub fn contains(&self, url: &Url) -> bool {
        if url.scheme() != self.start.scheme()
            || url.host_str() != self.start.host_str()
            || url.port_or_known_default() != self.start.port_or_known_default()
        {
            return false;
        }
        if !url.path().starts_with(&self.dir) {
            return false;
        }
        !self.ignore.iter().any(|prefix| {
            if prefix.starts_with('/') {
                url.path().starts_with(prefix.as_str())
            } else {
                url.as_str().starts_with(prefix.as_str())
            }
        })
    }
}

/// The absolute URLs (fragments dropped) of the links in an HTML page,
/// resolved against `<base href>` when there is one, in document order.
pub fn extract_links(page_url: &Url, html: &str) -> Vec<Url> {
    let document = Html::parse_document(html);
    let base_selector = Selector::parse("base[href]").expect("a valid selector");
    let link_selector = Selector::parse("a[href], area[href]").expect("a valid selector");
    let base = document
        .select(&base_selector)
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|href| page_url.join(href.trim()).ok())
        .unwrap_or_else(|| page_url.clone());
    let mut links = Vec::new();
    for element in document.select(&link_selector) {
        let Some(href) = element.value().attr("href") else {
            continue;
        };
        let Ok(mut url) = base.join(href.trim()) else {
            continue;
        };
        if !matches!(url.scheme(), "http" | "https") {
            continue;
        }
        url.set_fragment(None);
        links.push(url);
    }
    links
}

/// Parses a start URL: absolute http(s), fragment dropped.
pub fn parse_start_url(raw: &str) -> Result<Url, CrawlError> {
    let invalid = |reason: String| CrawlError::InvalidStartUrl {
        url: raw.to_string(),
        reason,
    };
    let mut url = Url::parse(raw.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("only http and https URLs can be crawled".into()));
    }
    url.set_fragment(None);
    Ok(url)
}

/// One fetched page.
enum Fetched {
    /// An HTML page at its final URL (after redirects), with its links.
    Page(Url, Vec<Url>),
    /// Not a page to capture.
    Skipped(Url, String),
}

/// Crawls from `start` and returns the pages found.
pub async fn crawl(start: &Url, options: &CrawlOptions) -> Result<CrawlResult, CrawlError> {
    let http = reqwest::Client::builder()
        .timeout(options.timeout)
        .user_agent(concat!("dpxdt-site-diff/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CrawlError::Fetch {
            url: start.to_string(),
            referrer: None,
            detail: e.to_string(),
        })?;
    let scope = Scope::new(start, &options.ignore_prefixes);
    let mut seen: HashSet<String> = HashSet::from([start.to_string()]);
    let mut result = CrawlResult::default();
    // Each level holds (url, referrer) pairs at the same depth.
    let mut level: Vec<(Url, Option<Url>)> = vec![(start.clone(), None)];
    let mut depth = 0u32;
    while !level.is_empty() {
        let fetched: Vec<Result<Fetched, CrawlError>> = stream::iter(level)
            .map(|(url, referrer)| fetch(&http, options, url, referrer))
            .buffered(options.concurrency.max(1))
            .collect()
            .await;
        let follow = options.max_depth.is_none_or(|max| depth < max);
        let mut next = Vec::new();
        for outcome in fetched {
            match outcome? {
                Fetched::Skipped(url, reason) => result.skipped.push((url, reason)),
                Fetched::Page(url, links) => {
                    // A redirect may land on a page seen already or outside the scope.
                    if result.pages.contains(&url) || !scope.contains(&url) {
                        continue;
                    }
                    seen.insert(url.to_string());
                    result.pages.push(url.clone());
                    if result.pages.len() > options.max_pages {
                        return Err(CrawlError::TooManyPages {
                            limit: options.max_pages,
                        });
                    }
                    if !follow {
                        continue;
                    }
                    for link in links {
                        if scope.contains(&link) && seen.insert(link.to_string()) {
                            next.push((link, Some(url.clone())));
                        }
                    }
                }
            }
        }
        level = next;
        depth += 1;
    }
    Ok(result)
}

async fn fetch(
    http: &reqwest::Client,
    options: &CrawlOptions,
    url: Url,
    referrer: Option<Url>,
) -> Result<Fetched, CrawlError> {
    let mut request = http.get(url.clone());
    if let Some((user, password)) = &options.basic_auth {
        request = request.basic_auth(user, Some(password));
    }
    let fetch_error = |e: reqwest::Error| {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(inner) = source {
            detail = inner.to_string();
            source = inner.source();
        }
        CrawlError::Fetch {
            url: url.to_string(),
            referrer: referrer.as_ref().map(Url::to_string),
            detail,
        }
    };
    let response = request.send().await.map_err(fetch_error)?;
    let status = response.status();
    let is_start = referrer.is_none();
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 | 403 if options.basic_auth.is_some() => {
                ": the site refused the --http_username/--http_password credentials"
            }
            401 | 403 => ": the page needs credentials (--http_username/--http_password)",
            _ => "",
        };
        if status.as_u16() == 404 && !is_start {
            return Ok(Fetched::Skipped(url, "404 Not Found".into()));
        }
        return Err(CrawlError::Status {
            url: url.to_string(),
            referrer: referrer.as_ref().map(Url::to_string),
            status: status.to_string(),
            hint: hint.to_string(),
        });
    }
    let final_url = {
        let mut u = response.url().clone();
        u.set_fragment(None);
        u
    };
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let is_html = content_type.is_empty()
        || content_type.starts_with("text/html")
        || content_type.starts_with("application/xhtml");
    if !is_html {
        if is_start {
            return Err(CrawlError::StartNotHtml {
                url: url.to_string(),
                content_type,
            });
        }
        return Ok(Fetched::Skipped(
            url,
            format!("not an HTML page ({content_type})"),
        ));
    }
    let body = response.text().await.map_err(fetch_error)?;
    let links = extract_links(&final_url, &body);
    Ok(Fetched::Page(final_url, links))
}

/// The run name of a page: its path and query (`/docs/a?x=1`), so that
/// releases crawled on different hosts line up.
pub fn run_name(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn scope_is_the_start_directory_on_the_same_origin() {
        let scope = Scope::new(&u("http://h:8/docs/index.html"), &[]);
        assert_eq!(scope.prefix(), "/docs/");
        assert!(scope.contains(&u("http://h:8/docs/")));
        assert!(scope.contains(&u("http://h:8/docs/a/b?x=1")));
        assert!(!scope.contains(&u("http://h:8/other")));
        assert!(!scope.contains(&u("http://h:9/docs/a")));
        assert!(!scope.contains(&u("https://h:8/docs/a")));
        assert!(!scope.contains(&u("http://g:8/docs/a")));
    }

    #[test]
    fn ignore_prefixes_are_paths_or_urls() {
        let ignore = vec![
            "/docs/old/".to_string(),
            "http://h/docs/tmp".to_string(),
            "docs/draft".to_string(),
        ];
        let scope = Scope::new(&u("http://h/docs/"), &ignore);
        assert!(!scope.contains(&u("http://h/docs/old/x")));
        assert!(!scope.contains(&u("http://h/docs/tmp-1")));
        assert!(!scope.contains(&u("http://h/docs/draft/y")));
        assert!(scope.contains(&u("http://h/docs/new")));
    }

    #[test]
    fn links_are_resolved_without_fragments() {
        let html = r##"<html><body>
            <a href="a.html#top">a</a> <a href="/root">r</a> <a href="#only-fragment">f</a>
            <a href="mailto:x@y">m</a> <a href="javascript:void(0)">j</a>
            <a href="http://elsewhere.example/x">e</a> <map><area href="b.html"></map>
            </body></html>"##;
        let links = extract_links(&u("http://h/docs/index.html"), html);
        let links: Vec<_> = links.iter().map(Url::as_str).collect();
        assert_eq!(
            links,
            [
                "http://h/docs/a.html",
                "http://h/root",
                "http://h/docs/index.html",
                "http://elsewhere.example/x",
                "http://h/docs/b.html"
            ]
        );
    }

    #[test]
    fn base_href_changes_where_links_point() {
        let html = r#"<head><base href="/v2/"></head><a href="p">p</a>"#;
        let links = extract_links(&u("http://h/docs/"), html);
        assert_eq!(links, [u("http://h/v2/p")]);
    }

    #[test]
    fn run_names_are_path_and_query() {
        assert_eq!(run_name(&u("http://h/a/b?x=1&y=2")), "/a/b?x=1&y=2");
        assert_eq!(run_name(&u("http://h")), "/");
    }
}
