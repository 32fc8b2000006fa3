//! The Depicted server: HTTP API, SQLite storage, durable work queue and
//! the capture and diff workers.
#![deny(missing_docs)]

pub mod queue;
pub mod storage;
