use std::fmt;
use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use crate::GateError;

/// The share's secret: what a client presents (Bearer token, Basic password, login form) to pass the
/// gate. At least [`Key::MIN_LEN`] and at most [`Key::MAX_LEN`] characters of `[A-Za-z0-9_-]` (what
/// `openssl rand -hex 16` prints qualifies). `Debug` never shows it.
#[derive(Clone)]
pub struct Key(String);

impl Key {
    /// Fewest characters a key may have: 32 hex characters are 128 bits.
    pub const MIN_LEN: usize = 32;
    /// Most characters a key may have.
    pub const MAX_LEN: usize = 512;

    /// Checks `text` as it is (no trimming). `from` names its source in the error, e.g. `$VAR` or a
    /// path; the error never contains the text.
    pub fn parse(text: &str, from: &str) -> Result<Key, GateError> {
        let invalid = |reason: String| GateError::KeyInvalid { from: from.to_string(), reason };
        if !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(invalid(format!(
                "the key holds a character outside A-Z a-z 0-9 _ -: use at least {} of those (openssl rand -hex 16)",
                Key::MIN_LEN
            )));
        }
        if text.len() < Key::MIN_LEN || text.len() > Key::MAX_LEN {
            return Err(invalid(format!(
                "the key has {} characters, needs {} to {} (openssl rand -hex 16 makes 32)",
                text.len(),
                Key::MIN_LEN,
                Key::MAX_LEN
            )));
        }
        Ok(Key(text.to_string()))
    }

    /// Reads the key from the environment variable `var`. Does not remove it: a program should do
    /// that itself (`std::env::remove_var`) before it starts threads.
    pub fn from_env(var: &str) -> Result<Key, GateError> {
        match std::env::var_os(var) {
            Some(v) if !v.is_empty() => Key::parse(v.to_str().unwrap_or("\u{fffd}"), &format!("${var}")),
            _ => Err(GateError::KeyMissing { var: var.to_string() }),
        }
    }

    /// Reads the key from a regular file owned by the effective user with no permission bits for group
    /// or other (0600 or 0400); trailing whitespace (the newline `openssl rand -hex 16 > file` writes)
    /// is dropped. Owner and mode are checked on the opened descriptor.
    pub fn from_file(path: &Path) -> Result<Key, GateError> {
        let refuse = |reason: String| GateError::KeyFile { path: path.to_path_buf(), reason };
        // Checked before opening, so that a FIFO or device is never opened (it could block or have effects).
        let before = std::fs::metadata(path).map_err(|e| refuse(format!("cannot read the key file: {e}")))?;
        if !before.is_file() {
            return Err(refuse("is not a regular file".into()));
        }
        let file = File::open(path).map_err(|e| refuse(format!("cannot read the key file: {e}")))?;
        let meta = file.metadata().map_err(|e| refuse(format!("cannot read the key file: {e}")))?;
        let me = nix::unistd::geteuid().as_raw();
        if !meta.is_file() {
            return Err(refuse("is not a regular file".into()));
        }
        if meta.uid() != me {
            return Err(refuse(format!(
                "is owned by uid {}, not by you (uid {me}): the key file must be yours",
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(refuse(format!(
                "has mode {:04o}: group and other must have no access to a key file (chmod 600 {})",
                meta.mode() & 0o7777,
                path.display()
            )));
        }
        let mut text = String::new();
        file.take(Key::MAX_LEN as u64 + 64)
            .read_to_string(&mut text)
            .map_err(|e| refuse(format!("cannot read the key file: {e}")))?;
        Key::parse(text.trim_end(), &path.display().to_string())
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}
