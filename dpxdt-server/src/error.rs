//! Server faults: what the server was doing when something beneath it
//! failed, with that failure kept as the source. The API and the UI answer
//! a fault with 500 and log the whole chain.

use std::borrow::Cow;

/// Any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A failure of the server itself (disk, database, a task that panicked).
#[derive(Debug, thiserror::Error)]
#[error("{doing}: {source}")]
pub struct Fault {
    doing: Cow<'static, str>,
    #[source]
    source: BoxError,
}

impl Fault {
    /// `source` failed while the server was `doing` something.
    pub fn new(doing: impl Into<Cow<'static, str>>, source: impl Into<BoxError>) -> Self {
        Fault {
            doing: doing.into(),
            source: source.into(),
        }
    }
}

/// Names what the server was doing when a `Result` failed.
pub trait Doing<T> {
    /// Turns the error into a [`Fault`] while doing `what`.
    fn doing(self, what: &'static str) -> Result<T, Fault>;
    /// As [`Doing::doing`], with a description made only on failure.
    fn doing_with(self, what: impl FnOnce() -> String) -> Result<T, Fault>;
}

impl<T, E: Into<BoxError>> Doing<T> for Result<T, E> {
    fn doing(self, what: &'static str) -> Result<T, Fault> {
        self.map_err(|e| Fault::new(what, e))
    }

    fn doing_with(self, what: impl FnOnce() -> String) -> Result<T, Fault> {
        self.map_err(|e| Fault::new(what(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn a_fault_says_what_was_being_done_and_keeps_the_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "read-only disk");
        let fault = Err::<(), _>(io)
            .doing_with(|| format!("writing {}", "a/b"))
            .unwrap_err();
        assert_eq!(fault.to_string(), "writing a/b: read-only disk");
        let cause = fault.source().expect("the cause is kept");
        assert!(cause.downcast_ref::<std::io::Error>().is_some());
    }
}
