use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong in the core. Each variant is one kind of failure a caller may treat
/// differently; the `Display` text is one line that says what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The name, payload or sealed content is not well formed.
    Malformed(String),
    /// The payload announces a format version this build cannot read.
    UnsupportedVersion(String),
    /// No readable key carries the key id the payload names (the viewer lacks the key, or it was retired).
    UnknownKey { group: String, key_id: String },
    /// The MAC did not verify: another key, or the name was altered or moved to another job, owner, group, cluster or run.
    BadSeal,
    /// The name is in the legacy format and legacy decoding was not enabled.
    LegacyDisabled,
    /// A value given to seal, or found in a message, breaks a rule of the format.
    Invalid(String),
    /// The sealed name would not fit Slurm's job-name limit.
    TooLarge { size: usize, limit: usize, hint: String },
    /// A key file or key directory is missing, unsafe or unreadable.
    KeyFile { path: PathBuf, reason: String },
    /// A scheduler command failed, timed out or wrote to stderr.
    Command { program: String, reason: String },
    /// An operating-system call failed (random numbers, files).
    Io(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A stable, short name for the variant (used to pick the Ruby exception class and the exit code).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "malformed",
            Error::UnsupportedVersion(_) => "unsupported_version",
            Error::UnknownKey { .. } => "unknown_key",
            Error::BadSeal => "bad_seal",
            Error::LegacyDisabled => "legacy_disabled",
            Error::Invalid(_) => "invalid",
            Error::TooLarge { .. } => "too_large",
            Error::KeyFile { .. } => "key_file",
            Error::Command { .. } => "command",
            Error::Io(_) => "io",
        }
    }

    pub(crate) fn key_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::KeyFile { path: path.into(), reason: reason.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(why) => write!(f, "malformed share: {why}"),
            Error::UnsupportedVersion(v) => write!(
                f,
                "share format version {v:?} is not supported by multitenant {}: upgrade the gem on this host",
                env!("CARGO_PKG_VERSION")
            ),
            Error::UnknownKey { group, key_id } => write!(
                f,
                "no key with id {key_id} for group {group} is readable here (not a member, or the key was retired)"
            ),
            Error::BadSeal => write!(
                f,
                "seal does not verify: wrong key, or the name was altered or moved to another job, owner, group, cluster or run (a requeue)"
            ),
            Error::LegacyDisabled => write!(
                f,
                "name is in the legacy (insecure, unauthenticated) format and legacy decoding is not enabled"
            ),
            Error::Invalid(why) => write!(f, "{why}"),
            Error::TooLarge { size, limit, hint } => write!(
                f,
                "sealed name would be {size} characters, over Slurm's {limit}-character job-name limit: trim about {} characters ({hint})",
                size - limit
            ),
            Error::KeyFile { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::Command { program, reason } => write!(f, "{program}: {reason}"),
            Error::Io(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for Error {}
