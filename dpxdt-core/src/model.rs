//! Identifiers and plain records of the domain: builds, releases, runs, artifacts.
//!
//! Ids are newtypes so a release id can never be passed where a build id is
//! expected. [`ArtifactId`] is validated on construction: anything that holds
//! one holds 40 lowercase hex digits, which makes it safe to use in a path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.trim().parse().map($name)
            }
        }
    };
}

int_id!(
    /// Id of a build: the unit of ownership (API keys and owners are per build).
    BuildId
);
int_id!(
    /// Database id of one release attempt.
    ReleaseId
);
int_id!(
    /// Database id of one run.
    RunId
);
int_id!(
    /// Id of a work-queue task.
    TaskId
);

/// Content address of an artifact: the SHA-1 of its bytes as 40 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct ArtifactId(String);

/// Why a string is not an [`ArtifactId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid artifact id {0:?}: expected 40 hex digits (a SHA-1)")]
pub struct InvalidArtifactId(pub String);

impl ArtifactId {
    /// The id of `bytes`: their SHA-1.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        use sha1::{Digest, Sha1};
        ArtifactId(hex::encode(Sha1::digest(bytes)))
    }

    /// Parses and normalizes (lowercases) a hex SHA-1.
    pub fn parse(s: &str) -> Result<Self, InvalidArtifactId> {
        let s = s.trim();
        if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(ArtifactId(s.to_ascii_lowercase()))
        } else {
            Err(InvalidArtifactId(s.to_string()))
        }
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArtifactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ArtifactId {
    type Err = InvalidArtifactId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ArtifactId::parse(s)
    }
}

impl<'de> Deserialize<'de> for ArtifactId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ArtifactId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The key of a release attempt inside a build: its name and the number the
/// server gave the attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReleaseKey {
    /// The build the release belongs to.
    pub build_id: BuildId,
    /// The release name chosen by the client (e.g. `2026-11-25-r01`).
    pub release_name: String,
    /// The attempt number, 1 for the first attempt of a name.
    pub release_number: i64,
}

/// Upper bound on the length of names (release and run names) accepted from clients.
pub const MAX_NAME_LEN: usize = 1024;

/// Checks a client-supplied name (release or run): non-empty after trimming,
/// at most [`MAX_NAME_LEN`] bytes, no control characters.
pub fn validate_name(what: &str, name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("{what} is longer than {MAX_NAME_LEN} bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{what} must not contain control characters"));
    }
    Ok(())
}

/// Longest branch name, in bytes.
pub const MAX_BRANCH_LEN: usize = 255;

/// Checks a branch name (`field` names it in the error): 1 to 255 bytes,
/// no control characters.
pub fn validate_branch(field: &str, branch: &str) -> Result<(), String> {
    if branch.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if branch.len() > MAX_BRANCH_LEN {
        return Err(format!(
            "{field} is {} bytes, longer than {MAX_BRANCH_LEN}",
            branch.len()
        ));
    }
    if branch.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(())
}

/// Checks a commit id (`field` names it in the error): 7 to 64 hex digits
/// (an abbreviated or full SHA-1 or SHA-256).
pub fn validate_commit_sha(field: &str, sha: &str) -> Result<(), String> {
    if !(7..=64).contains(&sha.len()) || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{field} must be 7 to 64 hex digits, got {:?}",
            sha.chars().take(80).collect::<String>()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_and_commits_are_checked() {
        assert!(validate_branch("branch", "feature/login-页").is_ok());
        assert!(validate_branch("branch", "").is_err());
        assert!(
            validate_branch("branch", "a\nb")
                .unwrap_err()
                .contains("control")
        );
        assert!(
            validate_branch("branch", &"x".repeat(256))
                .unwrap_err()
                .contains("256 bytes")
        );
        assert!(validate_branch("branch", &"x".repeat(255)).is_ok());
        assert!(validate_commit_sha("commit_sha", "abc1234").is_ok());
        assert!(validate_commit_sha("commit_sha", &"f".repeat(64)).is_ok());
        assert!(validate_commit_sha("commit_sha", "abc123").is_err());
        assert!(validate_commit_sha("commit_sha", &"f".repeat(65)).is_err());
        assert!(
            validate_commit_sha("commit_sha", "abcdefg")
                .unwrap_err()
                .contains("hex digits")
        );
    }

    #[test]
    fn artifact_id_of_bytes_is_sha1() {
        // SHA-1 of the empty string and of "abc", well-known test vectors.
        assert_eq!(
            ArtifactId::of_bytes(b"").as_str(),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(
            ArtifactId::of_bytes(b"abc").as_str(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn artifact_id_parse_normalizes_and_refuses() {
        let id = ArtifactId::parse("A9993E364706816ABA3E25717850C26C9CD0D89D").unwrap();
        assert_eq!(id.as_str(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        for bad in [
            "",
            "abc",
            "../../etc/passwd",
            &"g".repeat(40),
            &"a".repeat(41),
        ] {
            assert!(ArtifactId::parse(bad).is_err(), "{bad:?} accepted");
        }
        let err: Result<ArtifactId, _> = serde_json::from_str("\"../x\"");
        assert!(err.is_err());
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("run name", "/foo?bar=1").is_ok());
        assert!(validate_name("run name", "  ").is_err());
        assert!(validate_name("run name", "a\nb").is_err());
        assert!(validate_name("run name", &"x".repeat(MAX_NAME_LEN + 1)).is_err());
    }
}
