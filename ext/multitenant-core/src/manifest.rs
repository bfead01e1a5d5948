//! The manifest, `<dataroot>/multitenant/cards.json`: every card file this gem wrote for the user,
//! and the dismissals it remembers. Only files it lists are ever changed or removed. It is read and
//! written under one lock per user (`multitenant/.lock`).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::dataroot::DataRoot;
use crate::error::{Error, Result};

/// The manifest's directory, relative to the data root.
pub(crate) const DIR: &str = "multitenant";
const FILE: &str = "cards.json";
const LOCK: &str = ".lock";
/// A manifest of thousands of cards is well under this; a bigger file is not one we wrote.
const MAX_MANIFEST: u64 = 8 * 1024 * 1024;

/// One version of one file: device, inode, size, modification and change times (s, ns). A file
/// rewritten, replaced, truncated or touched has another stamp (the change time cannot be set back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp([u64; 7]);

impl Stamp {
    pub(crate) fn new(fields: [u64; 7]) -> Stamp {
        Stamp(fields)
    }

    /// Whether the file was empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.0[2] == 0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub job_id: String,
    #[serde(default)]
    pub group: String,
    pub cluster: String,
    pub owner: String,
    pub db: PathBuf,
    pub output: PathBuf,
    pub digest: String,
    pub created_at: u64,
    #[serde(default)]
    pub dismissed: bool,
    /// Recorded before the card's files are written, cleared once they are: a run killed in between
    /// leaves files this gem wrote that the next run may replace or take away.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// An output directory of this card's that a move left behind (its cluster id or delivery app
    /// changed): ours to remove, recorded until it is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<PathBuf>,
    /// The stamps of the session file and connection.yml as last written or checked: a card whose
    /// two files still carry them is up to date without being read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamps: Option<(Stamp, Stamp)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub cards: BTreeMap<String, Entry>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest { version: 1, cards: BTreeMap::new() }
    }
}

fn file() -> PathBuf {
    Path::new(DIR).join(FILE)
}

/// Whether the manifest's directory exists (most users never had a card: then nothing is touched).
/// `None` when it cannot be told (the walk was refused).
pub(crate) fn present(root: &DataRoot) -> Option<bool> {
    root.dir(Path::new(DIR), false).ok().map(|d| d.is_some())
}

/// The manifest (empty when there is none yet). An unreadable one is an error, never an empty
/// record: overwriting it would lose every card it tracks.
pub(crate) fn read(root: &DataRoot) -> Result<Manifest> {
    let Some(raw) = root.read(&file(), MAX_MANIFEST, true)? else { return Ok(Manifest::default()) };
    parse(&raw).map_err(|e| {
        Error::Io(format!(
            "{}: unreadable ({e}): cards left as they are; move it aside to start over (the cards it lists then stay until removed by hand)",
            root.show(&file()).display()
        ))
    })
}

/// The manifest in `raw` (the bytes of `cards.json`), as [`read`] takes it. Public only for the fuzz
/// targets (`fuzz/`).
pub fn parse(raw: &[u8]) -> serde_json::Result<Manifest> {
    let mut m: Manifest = serde_json::from_slice(raw)?;
    m.version = 1;
    Ok(m)
}

/// Writes the manifest (synced: it is the record of what this gem may touch) if it differs from
/// `recorded`, the one read under the lock; returns whether it wrote. An empty manifest where there
/// was none is not written.
pub(crate) fn write(root: &DataRoot, m: &Manifest, recorded: &Manifest) -> Result<bool> {
    if m == recorded {
        return Ok(false);
    }
    root.write(&file(), &serde_json::to_vec(m).expect("manifest serializes"), true).map(|()| true)
}

/// One reconciliation at a time per user (two dashboard processes may start together): tries
/// `tries` times, 50 ms apart, then gives up for this run.
pub(crate) fn lock(root: &DataRoot, tries: u32) -> Result<Flock<File>> {
    let mut file = root.open_lock_file(&Path::new(DIR).join(LOCK))?;
    for n in 1..=tries {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(l),
            Err((f, _)) => {
                file = f;
                if n < tries {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        }
    }
    Err(Error::Io("another discovery of this user holds the card lock; cards left as they are this time".into()))
}

/// Removes the manifest, the lock file and their directory if nothing else is in it (purge).
pub(crate) fn remove(root: &DataRoot) -> Vec<String> {
    let mut errors = Vec::new();
    for name in [FILE, LOCK] {
        if let Err(e) = root.remove(&Path::new(DIR).join(name)) {
            errors.push(e.to_string());
        }
    }
    root.remove_empty_dir(Path::new(DIR));
    errors
}
