//! The `site_diff` crawler: finds the HTML pages of a site under the start
//! URL's path prefix, breadth first, each page once, the way a browser sees
//! them.
//!
//! Links come from each page's static HTML (`<a>`, `<area>`, `<iframe>`,
//! `<frame>`, also inside `<noscript>`, resolved against `<base href>`),
//! from its rendered DOM when a browser is given (links that scripts add,
//! as in a navigation built by JavaScript), and from sitemaps: the ones
//! given and `/sitemap.xml` of the start URL's origin when it exists.
//!
//! A link is followed when it has the start URL's scheme, host and port, its
//! path starts with the start URL's directory (`/docs/` for
//! `http://h/docs/index.html`), no ignore prefix matches it, and it is within
//! the depth limit. URLs are normalized: fragments are dropped, and
//! `/a/index.html`, `/a/` and `/a` are one page (the first one found names
//! it); query strings are kept. A linked page that does not load (an HTTP
//! error, a timeout, a redirect loop) is listed as a broken link and the
//! crawl goes on, unless the crawl is strict; the start page must load.
//! At `max_pages` pages the crawl stops and says how many links it left.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use dpxdt_core::CaptureConfig;
use dpxdt_core::capture::{Browser, Probe};
use futures_util::StreamExt;
use futures_util::stream;
use scraper::{Html, Selector};
use url::Url;

/// Largest page or sitemap body read, in bytes.
const MAX_BODY_BYTES: usize = 50 << 20;
/// Most sitemaps read from one sitemap index.
const MAX_NESTED_SITEMAPS: usize = 100;

/// How to crawl.
#[derive(Debug, Clone)]
pub struct CrawlOptions {
    /// Follow links this many clicks away from the start page (0 = the start
    /// page only); `None` means no limit. Sitemap pages count as one click.
    pub max_depth: Option<u32>,
    /// Links starting with one of these are not followed: absolute URLs
    /// (`http://h/docs/old/`) or paths (`/docs/old/`).
    pub ignore_prefixes: Vec<String>,
    /// HTTP basic auth (user name, password) sent to the site.
    pub basic_auth: Option<(String, String)>,
    /// Stop after this many pages.
    pub max_pages: usize,
    /// Pages fetched at the same time.
    pub concurrency: usize,
    /// Timeout per page.
    pub timeout: Duration,
    /// Sitemaps to read besides `/sitemap.xml` of the start URL's origin
    /// (read when it exists). A sitemap given here must load and parse.
    pub sitemaps: Vec<Url>,
    /// Render each page in this browser and follow the links of its DOM too.
    pub browser: Option<Arc<Browser>>,
    /// The capture config pages are rendered with (cookies, headers, ...).
    pub render_config: CaptureConfig,
    /// Stop at the first broken link instead of listing it.
    pub strict: bool,
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
            sitemaps: Vec::new(),
            browser: None,
            render_config: CaptureConfig::default(),
            strict: false,
        }
    }
}

/// What a crawl found.
#[derive(Debug, Clone, Default)]
pub struct CrawlResult {
    /// The HTML pages, in the order they were found (the start page first).
    pub pages: Vec<Url>,
    /// Links under the prefix that are not HTML pages, with their content type.
    pub skipped: Vec<(Url, String)>,
    /// Links under the prefix that did not load.
    pub broken: Vec<BrokenLink>,
    /// Notes worth a line on stderr (a page that did not render, a
    /// `/sitemap.xml` that is not a sitemap).
    pub warnings: Vec<String>,
    /// Links in scope left unvisited because `max_pages` was reached.
    pub not_visited: usize,
}

/// A linked page that did not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The page.
    pub url: Url,
    /// The page or sitemap that links to it.
    pub referrer: Option<Url>,
    /// What went wrong: `404 Not Found`, a timeout, a redirect loop.
    pub reason: String,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.url)?;
        if let Some(r) = &self.referrer {
            write!(f, " (linked from {r})")?;
        }
        write!(f, ": {}", self.reason)
    }
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
    /// A sitemap that was asked for could not be read.
    #[error("sitemap {url}: {reason}")]
    Sitemap {
        /// The sitemap.
        url: String,
        /// What went wrong.
        reason: String,
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
/// resolved against `<base href>` when there is one, in document order:
/// `<a>` and `<area>` hrefs, `<iframe>` and `<frame>` sources, also inside
/// `<noscript>`.
pub fn extract_links(page_url: &Url, html: &str) -> Vec<Url> {
    let document = Html::parse_document(html);
    let base_selector = Selector::parse("base[href]").expect("a valid selector");
    let base = document
        .select(&base_selector)
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|href| page_url.join(href.trim()).ok())
        .unwrap_or_else(|| page_url.clone());
    let mut links = Vec::new();
    let mut seen = std::collections::HashSet::new();
    collect_links(&document, &base, &mut links, &mut seen);
    // Without scripting, <noscript> holds markup; as parsed here it may be
    // text, so parse its text as a fragment too.
    let noscript = Selector::parse("noscript").expect("a valid selector");
    for element in document.select(&noscript) {
        let inner: String = element.text().collect();
        if inner.contains('<') {
            collect_links(&Html::parse_fragment(&inner), &base, &mut links, &mut seen);
        }
    }
    links
}

