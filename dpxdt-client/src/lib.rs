//! A typed async client for the Depicted HTTP API and its work queue.
//!
//! Every endpoint of the server is one method on [`Client`]; the request and
//! answer types are the wire types of [`dpxdt_core::api`], so client and
//! server cannot drift apart. Requests are form-encoded POSTs (multipart for
//! uploads) with the original field names, authenticated with an API key
//! over HTTP Basic.
//!
//! Failures are [`ClientError`]s that carry the server's own `error`
//! message and HTTP status. Connection errors, timeouts and 5xx answers are
//! retried with exponential backoff; 4xx answers never are.
//!
//! # Example: upload a screenshot and report it as a run
//!
//! ```no_run
//! use dpxdt_client::Client;
//! use dpxdt_core::api::ReportRunRequest;
//! use dpxdt_core::{BuildId, ReleaseKey};
//!
//! # async fn demo() -> Result<(), dpxdt_client::ClientError> {
//! let client = Client::builder("http://127.0.0.1:5000/api")
//!     .api_key("key-id", "key-secret")
//!     .build()?;
//! let build = BuildId(1);
//! let release = client
//!     .create_release(build, "nightly", "https://ci.example.com/job/42")
//!     .await?;
//! let key = ReleaseKey {
//!     build_id: build,
//!     release_name: release.release_name,
//!     release_number: release.release_number,
//! };
//! let image = client.upload_file(build, "home.png".as_ref()).await?;
//! // The baseline: the run of the same name in the newest good release.
//! let baseline = client.find_run(build, "home").await?;
//! client
//!     .report_run(&ReportRunRequest {
//!         build_id: build,
//!         release_name: key.release_name.clone(),
//!         release_number: key.release_number,
//!         run_name: "home".into(),
//!         image: Some(image.sha1sum),
//!         ref_image: baseline.and_then(|b| b.image),
//!         ..Default::default()
//!     })
//!     .await?;
//! let done = client.runs_done(&key).await?;
//! println!("review at {}", done.results_url);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod admin;
mod artifacts;
mod client;
mod error;
mod queue;
mod releases;

pub use client::{
    Client, ClientBuilder, DEFAULT_BACKOFF, DEFAULT_RETRIES, DEFAULT_TIMEOUT, Repeat,
};
pub use error::ClientError;
