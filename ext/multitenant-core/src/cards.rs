//! Cards: the session files that make a share appear under the receiver's "My Interactive Sessions".
//!
//! Every file written is recorded in `<dataroot>/multitenant/cards.json`; only recorded files are ever
//! changed or removed, so the user's own sessions are never touched. Every path is walked component by
//! component below the data root and a symlink anywhere is refused, so nothing is written outside it.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::discover::Found;
use crate::error::{Error, Result};
use crate::message::Method;

#[derive(Debug, Clone)]
pub struct CardOptions {
    /// OOD's `Configuration.dataroot` for this user.
    pub dataroot: PathBuf,
    /// OOD's `Configuration.per_cluster_dataroot?`.
    pub per_cluster: bool,
    /// Slurm cluster name → OOD cluster id (a clusters.d file name). Required: cards of an unmapped
    /// cluster are not written, because Delete on a card runs that cluster's scancel; the id should be
    /// the hidden entry whose scancel does nothing (`rake install` writes it).
    pub cluster_map: BTreeMap<String, String>,
    /// OOD app tokens a card may name (its view renders the share's values).
    pub deliveries: Vec<String>,
    pub now: u64,
}

/// The delivery apps shipped with the gem, which escape every value.
pub const DEFAULT_DELIVERIES: [&str; 3] =
    ["sys/multitenant-delivery_default", "sys/multitenant-delivery_debug", "sys/multitenant-delivery_content"];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CardReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    pub dismissed: Vec<String>,
    pub unchanged: Vec<String>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    job_id: String,
    #[serde(default)]
    group: String,
    cluster: String,
    owner: String,
    db: PathBuf,
    output: PathBuf,
    digest: String,
    created_at: u64,
    #[serde(default)]
    dismissed: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    cards: BTreeMap<String, Entry>,
}

const MANIFEST_DIR: &str = "multitenant";
const MANIFEST: &str = "cards.json";
/// OOD's session files are a few hundred bytes; anything longer is not one of ours.
const MAX_DB_FILE: u64 = 64 * 1024;
/// A manifest of thousands of cards is well under this; a bigger file is not one we wrote.
const MAX_MANIFEST: u64 = 8 * 1024 * 1024;

/// The session file at `path` (in a directory already checked) says `cache_completed: true`.
fn db_marked_completed(path: &Path) -> bool {
    let Ok(buf) = read_capped(path, MAX_DB_FILE) else { return false };
    serde_json::from_slice::<serde_json::Value>(&buf)
        .is_ok_and(|v| v.get("cache_completed").and_then(|c| c.as_bool()) == Some(true))
}

/// Reads at most `cap` bytes of a regular file, never blocking on a FIFO and never following a link.
fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc_nofollow() | nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > cap {
        return Err(std::io::Error::other(format!("larger than {cap} bytes")));
    }
    let mut buf = Vec::new();
    f.take(cap).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The card's session id: a UUID-shaped hash of the job, stable across runs, never chosen by the
/// publisher (so a share cannot aim at one of the receiver's own session files).
pub fn card_id(cluster: &str, job_id: &str, owner: &str) -> String {
    let d = Sha256::new()
        .chain_update(b"multitenant card\0")
        .chain_update(cluster)
        .chain_update(b"\0")
        .chain_update(job_id)
        .chain_update(b"\0")
        .chain_update(owner)
        .finalize();
    let mut b: [u8; 16] = d[..16].try_into().expect("32-byte digest");
    b[6] = (b[6] & 0x0f) | 0x80; // version 8: custom
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The card's session file, relative to the data root (OOD's `batch_connect/db/<id>`).
pub fn db_file(id: &str) -> PathBuf {
    Path::new("batch_connect/db").join(id)
}

/// The card's output dir (holding connection.yml), relative to the data root; the cluster segment
/// exists only with OOD's per-cluster data root.
pub fn output_dir(per_cluster: bool, ood_cluster: &str, delivery: &str, id: &str) -> PathBuf {
    let mut p = PathBuf::from("batch_connect");
    if per_cluster {
        p.push(ood_cluster);
    }
    p.join(delivery).join("output").join(id)
}

fn valid_cluster_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        && !s.starts_with('.')
}

/// The data root, and safe operations strictly inside it.
struct SafeRoot {
    root: PathBuf,
    uid: u32,
}

impl SafeRoot {
    fn open(dataroot: &Path, uid: u32) -> Result<SafeRoot> {
        let meta = fs::metadata(dataroot).map_err(|e| Error::Io(format!("data root {}: {e}", dataroot.display())))?;
        if !meta.is_dir() || meta.uid() != uid {
            return Err(Error::Io(format!("data root {} is not a directory owned by uid {uid}", dataroot.display())));
        }
        Ok(SafeRoot { root: dataroot.to_path_buf(), uid })
    }

