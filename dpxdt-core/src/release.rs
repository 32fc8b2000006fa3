//! The release state machine.
//!
//! ```text
//! receiving --runs_done(nothing outstanding)--> reviewing
//! receiving --runs_done(work outstanding)-----> processing --all runs finished--> reviewing
//! reviewing --good--> good      reviewing --bad--> bad
//! good/bad  --reviewing--> reviewing           good <--> bad
//! receiving/processing --superseded by a new attempt, or marked bad--> bad
//! ```
//!
//! This module decides every transition; storage only persists the result
//! (compare-and-set on the old status).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a release attempt is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// Created; runs are being requested or reported.
    Receiving,
    /// The client called `runs_done`; captures or diffs are still outstanding.
    Processing,
    /// Every run is finished; waiting for a person's verdict.
    Reviewing,
    /// Marked good by a person; the newest good release is the baseline.
    Good,
    /// Marked bad by a person, or superseded by a newer attempt while unfinished.
    Bad,
}

/// Something that happens to a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseEvent {
    /// The client says every run has been requested or reported.
    RunsDone {
        /// Whether captures or diffs are still outstanding at that moment.
        outstanding: bool,
    },
    /// The last outstanding capture or diff finished.
    RunsFinished,
    /// A person marked the release good.
    MarkGood,
    /// A person marked the release bad.
    MarkBad,
    /// A person moved a decided release back to reviewing.
    MarkReviewing,
    /// A newer attempt of the same release name was created while this one was unfinished.
    Superseded,
}

/// A refused transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("release is {from}: cannot apply {event}")]
pub struct ReleaseTransitionError {
    /// The state the release was in.
    pub from: ReleaseStatus,
    /// What was refused, in words.
    pub event: &'static str,
}

impl ReleaseStatus {
    /// Every state, for exhaustive tests and UI listings.
    pub const ALL: [ReleaseStatus; 5] = [
        ReleaseStatus::Receiving,
        ReleaseStatus::Processing,
        ReleaseStatus::Reviewing,
        ReleaseStatus::Good,
        ReleaseStatus::Bad,
    ];

    /// The wire and database name (`receiving`, `processing`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Receiving => "receiving",
            ReleaseStatus::Processing => "processing",
            ReleaseStatus::Reviewing => "reviewing",
            ReleaseStatus::Good => "good",
            ReleaseStatus::Bad => "bad",
        }
    }

    /// Applies `event`, returning the new state or the refusal.
    pub fn apply(self, event: ReleaseEvent) -> Result<ReleaseStatus, ReleaseTransitionError> {
        use ReleaseEvent as E;
        use ReleaseStatus as S;
        let next = match (self, event) {
            (S::Receiving, E::RunsDone { outstanding: true }) => S::Processing,
            (S::Receiving, E::RunsDone { outstanding: false }) => S::Reviewing,
            (S::Processing, E::RunsFinished) => S::Reviewing,
            (S::Reviewing | S::Bad, E::MarkGood) => S::Good,
            (S::Receiving | S::Processing | S::Reviewing | S::Good, E::MarkBad) => S::Bad,
            (S::Good | S::Bad, E::MarkReviewing) => S::Reviewing,
            (S::Receiving | S::Processing, E::Superseded) => S::Bad,
            (from, event) => {
                return Err(ReleaseTransitionError {
                    from,
                    event: event.describe(),
                });
            }
        };
        Ok(next)
    }

    /// Whether runs may still be requested or reported (by clients or workers).
    pub fn accepts_runs(self) -> bool {
        matches!(self, ReleaseStatus::Receiving | ReleaseStatus::Processing)
    }

    /// Whether a person has decided this release.
    pub fn is_final(self) -> bool {
        matches!(self, ReleaseStatus::Good | ReleaseStatus::Bad)
    }
}

impl ReleaseEvent {
    fn describe(self) -> &'static str {
        match self {
            ReleaseEvent::RunsDone { .. } => "runs_done (it is no longer receiving runs)",
            ReleaseEvent::RunsFinished => "runs finished (it is not processing)",
            ReleaseEvent::MarkGood => "mark good (only a reviewed release can be good)",
            ReleaseEvent::MarkBad => "mark bad (it is bad already)",
            ReleaseEvent::MarkReviewing => "back to reviewing (it is not good or bad)",
            ReleaseEvent::Superseded => "supersede (it is finished already)",
        }
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no release state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown release status {0:?}")]
pub struct UnknownReleaseStatus(pub String);

impl FromStr for ReleaseStatus {
    type Err = UnknownReleaseStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReleaseStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownReleaseStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReleaseEvent as E;
    use ReleaseStatus as S;

    const EVENTS: [ReleaseEvent; 7] = [
        E::RunsDone { outstanding: true },
        E::RunsDone { outstanding: false },
        E::RunsFinished,
        E::MarkGood,
        E::MarkBad,
        E::MarkReviewing,
        E::Superseded,
    ];

    /// The full table: every (state, event) pair and its expected outcome.
    /// `None` means refused.
    fn expected(from: S, event: E) -> Option<S> {
        match (from, event) {
            (S::Receiving, E::RunsDone { outstanding: true }) => Some(S::Processing),
            (S::Receiving, E::RunsDone { outstanding: false }) => Some(S::Reviewing),
            (S::Receiving, E::MarkBad) => Some(S::Bad),
            (S::Receiving, E::Superseded) => Some(S::Bad),
            (S::Processing, E::RunsFinished) => Some(S::Reviewing),
            (S::Processing, E::MarkBad) => Some(S::Bad),
            (S::Processing, E::Superseded) => Some(S::Bad),
            (S::Reviewing, E::MarkGood) => Some(S::Good),
            (S::Reviewing, E::MarkBad) => Some(S::Bad),
            (S::Good, E::MarkBad) => Some(S::Bad),
            (S::Good, E::MarkReviewing) => Some(S::Reviewing),
            (S::Bad, E::MarkGood) => Some(S::Good),
            (S::Bad, E::MarkReviewing) => Some(S::Reviewing),
            _ => None,
        }
    }

    #[test]
    fn every_state_event_pair_matches_the_table() {
        let mut allowed = 0;
        for from in S::ALL {
            for event in EVENTS {
                let got = from.apply(event);
                match expected(from, event) {
                    Some(to) => {
                        assert_eq!(got, Ok(to), "{from} + {event:?}");
                        allowed += 1;
                    }
                    None => {
                        let err = got.expect_err(&format!("{from} + {event:?} must be refused"));
                        assert_eq!(err.from, from);
                        assert!(err.to_string().starts_with(&format!("release is {from}")));
                    }
                }
            }
        }
        assert_eq!(allowed, 13);
    }

    #[test]
    fn a_good_release_cannot_be_marked_good_again_or_get_runs() {
        assert!(S::Good.apply(E::MarkGood).is_err());
        assert!(!S::Good.accepts_runs());
        assert!(!S::Reviewing.accepts_runs());
        assert!(S::Processing.accepts_runs());
    }

    #[test]
    fn status_round_trips_through_strings_and_json() {
        for st in S::ALL {
            assert_eq!(st.as_str().parse::<S>().unwrap(), st);
            assert_eq!(serde_json::to_string(&st).unwrap(), format!("\"{st}\""));
        }
        assert!("done".parse::<S>().is_err());
    }
}
