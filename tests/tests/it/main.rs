//! Cross-crate tests, one binary: capture fidelity, isolation and network
//! policy in real Chromium, the `cargo test` check API, local mode through
//! the real binary, and the repository's tidiness rules.

mod capture_browser;
mod capture_check;
mod local_cli;
mod tidy;
