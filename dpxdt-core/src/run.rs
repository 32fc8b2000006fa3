//! The run state machine.
//!
//! A run's state follows from the data it has (see [`RunFacts::status`]): data
//! arrives in pieces through `report_run`, captures and diffs, and each arrival
//! is a [`RunEvent::Report`]. Once a diff verdict exists the run is settled:
//! only a person can move it further, by approving a found diff or withdrawing
//! that approval.
//!
//! ```text
//! data_pending --image, no reference expected--> no_diff_needed
//! data_pending --image + reference-------------> needs_diff --diff--> diff_found | diff_not_found
//! (any unsettled) --capture or diff failed-----> failed
//! diff_found --approve--> diff_approved --reject--> diff_found
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a run is in its life. The wire names are the original's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Requested; nothing captured yet (or the reference is still being captured).
    DataPending,
    /// Image and reference are both present; a diff is queued.
    NeedsDiff,
    /// The diff found a difference; a person must look.
    DiffFound,
    /// The diff found no difference.
    DiffNotFound,
    /// There is an image but no reference to compare with (e.g. the first release).
    NoDiffNeeded,
    /// The capture or the diff failed after its attempts.
    Failed,
    /// A person approved the found difference.
    DiffApproved,
}

/// What is known about a run's data after an update has been merged in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RunFacts {
    /// The new screenshot is present.
    pub image: bool,
    /// The reference screenshot is present.
    pub ref_image: bool,
    /// A reference exists or is on its way (ref_url/ref_config given, or a baseline run was found).
    pub ref_expected: bool,
    /// A diff result has been reported (a distortion or a diff log).
    pub diff_done: bool,
    /// A diff image is present, i.e. a difference was found.
    pub diff_image: bool,
    /// The capture failed for good.
    pub run_failed: bool,
    /// The diff failed for good.
    pub diff_failed: bool,
}

/// Something that happens to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunEvent {
    /// New data was merged into the run; the facts describe the run afterwards.
    Report(RunFacts),
    /// A person approved the found difference.
    Approve,
    /// A person withdrew an approval.
    Reject,
}

/// A refused transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run is {from}: cannot {event}")]
pub struct RunTransitionError {
    /// The state the run was in.
    pub from: RunStatus,
    /// What was refused, in words.
    pub event: &'static str,
}

/// A run's stored results, as far as its state depends on them: the
/// `report_run` fields merged so far. [`RunFacts::of`] decides what they
/// mean, so every store reads them the same way.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunResults<'a> {
    /// The new screenshot's artifact id.
    pub image: Option<&'a str>,
    /// The reference screenshot's artifact id.
    pub ref_image: Option<&'a str>,
    /// Whether a reference was asked for (a `ref_url`, or a baseline found).
    pub ref_expected: bool,
    /// The distortion the diff reported.
    pub distortion: Option<f64>,
    /// The diff's log artifact id.
    pub diff_log: Option<&'a str>,
    /// The diff image's artifact id (present only when images differ).
    pub diff_image: Option<&'a str>,
    /// Why the capture failed.
    pub run_failed: Option<&'a str>,
    /// Why the diff failed.
    pub diff_failed: Option<&'a str>,
}

impl RunFacts {
    /// What a run's results amount to. The diff is done once it reported
    /// anything (a distortion, a log or an image: clients of the original
    /// API may send any one of them); a reference is expected once asked
    /// for or present; a failure counts only with a reason.
    pub fn of(r: &RunResults<'_>) -> RunFacts {
        let failed = |reason: Option<&str>| reason.is_some_and(|s| !s.is_empty());
        RunFacts {
            image: r.image.is_some(),
            ref_image: r.ref_image.is_some(),
            ref_expected: r.ref_expected || r.ref_image.is_some(),
            diff_done: r.distortion.is_some() || r.diff_log.is_some() || r.diff_image.is_some(),
            diff_image: r.diff_image.is_some(),
            run_failed: failed(r.run_failed),
            diff_failed: failed(r.diff_failed),
        }
    }

