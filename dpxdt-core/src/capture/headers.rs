//! Which extra request headers go where: `injectHeaders` by the host each
//! request goes to, basic-auth credentials to the captured page's own host
//! only. Pure, so the rules are tested without a browser; the session
//! applies them by pausing the matching requests (CDP `Fetch`).

use std::collections::BTreeMap;

use crate::config::CaptureConfig;

/// Header name → value.
pub(crate) type Headers = BTreeMap<String, String>;

/// The extra headers of one capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HeaderRules {
    /// The captured page's host (no brackets around IPv6 addresses).
    page_host: String,
    /// `injectHeaders` as configured, `"*"` already folded into the page host.
    by_key: BTreeMap<String, Headers>,
    /// `Authorization: Basic …` for the page's host.
    auth: Option<String>,
}

impl HeaderRules {
    /// The rules for capturing `url` with `config`.
    pub(crate) fn new(url: &str, config: &CaptureConfig) -> HeaderRules {
        let page_host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
            .unwrap_or_default();
        let mut by_key: BTreeMap<String, Headers> = BTreeMap::new();
        for (key, headers) in &config.inject_headers {
            let key = if key == "*" {
                page_host.clone()
            } else {
                key.trim().to_ascii_lowercase()
            };
            by_key.entry(key).or_default().extend(headers.clone());
        }
        let auth = config.http_user_name.as_ref().map(|user| {
            use base64::Engine as _;
            let pair = format!("{user}:{}", config.http_password.as_deref().unwrap_or(""));
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        HeaderRules {
            page_host,
            by_key,
            auth,
        }
    }

    /// Whether any request gets an extra header.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.values().all(BTreeMap::is_empty) && self.auth.is_none()
    }

    /// The extra headers of a request to `url`.
    pub(crate) fn for_url(&self, url: &str) -> Headers {
        let Ok(u) = url::Url::parse(url) else {
            return Headers::new();
        };
        let Some(host) = u.host_str().map(|h| h.trim_matches(['[', ']'])) else {
            return Headers::new();
        };
        let mut out = Headers::new();
        if let Some(h) = self.by_key.get(host) {
            out.extend(h.clone());
        }
        if let Some(port) = u.port_or_known_default()
            && let Some(h) = self.by_key.get(&format!("{host}:{port}"))
        {
            out.extend(h.clone());
        }
        if host == self.page_host
            && let Some(auth) = &self.auth
        {
            out.insert("Authorization".into(), auth.clone());
        }
        out
    }

    /// `Fetch.enable` URL patterns covering every request that may need a
    /// header, so that no other request is paused.
    pub(crate) fn patterns(&self) -> Vec<String> {
        let mut hosts: Vec<&str> = self
            .by_key
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(k, _)| k.as_str())
            .collect();
        if self.auth.is_some() {
            hosts.push(&self.page_host);
        }
        let mut out = Vec::new();
        for key in hosts {
            // A key with a port names one; a bare host any port.
            let (host, port) = match key.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => (h, Some(p)),
                _ => (key, None),
            };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            match port {
                Some(p) => out.push(format!("*://{host}:{p}/*")),
                None => {
                    out.push(format!("*://{host}/*"));
                    out.push(format!("*://{host}:*/*"));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(url: &str, json: &str) -> HeaderRules {
        HeaderRules::new(url, &CaptureConfig::from_json(json).unwrap())
    }

    #[test]
    fn headers_go_only_to_their_host_and_credentials_to_the_page() {
        let r = rules(
            "https://staging.example/app",
            r#"{"injectHeaders": {"staging.example": {"X-Token": "t"},
                                  "cdn.example:8443": {"X-Cdn": "c"},
                                  "*": {"X-Any": "a"}},
                "httpUserName": "u", "httpPassword": "p"}"#,
        );
        let page = r.for_url("https://staging.example/style.css");
        assert_eq!(page["X-Token"], "t");
        assert_eq!(page["X-Any"], "a", "* is the page's own host");
        assert_eq!(page["Authorization"], "Basic dTpw");
        assert_eq!(r.for_url("http://staging.example:8080/x")["X-Token"], "t");
        assert!(
            r.for_url("https://cdn.example/x.js").is_empty(),
            "other port"
        );
        assert_eq!(
            r.for_url("https://cdn.example:8443/x.js"),
            Headers::from([("X-Cdn".to_string(), "c".to_string())])
        );
        assert!(r.for_url("https://tracker.example/p.gif").is_empty());
        assert!(r.for_url("https://staging.example.evil/").is_empty());
        assert!(r.for_url("not a url").is_empty());
        assert_eq!(
            r.patterns(),
            [
                "*://cdn.example:8443/*",
                "*://staging.example/*",
                "*://staging.example:*/*"
            ]
        );
        assert!(!r.is_empty());
        assert!(rules("https://a.example/", "{}").is_empty());
        assert!(rules("https://a.example/", "{}").patterns().is_empty());
    }

    #[test]
    fn ipv6_hosts_are_bracketed_in_patterns() {
        let r = rules("http://[::1]:8000/", r#"{"httpUserName": "u"}"#);
        assert_eq!(r.patterns(), ["*://[::1]/*", "*://[::1]:*/*"]);
        assert!(r.for_url("http://[::1]:9/").contains_key("Authorization"));
    }
}