/// Appends the links of `document` not in `seen` yet (a set, so a page of
/// many links costs time linear in its size).
fn collect_links(
    document: &Html,
    base: &Url,
    links: &mut Vec<Url>,
    seen: &mut std::collections::HashSet<String>,
) {
    let link_selector =
        Selector::parse("a[href], area[href], iframe[src], frame[src]").expect("a valid selector");
    for element in document.select(&link_selector) {
        let value = element.value();
        let Some(href) = value.attr("href").or_else(|| value.attr("src")) else {
            continue;
        };
        let Ok(mut url) = base.join(href.trim()) else {
            continue;
        };
        if !matches!(url.scheme(), "http" | "https") {
            continue;
        }
        url.set_fragment(None);
        if seen.insert(url.as_str().to_string()) {
            links.push(url);
        }
    }
}

/// The key under which a page is seen once: without fragment, with
/// `index.html` / `index.htm` and a trailing slash removed from the path.
pub fn page_key(url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    let path = url.path();
    let path = path
        .strip_suffix("index.html")
        .or_else(|| path.strip_suffix("index.htm"))
        .unwrap_or(path);
    let path = match path.trim_end_matches('/') {
        "" => "/".to_string(),
        trimmed => trimmed.to_string(),
    };
    url.set_path(&path);
    url.to_string()
}

/// The page URLs a sitemap lists (`<urlset><url><loc>`), and the sitemaps
/// a sitemap index lists (`<sitemapindex><sitemap><loc>`).
pub fn parse_sitemap(xml: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    let root = doc.root_element();
    let (item, is_index) = match root.tag_name().name() {
        "urlset" => ("url", false),
        "sitemapindex" => ("sitemap", true),
        other => {
            return Err(format!(
                "not a sitemap: the root element is <{other}>, not <urlset> or <sitemapindex>"
            ));
        }
    };
    let locs: Vec<String> = root
        .children()
        .filter(|n| n.has_tag_name(item))
        .filter_map(|n| n.children().find(|c| c.has_tag_name("loc")))
        .filter_map(|loc| loc.text())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    Ok(if is_index {
        (Vec::new(), locs)
    } else {
        (locs, Vec::new())
    })
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
    Page(Url, Vec<Url>, Option<String>),
    /// Not an HTML page.
    Skipped(Url, String),
    /// A linked page that did not load.
    Broken(BrokenLink),
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
    let mut seen: HashSet<String> = HashSet::from([page_key(start)]);
    let mut result = CrawlResult::default();
    // Each level holds (url, referrer) pairs at the same depth.
    let mut level: Vec<(Url, Option<Url>)> = vec![(start.clone(), None)];
    let mut from_sitemaps = Vec::new();
    for (url, sitemap) in read_sitemaps(&http, start, options, &mut result.warnings).await? {
        if scope.contains(&url) && seen.insert(page_key(&url)) {
            from_sitemaps.push((url, Some(sitemap)));
        }
    }
    let mut depth = 0u32;
    while !level.is_empty() {
        let room = options.max_pages.saturating_sub(result.pages.len());
        if level.len() > room {
            result.not_visited += level.len() - room;
            level.truncate(room);
        }
        let fetched: Vec<Result<Fetched, CrawlError>> = stream::iter(level)
            .map(|(url, referrer)| fetch(&http, options, url, referrer))
            .buffered(options.concurrency.max(1))
            .collect()
            .await;
        let follow = options.max_depth.is_none_or(|max| depth < max);
        let mut next = Vec::new();
        if depth == 0 && follow {
            next.append(&mut from_sitemaps);
        }
        for outcome in fetched {
            match outcome? {
                Fetched::Skipped(url, reason) => result.skipped.push((url, reason)),
                Fetched::Broken(broken) => {
                    if options.strict {
                        return Err(CrawlError::Fetch {
                            url: broken.url.to_string(),
                            referrer: broken.referrer.as_ref().map(Url::to_string),
                            detail: broken.reason,
                        });
                    }
                    result.broken.push(broken);
                }
                Fetched::Page(url, links, warning) => {
                    result.warnings.extend(warning);
                    // A redirect may land on a page seen already or outside the scope.
                    let key = page_key(&url);
                    if result.pages.iter().any(|p| page_key(p) == key) || !scope.contains(&url) {
                        continue;
                    }
                    seen.insert(key);
                    result.pages.push(url.clone());
                    if !follow {
                        continue;
                    }
                    for link in links {
                        if scope.contains(&link) && seen.insert(page_key(&link)) {
                            next.push((link, Some(url.clone())));
                        }
                    }
                }
            }
        }
        if result.pages.len() >= options.max_pages {
            result.not_visited += next.len();
            break;
        }
        level = next;
        depth += 1;
    }
    Ok(result)
}

