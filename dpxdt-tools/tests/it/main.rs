//! The tools' integration tests, one binary: the client against the real
//! server, the crawler, `dpxdt diff` and `dpxdt accept` through the real
//! binary, TLS, the four API tools end to end, and modes through `dpxdt`.

mod client_api;
mod crawl;
mod diff_cli;
mod modes;
mod support;
mod tls;
mod tools_e2e;