    /// Resolves `rel` below the root, refusing `..`, absolute parts and symlinks; creates missing
    /// directories (mode 0700) when asked.
    fn dir(&self, rel: &Path, create: bool) -> Result<Option<PathBuf>> {
        let mut path = self.root.clone();
        for c in rel.components() {
            let Component::Normal(part) = c else {
                return Err(Error::Io(format!("refusing path {} (not a plain relative path)", rel.display())));
            };
            path.push(part);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Error::Io(format!("refusing {}: it is a symlink", path.display())))
                }
                // Only the viewer may change what lies below: nobody else can swap in a symlink.
                Ok(m) if m.is_dir() && m.uid() == self.uid && m.mode() & 0o022 == 0 => {}
                Ok(m) if m.is_dir() => {
                    return Err(Error::Io(format!(
                        "refusing {}: not owned by uid {} or writable by others",
                        path.display(),
                        self.uid
                    )))
                }
                Ok(_) => return Err(Error::Io(format!("refusing {}: not a directory", path.display()))),
                Err(e) if e.kind() == ErrorKind::NotFound && create => match fs::create_dir(&path) {
                    Ok(()) => fs::set_permissions(&path, fs::Permissions::from_mode(0o700))
                        .map_err(|e| Error::Io(format!("chmod {}: {e}", path.display())))?,
                    // Another run of this user made it first: fine if it passes the same checks.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => match fs::symlink_metadata(&path) {
                        Ok(m)
                            if m.is_dir()
                                && !m.file_type().is_symlink()
                                && m.uid() == self.uid
                                && m.mode() & 0o022 == 0 => {}
                        _ => {
                            return Err(Error::Io(format!("refusing {}: replaced while being created", path.display())))
                        }
                    },
                    Err(e) => return Err(Error::Io(format!("creating {}: {e}", path.display()))),
                },
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::Io(format!("{}: {e}", path.display()))),
            }
        }
        Ok(Some(path))
    }

    fn split(rel: &Path) -> Result<(&Path, &str)> {
        let name =
            rel.file_name().and_then(|n| n.to_str()).ok_or_else(|| Error::Io(format!("bad path {}", rel.display())))?;
        Ok((rel.parent().unwrap_or(Path::new("")), name))
    }

    /// Regular file at `rel`? (A symlink or anything else counts as "not ours to touch".)
    fn file_state(&self, rel: &Path) -> Result<FileState> {
        let (dir, name) = Self::split(rel)?;
        let Some(dir) = self.dir(dir, false)? else { return Ok(FileState::Missing) };
        Ok(match fs::symlink_metadata(dir.join(name)) {
            Ok(m) if m.file_type().is_file() => FileState::File,
            Ok(_) => FileState::Other,
            Err(e) if e.kind() == ErrorKind::NotFound => FileState::Missing,
            Err(e) => return Err(Error::Io(format!("{}: {e}", rel.display()))),
        })
    }

    /// Writes via a temporary `.…bak` name (OOD skips those) and renames into place: readers see the
    /// old file or the new one, never half of one.
    fn write(&self, rel: &Path, contents: &[u8]) -> Result<()> {
        let (dir, name) = Self::split(rel)?;
        let dir = self.dir(dir, true)?.expect("created");
        let mut rnd = [0u8; 6];
        getrandom::fill(&mut rnd).map_err(|e| Error::Io(e.to_string()))?;
        let tmp = dir.join(format!(".{name}.{}.bak", rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()));
        let io = |e: std::io::Error| Error::Io(format!("writing {}: {e}", dir.join(name).display()));
        let result = (|| {
            let mut f =
                OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc_nofollow()).open(&tmp)?;
            f.write_all(contents)?;
            f.sync_all()?;
            fs::rename(&tmp, dir.join(name))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io)
    }

    /// Whether OOD has marked the session file at `rel` completed (`cache_completed: true`): it does so
    /// when squeue no longer lists the job, and on the card's Cancel button (BatchConnect::Session#cancel
    /// and #update_cache_completed!, apps/dashboard/app/models/batch_connect/session.rb at v4.2.3).
    fn marked_completed(&self, rel: &Path) -> bool {
        let Ok((dir, name)) = Self::split(rel) else { return false };
        let Ok(Some(dir)) = self.dir(dir, false) else { return false };
        db_marked_completed(&dir.join(name))
    }

    fn remove(&self, rel: &Path) -> Result<()> {
        let (dir, name) = Self::split(rel)?;
        let Some(dir) = self.dir(dir, false)? else { return Ok(()) };
        match fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::Io(format!("removing {}: {e}", rel.display()))),
            _ => Ok(()),
        }
    }

    /// Removes the directory only if it is empty: anything else in it is not ours.
    fn remove_empty_dir(&self, rel: &Path) {
        if let Ok(Some(dir)) = self.dir(rel, false) {
            let _ = fs::remove_dir(dir);
        }
    }
}

