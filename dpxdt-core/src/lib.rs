//! The core of Depicted: the domain model, the release and run state
//! machines, the capture config, the image diff and (with the `capture`
//! feature, off by default) real-browser capture and the `cargo test`
//! API ([`check`]).
//!
//! Everything here is plain library code: no HTTP, no SQL. The server
//! persists what these types decide; the tools and the client speak the
//! wire types in [`api`].
#![deny(missing_docs)]

pub mod api;
pub mod atomic;
#[cfg(feature = "capture")]
pub mod capture;
#[cfg(feature = "capture")]
pub mod check;
pub mod config;
pub mod diff;
pub mod model;
pub mod netpolicy;
#[cfg(test)]
mod proptests;
pub mod release;
pub mod run;

pub use config::{CaptureConfig, ConfigError};
pub use model::{ArtifactId, BuildId, ReleaseId, ReleaseKey, RunId, TaskId};
pub use release::{ReleaseEvent, ReleaseStatus, ReleaseTransitionError};
pub use run::{RunEvent, RunFacts, RunStatus, RunTransitionError};