/// The pages listed by the given sitemaps and by `/sitemap.xml` of the
/// start's origin, each with the sitemap that lists it. A given sitemap
/// must load and parse; the default one may be missing (a warning when it
/// exists but is not a sitemap).
async fn read_sitemaps(
    http: &reqwest::Client,
    start: &Url,
    options: &CrawlOptions,
    warnings: &mut Vec<String>,
) -> Result<Vec<(Url, Url)>, CrawlError> {
    let mut queue: Vec<(Url, bool)> = options.sitemaps.iter().map(|u| (u.clone(), true)).collect();
    if let Ok(default) = start.join("/sitemap.xml")
        && !options.sitemaps.contains(&default)
    {
        queue.push((default, false));
    }
    let mut pages = Vec::new();
    let mut read = 0usize;
    while let Some((sitemap, required)) = queue.pop() {
        read += 1;
        if read > MAX_NESTED_SITEMAPS + options.sitemaps.len() + 1 {
            warnings.push(format!(
                "read {MAX_NESTED_SITEMAPS} nested sitemaps; left the rest unread"
            ));
            break;
        }
        let failed = |reason: String| CrawlError::Sitemap {
            url: sitemap.to_string(),
            reason,
        };
        let text = match fetch_text(http, options, &sitemap).await {
            Ok(Some(text)) => text,
            Ok(None) if !required => continue,
            Ok(None) => return Err(failed("404 Not Found".into())),
            Err(reason) if required => return Err(failed(reason)),
            Err(reason) => {
                warnings.push(format!("sitemap {sitemap}: {reason}; not used"));
                continue;
            }
        };
        let (locs, nested) = match parse_sitemap(&text) {
            Ok(found) => found,
            Err(reason) if required => return Err(failed(reason)),
            Err(reason) => {
                warnings.push(format!("sitemap {sitemap}: {reason}; not used"));
                continue;
            }
        };
        for loc in locs {
            match sitemap.join(&loc) {
                Ok(mut url) if matches!(url.scheme(), "http" | "https") => {
                    url.set_fragment(None);
                    pages.push((url, sitemap.clone()));
                }
                _ => warnings.push(format!("sitemap {sitemap}: skipped the entry {loc:?}")),
            }
        }
        for loc in nested {
            if let Ok(url) = sitemap.join(&loc) {
                queue.push((url, required));
            }
        }
    }
    Ok(pages)
}

/// The body of `url` as text: `None` on 404, `Err` with a reason on any
/// other failure.
async fn fetch_text(
    http: &reqwest::Client,
    options: &CrawlOptions,
    url: &Url,
) -> Result<Option<String>, String> {
    let mut request = http.get(url.clone());
    if let Some((user, password)) = &options.basic_auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.map_err(|e| describe(&e))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    read_body(response).await.map(Some)
}

/// Reads a response body of at most [`MAX_BODY_BYTES`].
async fn read_body(response: reqwest::Response) -> Result<String, String> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| describe(&e))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("larger than {} MiB", MAX_BODY_BYTES >> 20));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// A reqwest error in a few words: redirect loops and timeouts by name,
/// else the innermost cause.
fn describe(e: &reqwest::Error) -> String {
    if e.is_redirect() {
        return "redirects in a loop (or more than 10 times)".into();
    }
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        detail = inner.to_string();
        source = inner.source();
    }
    detail
}

