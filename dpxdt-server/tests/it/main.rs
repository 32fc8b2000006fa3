//! The server's integration tests, one binary (one link on a two-core
//! machine): the API over real HTTP, the real binary with killed workers and
//! a killed server, capture in Chromium, notifications, the review UI over
//! HTTP and in Chromium, TLS to PostgreSQL, and the API's description. Each
//! module says what it covers.

#[macro_use]
mod common;
mod api;
mod binary;
mod capture_flow;
mod notify_mail;
mod openapi;
mod pg_tls;
mod scale;
mod ui_browser;
mod ui_web;