fn libc_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

#[derive(Debug, PartialEq, Eq)]
enum FileState {
    Missing,
    File,
    Other,
}

struct Wanted {
    entry: Entry,
    db_json: serde_json::Value,
    connection_json: Vec<u8>,
}

fn wanted(f: &Found, opts: &CardOptions) -> Result<(String, Wanted)> {
    let m = &f.share.message;
    if !opts.deliveries.contains(&m.delivery) {
        return Err(Error::Invalid(format!(
            "delivery app {} is not allowed for cards on this dashboard (MULTITENANT_DELIVERIES)",
            m.delivery
        )));
    }
    let ood_cluster = opts.cluster_map.get(&f.job.cluster).cloned().ok_or_else(|| {
        Error::Invalid(format!(
            "no OOD cluster for Slurm cluster {:?}: set MULTITENANT_CLUSTERS={}=<hidden dismiss cluster id> (rake install writes it)",
            f.job.cluster, f.job.cluster
        ))
    })?;
    if !valid_cluster_id(&ood_cluster) {
        return Err(Error::Invalid(format!(
            "OOD cluster id {ood_cluster:?} for Slurm cluster {:?} is not a clusters.d name",
            f.job.cluster
        )));
    }
    let id = card_id(&f.job.cluster, &f.job.id, &f.job.owner);
    let output = output_dir(opts.per_cluster, &ood_cluster, &m.delivery, &id);
    let title = format!("{} from {}", m.app, f.job.owner);
    let mut conn: BTreeMap<&str, &str> = m.connection.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    conn.insert("jobid", &f.job.id);
    conn.insert("mt_appname", &m.app);
    conn.insert("mt_owner", &f.job.owner);
    conn.insert("mt_group", &f.share.group);
    // JSON is YAML that YAML.safe_load reads back as strings: no `yes`→true, no `0123`→83.
    let connection_json = serde_json::to_vec_pretty(&conn).expect("strings serialize");
    let digest_src = json!([ood_cluster, m.delivery, title, f.job.id, conn]);
    let digest: String = Sha256::digest(digest_src.to_string()).iter().take(12).map(|b| format!("{b:02x}")).collect();
    let db_json = json!({
        "id": id, "cluster_id": ood_cluster, "job_id": f.job.id, "created_at": 0, "token": m.delivery,
        "title": title, "script_type": "basic", "cache_completed": null, "completed_at": null,
    });
    let entry = Entry {
        job_id: f.job.id.clone(),
        group: f.share.group.clone(),
        cluster: f.job.cluster.clone(),
        owner: f.job.owner.clone(),
        db: db_file(&id),
        output,
        digest,
        created_at: opts.now,
        dismissed: false,
    };
    Ok((id, Wanted { entry, db_json, connection_json }))
}

/// The manifest and the bytes it was read from (empty when there was none).
fn load_manifest(root: &SafeRoot, report: &mut CardReport) -> (Manifest, Vec<u8>) {
    let mut raw = Vec::new();
    let m = read_manifest(root, report, &mut raw);
    (m, raw)
}

fn read_manifest(root: &SafeRoot, report: &mut CardReport, raw: &mut Vec<u8>) -> Manifest {
    let rel = Path::new(MANIFEST_DIR).join(MANIFEST);
    let path = match root.dir(Path::new(MANIFEST_DIR), false) {
        Ok(Some(dir)) => dir.join(MANIFEST),
        Ok(None) => return Manifest { version: 1, ..Manifest::default() },
        Err(e) => {
            report.errors.push(e.to_string());
            return Manifest { version: 1, ..Manifest::default() };
        }
    };
    match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_file() => {}
        Ok(_) => {
            report.errors.push(format!("refusing {}: not a regular file", rel.display()));
            return Manifest { version: 1, ..Manifest::default() };
        }
        Err(_) => return Manifest { version: 1, ..Manifest::default() },
    }
    let parsed = read_capped(&path, MAX_MANIFEST).map_err(|e| e.to_string()).and_then(|b| {
        let m = serde_json::from_slice::<Manifest>(&b).map_err(|e| e.to_string());
        *raw = b;
        m
    });
    match parsed {
        Ok(m) => m,
        Err(e) => {
            report
                .errors
                .push(format!("{}: unreadable ({e}); cards written before are no longer tracked", path.display()));
            Manifest { version: 1, ..Manifest::default() }
        }
    }
}