async fn fetch(
    http: &reqwest::Client,
    options: &CrawlOptions,
    url: Url,
    referrer: Option<Url>,
) -> Result<Fetched, CrawlError> {
    let is_start = referrer.is_none();
    let broken = |reason: String| BrokenLink {
        url: url.clone(),
        referrer: referrer.clone(),
        reason,
    };
    let mut request = http.get(url.clone());
    if let Some((user, password)) = &options.basic_auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) if is_start => {
            return Err(CrawlError::Fetch {
                url: url.to_string(),
                referrer: None,
                detail: describe(&e),
            });
        }
        Err(e) => return Ok(Fetched::Broken(broken(describe(&e)))),
    };
    let status = response.status();
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 | 403 if options.basic_auth.is_some() => {
                ": the site refused the --http_username/--http_password credentials"
            }
            401 | 403 => ": the page needs credentials (--http_username/--http_password)",
            _ => "",
        };
        if is_start || options.strict {
            return Err(CrawlError::Status {
                url: url.to_string(),
                referrer: referrer.as_ref().map(Url::to_string),
                status: status.to_string(),
                hint: hint.to_string(),
            });
        }
        return Ok(Fetched::Broken(broken(format!("{status}{hint}"))));
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
    let body = match read_body(response).await {
        Ok(body) => body,
        Err(reason) if is_start => {
            return Err(CrawlError::Fetch {
                url: url.to_string(),
                referrer: None,
                detail: reason,
            });
        }
        Err(reason) => return Ok(Fetched::Broken(broken(reason))),
    };
    let mut links = extract_links(&final_url, &body);
    let mut warning = None;
    if let Some(browser) = &options.browser {
        let probe = Probe {
            links: true,
            no_screenshot: true,
            ..Probe::default()
        };
        match browser
            .capture_with(final_url.as_str(), &options.render_config, &probe)
            .await
        {
            Ok(rendered) => {
                for link in rendered.links {
                    if let Ok(link) = Url::parse(&link)
                        && !links.contains(&link)
                    {
                        links.push(link);
                    }
                }
            }
            Err(e) => {
                warning = Some(format!(
                    "{final_url} did not render ({e}); only its static links were followed"
                ));
            }
        }
    }
    Ok(Fetched::Page(final_url, links, warning))
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
    fn iframes_and_noscript_links_count_once() {
        let html = r#"<a href="a.html">a</a><iframe src="frame.html"></iframe>
            <noscript><a href="plain.html">no js</a><a href="a.html">a</a></noscript>"#;
        let links = extract_links(&u("http://h/d/"), html);
        let links: Vec<_> = links.iter().map(Url::as_str).collect();
        assert_eq!(
            links,
            [
                "http://h/d/a.html",
                "http://h/d/frame.html",
                "http://h/d/plain.html"
            ]
        );
    }

    #[test]
    fn page_keys_join_index_html_and_trailing_slashes() {
        let key = |s: &str| page_key(&u(s));
        assert_eq!(key("http://h/d/"), key("http://h/d/index.html"));
        assert_eq!(key("http://h/d/"), key("http://h/d"));
        assert_eq!(key("http://h/d/#x"), key("http://h/d/index.htm"));
        assert_eq!(key("http://h/"), key("http://h/index.html"));
        assert_ne!(key("http://h/d/?p=2"), key("http://h/d/"));
        assert_ne!(key("http://h/d/a.html"), key("http://h/d/"));
    }

    #[test]
    fn sitemaps_and_sitemap_indexes_parse() {
        let (pages, nested) = parse_sitemap(
            r#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
            <url><loc> http://h/a </loc><lastmod>2024-01-01</lastmod></url><url><loc>http://h/b</loc></url></urlset>"#,
        )
        .unwrap();
        assert_eq!(
            (pages, nested.len()),
            (vec!["http://h/a".to_string(), "http://h/b".into()], 0)
        );
        let (pages, nested) = parse_sitemap(
            "<sitemapindex><sitemap><loc>http://h/s1.xml</loc></sitemap></sitemapindex>",
        )
        .unwrap();
        assert_eq!(
            (pages.len(), nested),
            (0, vec!["http://h/s1.xml".to_string()])
        );
        assert!(
            parse_sitemap("<html><p>x</html>")
                .unwrap_err()
                .contains("not XML")
        );
        assert!(parse_sitemap("<feed/>").unwrap_err().contains("<feed>"));
    }

    proptest::proptest! {
        /// Any HTML yields absolute http(s) links without fragments; any
        /// text is a sitemap or a clean error; page keys are stable.
        #[test]
        fn links_sitemaps_and_keys_never_panic(
            html in "(<a href=\"|<iframe src=\"|<base href=\"|<noscript>|</noscript>|\">|[a-z/:#?.&=<> ]){0,60}",
            text in ".{0,200}",
        ) {
            let base = u("http://h/docs/");
            for link in extract_links(&base, &html) {
                proptest::prop_assert!(matches!(link.scheme(), "http" | "https"));
                proptest::prop_assert!(link.fragment().is_none());
                let key = page_key(&link);
                proptest::prop_assert_eq!(page_key(&Url::parse(&key).unwrap()), key);
            }
            let _ = parse_sitemap(&text);
            let _ = parse_sitemap(&html);
        }
    }

    #[test]
    fn run_names_are_path_and_query() {
        assert_eq!(run_name(&u("http://h/a/b?x=1&y=2")), "/a/b?x=1&y=2");
        assert_eq!(run_name(&u("http://h")), "/");
    }
}