    /// The state these facts put a run in.
    pub fn status(&self) -> RunStatus {
        if self.run_failed || self.diff_failed {
            RunStatus::Failed
        } else if self.image && self.diff_image {
            RunStatus::DiffFound
        } else if self.image && self.ref_image && self.diff_done {
            RunStatus::DiffNotFound
        } else if self.image && self.ref_image {
            RunStatus::NeedsDiff
        } else if self.image && !self.ref_expected {
            RunStatus::NoDiffNeeded
        } else {
            RunStatus::DataPending
        }
    }
}

impl RunStatus {
    /// Every state, for exhaustive tests and UI listings.
    pub const ALL: [RunStatus; 7] = [
        RunStatus::DataPending,
        RunStatus::NeedsDiff,
        RunStatus::DiffFound,
        RunStatus::DiffNotFound,
        RunStatus::NoDiffNeeded,
        RunStatus::Failed,
        RunStatus::DiffApproved,
    ];

    /// The wire and database name (`data_pending`, `needs_diff`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::DataPending => "data_pending",
            RunStatus::NeedsDiff => "needs_diff",
            RunStatus::DiffFound => "diff_found",
            RunStatus::DiffNotFound => "diff_not_found",
            RunStatus::NoDiffNeeded => "no_diff_needed",
            RunStatus::Failed => "failed",
            RunStatus::DiffApproved => "diff_approved",
        }
    }

    /// Applies `event`, returning the new state or the refusal.
    pub fn apply(self, event: RunEvent) -> Result<RunStatus, RunTransitionError> {
        use RunStatus as S;
        match (self, event) {
            (S::DataPending | S::NeedsDiff | S::NoDiffNeeded | S::Failed, RunEvent::Report(f)) => {
                Ok(f.status())
            }
            (S::DiffFound, RunEvent::Approve) => Ok(S::DiffApproved),
            (S::DiffApproved, RunEvent::Reject) => Ok(S::DiffFound),
            (from, RunEvent::Report(_)) => Err(RunTransitionError {
                from,
                event: "accept new data (its diff verdict is settled)",
            }),
            (from, RunEvent::Approve) => Err(RunTransitionError {
                from,
                event: "approve (only a found diff can be approved)",
            }),
            (from, RunEvent::Reject) => Err(RunTransitionError {
                from,
                event: "reject (only an approved diff can be rejected)",
            }),
        }
    }

    /// Whether the run still waits for a capture or a diff. A release in
    /// `processing` moves to `reviewing` when none of its runs is outstanding.
    pub fn is_outstanding(self) -> bool {
        matches!(self, RunStatus::DataPending | RunStatus::NeedsDiff)
    }

    /// Whether a person should look at this run.
    pub fn needs_review(self) -> bool {
        self == RunStatus::DiffFound
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no run state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown run status {0:?}")]
pub struct UnknownRunStatus(pub String);

impl FromStr for RunStatus {
    type Err = UnknownRunStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownRunStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunStatus as S;

    fn facts(bits: u8) -> RunFacts {
        RunFacts {
            image: bits & 1 != 0,
            ref_image: bits & 2 != 0,
            ref_expected: bits & 4 != 0,
            diff_done: bits & 8 != 0,
            diff_image: bits & 16 != 0,
            run_failed: bits & 32 != 0,
            diff_failed: bits & 64 != 0,
        }
    }

    #[test]
    fn status_from_facts_follows_the_original_rules() {
        let f = RunFacts::default;
        assert_eq!(f().status(), S::DataPending);
        // First release: an image and no reference on its way.
        assert_eq!(RunFacts { image: true, ..f() }.status(), S::NoDiffNeeded);
        // Image captured, reference still being captured.
        let waiting = RunFacts {
            image: true,
            ref_expected: true,
            ..f()
        };
        assert_eq!(waiting.status(), S::DataPending);
        let both = RunFacts {
            ref_image: true,
            ..waiting
        };
        assert_eq!(both.status(), S::NeedsDiff);
        assert_eq!(
            RunFacts {
                diff_done: true,
                ..both
            }
            .status(),
            S::DiffNotFound
        );
        let found = RunFacts {
            diff_done: true,
            diff_image: true,
            ..both
        };
        assert_eq!(found.status(), S::DiffFound);
        assert_eq!(
            RunFacts {
                run_failed: true,
                ..both
            }
            .status(),
            S::Failed
        );
        assert_eq!(
            RunFacts {
                diff_failed: true,
                ..found
            }
            .status(),
            S::Failed
        );
    }

    #[test]
    fn reports_are_accepted_until_the_verdict_is_settled() {
        for from in S::ALL {
            let unsettled = matches!(
                from,
                S::DataPending | S::NeedsDiff | S::NoDiffNeeded | S::Failed
            );
            for bits in 0..128u8 {
                let f = facts(bits);
                let got = from.apply(RunEvent::Report(f));
                if unsettled {
                    assert_eq!(got, Ok(f.status()), "{from} + {f:?}");
                } else {
                    let err = got.unwrap_err();
                    assert_eq!(err.from, from);
                    assert!(err.to_string().contains("settled"));
                }
            }
        }
    }

    #[test]
    fn results_mean_the_same_facts_whatever_stores_them() {
        let none = RunResults::default();
        assert_eq!(RunFacts::of(&none), RunFacts::default());
        let image = RunResults {
            image: Some("a"),
            ..none
        };
        assert_eq!(RunFacts::of(&image).status(), RunStatus::NoDiffNeeded);
        let with_ref = RunResults {
            ref_image: Some("b"),
            ..image
        };
        assert!(
            RunFacts::of(&with_ref).ref_expected,
            "a reference present is expected"
        );
        assert_eq!(RunFacts::of(&with_ref).status(), RunStatus::NeedsDiff);
        // Any one of the diff's results means the diff is done.
        for done in [
            RunResults {
                distortion: Some(0.0),
                ..with_ref
            },
            RunResults {
                diff_log: Some("c"),
                ..with_ref
            },
        ] {
            assert_eq!(RunFacts::of(&done).status(), RunStatus::DiffNotFound);
        }
        let found = RunResults {
            diff_image: Some("d"),
            ..with_ref
        };
        assert_eq!(RunFacts::of(&found).status(), RunStatus::DiffFound);
        // An empty reason is no failure.
        let empty = RunResults {
            run_failed: Some(""),
            diff_failed: Some(""),
            ..with_ref
        };
        assert_eq!(RunFacts::of(&empty).status(), RunStatus::NeedsDiff);
        let failed = RunResults {
            diff_failed: Some("corrupt"),
            ..with_ref
        };
        assert_eq!(RunFacts::of(&failed).status(), RunStatus::Failed);
    }

    #[test]
    fn approve_and_reject_table() {
        for from in S::ALL {
            match from.apply(RunEvent::Approve) {
                Ok(to) => assert_eq!((from, to), (S::DiffFound, S::DiffApproved)),
                Err(e) => {
                    assert_ne!(from, S::DiffFound);
                    assert!(e.to_string().contains("approve"));
                }
            }
            match from.apply(RunEvent::Reject) {
                Ok(to) => assert_eq!((from, to), (S::DiffApproved, S::DiffFound)),
                Err(e) => {
                    assert_ne!(from, S::DiffApproved);
                    assert!(e.to_string().contains("reject"));
                }
            }
        }
    }

    #[test]
    fn outstanding_and_review_flags() {
        let outstanding: Vec<_> = S::ALL.into_iter().filter(|s| s.is_outstanding()).collect();
        assert_eq!(outstanding, [S::DataPending, S::NeedsDiff]);
        let review: Vec<_> = S::ALL.into_iter().filter(|s| s.needs_review()).collect();
        assert_eq!(review, [S::DiffFound]);
    }

    #[test]
    fn status_round_trips() {
        for st in S::ALL {
            assert_eq!(st.as_str().parse::<S>().unwrap(), st);
            assert_eq!(serde_json::to_string(&st).unwrap(), format!("\"{st}\""));
        }
        assert!("approved".parse::<S>().is_err());
    }
}
