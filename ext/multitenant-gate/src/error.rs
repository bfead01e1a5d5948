use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the gate could not start. Each `Display` text is one line that says what to do next; none
/// holds the key.
#[derive(Debug)]
#[non_exhaustive]
pub enum GateError {
    /// The environment variable that should hold the key is unset or empty.
    KeyMissing { var: String },
    /// The key is not at least 32 and at most 512 characters of `[A-Za-z0-9_-]`; `from` names where it came from.
    KeyInvalid { from: String, reason: String },
    /// The key file cannot be read, or is not safe: not a regular file, not owned by this user, or open to group or other.
    KeyFile { path: PathBuf, reason: String },
    /// The upstream is not `HOST:PORT` or `unix:/PATH`.
    Upstream(String),
    /// The listen address cannot be bound (in use, not an address of this host, a privileged port).
    Bind { addr: SocketAddr, source: io::Error },
    /// The async runtime or the signal handlers could not be set up.
    Runtime(io::Error),
}

impl fmt::Display for GateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateError::KeyMissing { var } => write!(
                f,
                "${var}: not set: put the share's key in it (e.g. {var}=$(openssl rand -hex 16)) or give --key-file"
            ),
            GateError::KeyInvalid { from, reason } => write!(f, "{from}: {reason}"),
            GateError::KeyFile { path, reason } => write!(f, "{}: {reason}", path.display()),
            GateError::Upstream(why) => write!(f, "{why}"),
            GateError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            GateError::Runtime(e) => write!(f, "cannot start the gate's runtime: {e}"),
        }
    }
}

impl std::error::Error for GateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GateError::Bind { source, .. } | GateError::Runtime(source) => Some(source),
            _ => None,
        }
    }
}
