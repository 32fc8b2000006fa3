//! The core of Depicted: the domain model, the release and run state
//! machines, the capture config, the image diff and (with the `capture`
//! feature) real-browser capture and the local YAML runner.
//!
//! Everything here is plain library code: no HTTP, no SQL. The server
//! persists what these types decide; the tools and the client speak the
//! wire types in [`api`].
#![deny(missing_docs)]

pub mod api;
#[cfg(feature = "capture")]
pub mod capture;
#[cfg(feature = "capture")]
pub mod check;
pub mod config;
pub mod diff;
#[cfg(feature = "capture")]
pub mod local;
pub mod model;
pub mod netpolicy;
#[cfg(all(test, feature = "capture"))]
mod proptests;
pub mod release;
pub mod run;

pub use config::{CaptureConfig, ConfigError};
pub use model::{ArtifactId, BuildId, ReleaseId, ReleaseKey, RunId, TaskId};
pub use release::{ReleaseEvent, ReleaseStatus, ReleaseTransitionError};
pub use run::{RunEvent, RunFacts, RunStatus, RunTransitionError};