/// Brings the viewer's cards in line with the shares found: creates, updates and removes the cards
/// this gem wrote, remembers dismissals, and touches nothing else.
/// `keep` names groups whose shares could not be checked this run (their keys failed to load): their
/// cards stay as they are.
pub fn reconcile(opts: &CardOptions, uid: u32, viewer: &str, found: &[Found], keep: &[String]) -> CardReport {
    let mut report = CardReport::default();
    let root = match SafeRoot::open(&opts.dataroot, uid) {
        Ok(r) => r,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    let mut want = BTreeMap::new();
    for f in found.iter().filter(|f| f.share.message.method == Method::Card && f.job.owner != viewer) {
        match wanted(f, opts) {
            Ok((id, w)) => {
                want.insert(id, w);
            }
            // A missing mapping or a foreign delivery app is a setting, not a job's fault: say it once.
            Err(e) => {
                let line = format!("cards: {e}");
                if !report.errors.contains(&line) {
                    report.errors.push(line);
                }
            }
        }
    }
    // Most users have no card and never had one: then nothing is touched, not even a lock file.
    if want.is_empty() && matches!(root.dir(Path::new(MANIFEST_DIR), false), Ok(None)) {
        return report;
    }
    let _lock = match lock(&root) {
        Ok(l) => l,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    let (mut manifest, before) = load_manifest(&root, &mut report);
    manifest.version = 1;

    let ended: Vec<String> = manifest
        .cards
        .iter()
        .filter(|(id, e)| !want.contains_key(*id) && !keep.contains(&e.group))
        .map(|(id, _)| id.clone())
        .collect();
    for id in ended {
        let e = manifest.cards.remove(&id).expect("listed");
        remove_card(&root, &e, &mut report);
        report.removed.push(id);
    }

    for (id, w) in want {
        let state = root.file_state(&w.entry.db);
        match (manifest.cards.get_mut(&id), state) {
            (_, Err(e)) => report.errors.push(e.to_string()),
            (Some(e), _) if e.dismissed => report.unchanged.push(id),
            (Some(e), Ok(FileState::Missing)) => {
                // The user deleted the card: remember it while the share lives.
                let _ = root.remove(&e.output.join("connection.yml"));
                root.remove_empty_dir(&e.output);
                e.dismissed = true;
                report.dismissed.push(id);
            }
            (Some(e), Ok(FileState::File)) if root.marked_completed(&e.db) => {
                // The share lives, so OOD marked it completed on the user's Cancel (the dismiss
                // cluster's scancel did nothing): a Completed card of a live share would mislead,
                // so Cancel dismisses it, as Delete does.
                remove_card(&root, e, &mut report);
                e.dismissed = true;
                report.dismissed.push(id);
            }
            (Some(e), Ok(_))
                if e.digest == w.entry.digest
                    && root.file_state(&e.output.join("connection.yml")).ok() == Some(FileState::File) =>
            {
                report.unchanged.push(id)
            }
            (Some(e), Ok(_)) => {
                let created_at = e.created_at;
                if e.output != w.entry.output {
                    let _ = root.remove(&e.output.join("connection.yml"));
                    root.remove_empty_dir(&e.output);
                }
                match write_card(&root, &w, created_at) {
                    Ok(()) => {
                        *e = Entry { created_at, ..w.entry };
                        report.updated.push(id);
                    }
                    Err(err) => report.errors.push(format!("card {id}: {err}")),
                }
            }
            (None, Ok(FileState::Missing)) => {
                let conn = root.file_state(&w.entry.output.join("connection.yml"));
                if conn.as_ref().ok() != Some(&FileState::Missing) {
                    report.errors.push(format!(
                        "card {id}: {} exists and was not written by multitenant: left alone",
                        w.entry.output.display()
                    ));
                    continue;
                }
                match write_card(&root, &w, opts.now) {
                    Ok(()) => {
                        manifest.cards.insert(id.clone(), w.entry);
                        report.created.push(id);
                    }
                    Err(err) => {
                        // Leave nothing untracked behind.
                        let _ = root.remove(&w.entry.output.join("connection.yml"));
                        root.remove_empty_dir(&w.entry.output);
                        report.errors.push(format!("card {id}: {err}"));
                    }
                }
            }
            (None, Ok(_)) => report.errors.push(format!(
                "card {id}: {} exists and was not written by multitenant: left alone",
                w.entry.db.display()
            )),
        }
    }

    // Most dashboard starts change nothing: then nothing is written.
    let body = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    let unchanged = body == before || (before.is_empty() && manifest.cards.is_empty());
    if !unchanged {
        if let Err(e) = root.write(&Path::new(MANIFEST_DIR).join(MANIFEST), &body) {
            report.errors.push(e.to_string());
        }
    }
    report
}

/// One reconciliation at a time per user (two dashboard processes may start together). Waits up to
/// two seconds, then gives up for this run.
fn lock(root: &SafeRoot) -> Result<Flock<std::fs::File>> {
    lock_tries(root, 40)
}

fn lock_tries(root: &SafeRoot, tries: u32) -> Result<Flock<std::fs::File>> {
    let dir = root.dir(Path::new(MANIFEST_DIR), true)?.expect("created");
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc_nofollow())
        .open(dir.join(".lock"))
        .map_err(|e| Error::Io(format!("lock file in {}: {e}", dir.display())))?;
    let mut file = file;
    for _ in 0..tries {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(l),
            Err((f, _)) => {
                file = f;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
    Err(Error::Io("another discovery of this user holds the card lock; cards left as they are this time".into()))
}

fn write_card(root: &SafeRoot, w: &Wanted, created_at: u64) -> Result<()> {
    root.write(&w.entry.output.join("connection.yml"), &w.connection_json)?;
    let mut db = w.db_json.clone();
    db["created_at"] = json!(created_at);
    root.write(&w.entry.db, &serde_json::to_vec(&db).expect("db serializes"))
}

fn remove_card(root: &SafeRoot, e: &Entry, report: &mut CardReport) {
    for rel in [e.db.clone(), e.output.join("connection.yml")] {
        if let Err(err) = root.remove(&rel) {
            report.errors.push(err.to_string());
        }
    }
    root.remove_empty_dir(&e.output);
}

/// Takes away every card this gem wrote that OOD has since marked completed (its job ended, or the user
/// pressed Cancel), without asking the scheduler: OOD would otherwise keep showing it "Completed". The
/// entry is remembered as dismissed: a share that still lives stays dismissed (Cancel), an ended one is
/// dropped by the next discovery. Runs before each dashboard request, so it reads only the manifest and
/// those session files and never waits: when another discovery holds the lock, it does nothing.
pub fn settle_completed(dataroot: &Path, uid: u32) -> CardReport {
    let mut report = CardReport::default();
    let Ok(root) = SafeRoot::open(dataroot, uid) else { return report };
    if !matches!(root.dir(Path::new(MANIFEST_DIR), false), Ok(Some(_))) {
        return report;
    }
    let glance = read_manifest(&root, &mut CardReport::default(), &mut Vec::new());
    // Session files share one directory: resolve it (a checked walk) once, not once per card.
    let mut dirs: BTreeMap<&Path, Option<PathBuf>> = BTreeMap::new();
    let marked = glance.cards.values().filter(|e| !e.dismissed).any(|e| {
        let Ok((dir, name)) = SafeRoot::split(&e.db) else { return false };
        let resolved = dirs.entry(dir).or_insert_with(|| root.dir(dir, false).ok().flatten());
        resolved.as_ref().is_some_and(|d| db_marked_completed(&d.join(name)))
    });
    if !marked {
        return report;
    }
    let Ok(_lock) = lock_tries(&root, 1) else { return report };
    let (mut manifest, before) = load_manifest(&root, &mut report);
    for (id, e) in manifest.cards.iter_mut() {
        if !e.dismissed && root.marked_completed(&e.db) {
            remove_card(&root, e, &mut report);
            e.dismissed = true;
            report.dismissed.push(id.clone());
        }
    }
    let body = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    if body != before {
        if let Err(e) = root.write(&Path::new(MANIFEST_DIR).join(MANIFEST), &body) {
            report.errors.push(e.to_string());
        }
    }
    report
}

/// Removes every card this gem wrote under the data root, and its record of them. Other files stay.
pub fn purge(opts: &CardOptions, uid: u32, viewer: &str) -> CardReport {
    let mut report = reconcile(opts, uid, viewer, &[], &[]);
    // The record goes only after a clean, locked cleanup: else the next run still knows its cards.
    if !report.errors.is_empty() {
        return report;
    }
    if let Ok(root) = SafeRoot::open(&opts.dataroot, uid) {
        for name in [MANIFEST, ".lock"] {
            if let Err(e) = root.remove(&Path::new(MANIFEST_DIR).join(name)) {
                report.errors.push(e.to_string());
            }
        }
        root.remove_empty_dir(Path::new(MANIFEST_DIR));
    }
    report
}
