//! Cards: the session files that make a share appear under the receiver's "My Interactive Sessions",
//! in OOD's own format (`batch_connect/db/<id>` and the output dir's `connection.yml`), and the
//! reconciliation that keeps them in line with the shares found.
//!
//! Guarantees: every file written is recorded in the manifest (`manifest.rs`) and only recorded files
//! are ever changed or removed, so the user's own sessions are never touched; everything happens below
//! the data root through checked directory descriptors (`dataroot.rs`), so nothing is written outside
//! it (or outside a directory of the viewer's own that the viewer's own symlink leads to, along a path
//! only root and the viewer can change); OOD never reads a half-written file; one run at a time per
//! user. The work is bounded (caps per owner and per run, a write budget), and what a run could not
//! decide or could not do is left as the last run left it: a share that is unknown, held back or whose
//! write (card or manifest) failed never loses its card, and a card that moves keeps its old output
//! until the manifest records the new one.
//!
//! Durability: cards are derived data, rewritten by the next discovery, which runs when the dashboard
//! starts, before it shows a page. Each card file is written under a temporary name and renamed into
//! place (a reader sees the old file or the new one) but not fsynced: an fsync per file would cost
//! more than everything else a first start does. The manifest, the record of which files are ours,
//! is fsynced; new cards are recorded in it as pending before their files are written, so a run
//! killed at any point leaves no file the next run may not replace or take away. After a power loss a
//! card file may be empty: its stamp (inode, size, times) no longer matches the manifest's, the next
//! run reads it, and rewrites what is not OOD's JSON or is empty. A card whose stamps match is up to
//! date without being read: two `fstatat` calls per card at a later start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::dataroot::{DataRoot, FileState};
use crate::discover::{Found, Unknown};
use crate::envelope::hex;
use crate::error::Result;
use crate::manifest::{self, Entry, Stamp};
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
    /// Cards one publisher's shares may have at once (cards already delivered keep their place first).
    pub max_cards_per_owner: usize,
    /// Cards in all (cards already delivered keep their place first).
    pub max_cards: usize,
    /// Time one run may spend writing cards; shares left are held back until the next run.
    pub write_budget: Duration,
}

impl CardOptions {
    /// Options for `dataroot` with the defaults: per-cluster off, no cluster mapping, the shipped
    /// delivery apps, the clock's now, at most 10 cards per owner and 50 in all, a 2 s write budget.
    pub fn new(dataroot: impl Into<PathBuf>) -> CardOptions {
        CardOptions {
            dataroot: dataroot.into(),
            per_cluster: false,
            cluster_map: BTreeMap::new(),
            deliveries: DEFAULT_DELIVERIES.iter().map(|d| d.to_string()).collect(),
            now: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |t| t.as_secs()),
            max_cards_per_owner: 10,
            max_cards: 50,
            write_budget: Duration::from_secs(2),
        }
    }
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
    /// Shares given no card (or no update) this run: beyond a cap or the write budget. An existing card
    /// stays; nothing is recorded as dismissed; they stay choices in forms.
    pub held_back: Vec<String>,
    pub errors: Vec<String>,
}

/// OOD's session files are a few hundred bytes; anything longer is not one of ours.
const MAX_DB_FILE: u64 = 64 * 1024;

/// What a card's session file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Session {
    /// OOD's JSON, not marked completed.
    Open,
    /// OOD has marked it completed (`cache_completed: true`): it does so when squeue no longer lists
    /// the job, and on the card's Cancel button (BatchConnect::Session#cancel and
    /// #update_cache_completed!, apps/dashboard/app/models/batch_connect/session.rb at v4.2.3).
    Completed,
    /// Not a JSON object (empty after a power loss, say), or unreadable.
    Unreadable,
}

fn session_state(root: &DataRoot, rel: &Path) -> Session {
    let Ok(Some(buf)) = root.read(rel, MAX_DB_FILE, false) else { return Session::Unreadable };
    match serde_json::from_slice::<serde_json::Value>(&buf) {
        Ok(v) if v.get("cache_completed").and_then(|c| c.as_bool()) == Some(true) => Session::Completed,
        Ok(v) if v.is_object() => Session::Open,
        _ => Session::Unreadable,
    }
}

fn marked_completed(root: &DataRoot, rel: &Path) -> bool {
    session_state(root, rel) == Session::Completed
}

/// Whether the card's session file is exactly as last written or checked (then OOD has not marked
/// it: it marks a session by rewriting its file).
fn db_as_recorded(root: &DataRoot, e: &Entry) -> bool {
    e.stamps.as_ref().is_some_and(|(db, _)| db_stamp(root, &e.db).as_ref() == Some(db))
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
    let h = hex(&b);
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

/// A card a share should have: its manifest entry (with the digest of what it shows) and what its
/// files are rendered from, only when they are written.
struct Wanted<'a> {
    entry: Entry,
    found: &'a Found,
    ood_cluster: String,
    title: String,
}

impl Wanted<'_> {
    /// connection.yml: the share's values and the four the card adds. JSON is YAML that
    /// YAML.safe_load reads back as strings: no `yes`→true, no `0123`→83.
    fn connection_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&card_values(self.found)).expect("strings serialize")
    }

    /// The session file as OOD writes one (BatchConnect::Session#to_json at v4.2.3).
    fn db_json(&self, created_at: u64) -> Vec<u8> {
        let f = self.found;
        let db = json!({
            "id": card_id(&f.job.cluster, &f.job.id, &f.job.owner), "cluster_id": self.ood_cluster,
            "job_id": f.job.id, "created_at": created_at, "token": f.share.message.delivery, "title": self.title,
            "script_type": "basic", "cache_completed": null, "completed_at": null,
        });
        serde_json::to_vec(&db).expect("db serializes")
    }
}

fn card_values(f: &Found) -> BTreeMap<&str, &str> {
    let m = &f.share.message;
    let mut conn: BTreeMap<&str, &str> = m.connection.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    conn.insert("jobid", &f.job.id);
    conn.insert("mt_appname", &m.app);
    conn.insert("mt_owner", &f.job.owner);
    conn.insert("mt_group", &f.share.group);
    conn
}

/// The card a share should have, or the one line that says why it gets none: the publisher's choice
/// of delivery app names the job; a missing cluster mapping is a setting ("cards: …").
fn wanted<'a>(f: &'a Found, opts: &CardOptions) -> std::result::Result<(String, Wanted<'a>), String> {
    let m = &f.share.message;
    if !opts.deliveries.contains(&m.delivery) {
        return Err(format!(
            "job {} ({}): delivery app {} is not allowed for cards on this dashboard (MULTITENANT_DELIVERIES): a form choice only",
            f.job.id, f.job.owner, m.delivery
        ));
    }
    let ood_cluster = opts.cluster_map.get(&f.job.cluster).cloned().ok_or_else(|| {
        format!(
            "cards: no OOD cluster for Slurm cluster {:?}: set MULTITENANT_CLUSTERS={}=<hidden dismiss cluster id> (rake install writes it)",
            f.job.cluster, f.job.cluster
        )
    })?;
    if !valid_cluster_id(&ood_cluster) {
        return Err(format!(
            "cards: OOD cluster id {ood_cluster:?} for Slurm cluster {:?} is not a clusters.d name",
            f.job.cluster
        ));
    }
    let id = card_id(&f.job.cluster, &f.job.id, &f.job.owner);
    let output = output_dir(opts.per_cluster, &ood_cluster, &m.delivery, &id);
    // The owner (Slurm's word, not the publisher's) comes first and apart from the app name the
    // publisher chose, as in the forms' labels: an app name cannot pose as another owner.
    let title = format!("{}: {}", f.job.owner, m.app);
    // Everything the two files show, each field length-prefixed: no two cards' inputs collide.
    let mut h = Sha256::new();
    let conn = card_values(f);
    for field in [ood_cluster.as_str(), &m.delivery, &title, &f.job.id]
        .into_iter()
        .chain(conn.iter().flat_map(|(k, v)| [*k, *v]))
    {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    let digest = hex(&h.finalize()[..12]);
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
        pending: false,
        stamps: None,
        stale: None,
    };
    Ok((id, Wanted { entry, found: f, ood_cluster, title }))
}

/// The order new cards are considered in: by owner, then numeric job id (stable across runs, so the
/// same shares get the places each time).
fn new_card_order(e: &Entry) -> (&str, u64, &str, &str) {
    (&e.owner, e.job_id.parse().unwrap_or(u64::MAX), &e.job_id, &e.cluster)
}

/// Why shares were held back this run, for the one summary line.
#[derive(Default)]
struct Held {
    per_owner_cap: bool,
    run_cap: bool,
    budget: bool,
    by_owner: BTreeMap<String, usize>,
}

impl Held {
    fn note(&mut self, report: &mut CardReport, id: String, owner: &str) {
        *self.by_owner.entry(owner.to_string()).or_default() += 1;
        report.held_back.push(id);
    }

    fn summary(&self, opts: &CardOptions, n: usize) -> Option<String> {
        if n == 0 {
            return None;
        }
        let mut caps = Vec::new();
        if self.per_owner_cap {
            caps.push(format!("{} per owner", opts.max_cards_per_owner));
        }
        if self.run_cap {
            caps.push(format!("{} per run", opts.max_cards));
        }
        let mut why = Vec::new();
        if !caps.is_empty() {
            why.push(format!("at most {}", caps.join(", ")));
        }
        if self.budget {
            why.push(format!("write budget of {} s spent", opts.write_budget.as_secs_f64()));
        }
        let mut owners: Vec<(&String, &usize)> = self.by_owner.iter().collect();
        owners.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut who: Vec<String> = owners.iter().take(3).map(|(o, k)| format!("{o}: {k}")).collect();
        if owners.len() > 3 {
            who.push("…".into());
        }
        Some(format!(
            "cards: {n} share(s) held back ({}; {}): they stay choices in forms",
            why.join("; "),
            who.join(", ")
        ))
    }
}

/// Brings the viewer's cards in line with the shares found: creates, updates and removes the cards
/// this gem wrote, remembers dismissals, and touches nothing else.
///
/// A manifest entry `unknown` covers (its group's keys failed, its cluster did not answer, its job was
/// not examined…) is left exactly as it is, card and dismissal: unknown is never "ended". Cards already
/// delivered keep their place; new ones are considered by owner, then job id, up to
/// `max_cards_per_owner` per owner and `max_cards` in all, while `write_budget` lasts; the others are
/// held back (no card written, an existing one kept, nothing recorded) and named in `held_back`.
pub fn reconcile(opts: &CardOptions, uid: u32, viewer: &str, found: &[Found], unknown: &Unknown) -> CardReport {
    let mut report = CardReport::default();
    let root = match DataRoot::open(&opts.dataroot, uid) {
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
            // A missing mapping is a setting, said once for all its shares.
            Err(line) => {
                if !report.errors.contains(&line) {
                    report.errors.push(line);
                }
            }
        }
    }
    // Most users have no card and never had one: then nothing is touched, not even a lock file.
    if want.is_empty() && manifest::present(&root) == Some(false) {
        return report;
    }
    let _lock = match manifest::lock(&root, 40) {
        Ok(l) => l,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    root.forget();
    let mut manifest = match manifest::read(&root) {
        Ok(m) => m,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    let recorded = manifest.clone();

    // Old outputs a move left (a killed or failed run): ours, and they go first.
    for e in manifest.cards.values_mut() {
        if let Some(old) = &e.stale {
            if remove_output(&root, old, &mut report) {
                e.stale = None;
            }
        }
    }

    // Entries still pending were being written when a run was killed: the files are ours to replace.
    let ended: Vec<String> = manifest
        .cards
        .iter()
        .filter(|(id, e)| !want.contains_key(*id) && (e.pending || !unknown.covers(&e.cluster, &e.group, &e.job_id)))
        .map(|(id, _)| id.clone())
        .collect();
    for id in ended {
        // A card that could not be taken away stays recorded, so the next run tries again.
        let e = &manifest.cards[&id];
        if remove_card(&root, &id, e, &mut report) && e.stale.is_none() {
            if !manifest.cards[&id].pending {
                report.removed.push(id.clone());
            }
            manifest.cards.remove(&id);
        }
    }

    // Cards already delivered keep their place first: those left as they are (unknown this run)…
    let mut shown_by_owner: BTreeMap<String, usize> = BTreeMap::new();
    let mut shown = 0usize;
    for e in manifest.cards.iter().filter(|(id, e)| !want.contains_key(*id) && !e.dismissed).map(|(_, e)| e) {
        *shown_by_owner.entry(e.owner.clone()).or_default() += 1;
        shown += 1;
    }
    // …then those of shares found, then new ones in a stable order.
    let delivered = |id: &String| manifest.cards.get(id).is_some_and(|e| !e.pending);
    let (mut order, mut new): (Vec<_>, Vec<_>) = want.into_iter().partition(|(id, _)| delivered(id));
    new.sort_by(|a, b| new_card_order(&a.1.entry).cmp(&new_card_order(&b.1.entry)));
    order.extend(new);

    let start = Instant::now();
    let mut held = Held::default();
    // Cards whose files this run writes anew: new ones, ones a killed run left pending, and moves.
    let mut creating: Vec<(String, Wanted)> = Vec::new();
    let mut moving = Vec::new();
    for (id, w) in order {
        let owner = w.entry.owner.clone();
        let budget_left = start.elapsed() < opts.write_budget;
        let e = match manifest.cards.get_mut(&id) {
            Some(e) if !e.pending => e,
            pending => {
                // A new card (or one a killed run left pending: its files are ours).
                let per_owner = shown_by_owner.get(&owner).copied().unwrap_or(0);
                if per_owner >= opts.max_cards_per_owner || shown >= opts.max_cards || !budget_left {
                    held.per_owner_cap |= per_owner >= opts.max_cards_per_owner;
                    held.run_cap |= per_owner < opts.max_cards_per_owner && shown >= opts.max_cards;
                    held.budget |= per_owner < opts.max_cards_per_owner && shown < opts.max_cards;
                    held.note(&mut report, id, &owner);
                    continue;
                }
                let taken = if pending.is_some() {
                    None
                } else {
                    [w.entry.db.clone(), w.entry.output.join("connection.yml")]
                        .iter()
                        .map(|rel| root.file_state(rel).map(|s| (rel.clone(), s)))
                        .find(|s| !matches!(s, Ok((_, FileState::Missing))))
                };
                match taken {
                    Some(Err(err)) => report.errors.push(format!("card {id}: {err}")),
                    Some(Ok((rel, _))) => report.errors.push(format!(
                        "card {id}: {} exists and was not written by multitenant: left alone",
                        root.show(&rel).display()
                    )),
                    None => {
                        *shown_by_owner.entry(owner).or_default() += 1;
                        shown += 1;
                        let mut w = w;
                        // A pending card's files elsewhere (its output moved meanwhile) go too.
                        w.entry.stale = pending.filter(|p| p.output != w.entry.output).map(|p| p.output.clone());
                        creating.push((id, w));
                    }
                }
                continue;
            }
        };
        if e.dismissed {
            report.unchanged.push(id);
            continue;
        }
        // Nearly every card at nearly every start: both files exactly as last written or checked.
        if e.digest == w.entry.digest && as_recorded(&root, e) {
            *shown_by_owner.entry(owner).or_default() += 1;
            shown += 1;
            report.unchanged.push(id);
            continue;
        }
        let state = match root.file_state(&e.db) {
            Ok(s) => s,
            Err(err) => {
                // Whatever is there stays, and keeps its place.
                report.errors.push(format!("card {id}: {err}"));
                *shown_by_owner.entry(owner).or_default() += 1;
                shown += 1;
                continue;
            }
        };
        if state == FileState::Missing {
            // The user deleted the card: remember it while the share lives.
            let _ = root.remove(&e.output.join("connection.yml"));
            root.remove_empty_dir(&e.output);
            e.dismissed = true;
            e.stamps = None;
            report.dismissed.push(id);
            continue;
        }
        let session = (state == FileState::File).then(|| session_state(&root, &e.db));
        if session == Some(Session::Completed) {
            // The share lives, so OOD marked it completed on the user's Cancel (the dismiss cluster's
            // scancel did nothing): a Completed card of a live share would mislead, so Cancel dismisses
            // it, as Delete does.
            if remove_card(&root, &id, e, &mut report) {
                e.dismissed = true;
                e.stamps = None;
                report.dismissed.push(id);
            }
            continue;
        }
        // The card stays (as it is, or updated): it keeps its place.
        *shown_by_owner.entry(owner.clone()).or_default() += 1;
        shown += 1;
        // A session file that is not OOD's JSON, or an empty connection.yml (a power loss after an
        // unsynced write), is rewritten.
        let conn = e.output.join("connection.yml");
        if e.digest == w.entry.digest
            && session == Some(Session::Open)
            && root.checked_stamp(&conn).is_some_and(|s| !s.is_empty())
        {
            e.stamps = stamps(&root, &e.db, &e.output);
            report.unchanged.push(id);
            continue;
        }
        if !budget_left {
            held.budget = true;
            held.note(&mut report, id, &owner);
            continue;
        }
        if e.output != w.entry.output {
            // A move (its OOD cluster id or delivery app changed): written as a new card that records
            // the old output until it is gone; the old card shows until the new one is in place.
            let mut w = w;
            w.entry.created_at = e.created_at;
            w.entry.stale = Some(e.output.clone());
            moving.push(id.clone());
            creating.push((id, w));
            continue;
        }
        // Rewritten in place, each file whole: a failed write keeps the old card.
        match write_card(&root, &w, e.created_at) {
            Ok(stamped) => {
                *e = Entry { created_at: e.created_at, stamps: stamped, ..w.entry };
                report.updated.push(id);
            }
            Err(err) => report.errors.push(format!("card {id}: {err}")),
        }
    }

    // Cards written anew are recorded first, as pending (and the record synced), so a run killed while
    // writing them leaves nothing the next run may not replace or take away.
    let mut on_disk = recorded.clone();
    if !creating.is_empty() {
        for (id, w) in &creating {
            manifest.cards.insert(id.clone(), Entry { pending: true, ..w.entry.clone() });
        }
        match manifest::write(&root, &manifest, &on_disk) {
            Ok(_) => on_disk = manifest.clone(),
            Err(err) => {
                report.errors.push(format!("{err}: no card written anew this run"));
                for (id, _) in &creating {
                    restore(&mut manifest, &recorded, id);
                }
                creating.clear();
            }
        }
    }
    for (id, w) in creating {
        let moved = moving.contains(&id);
        if start.elapsed() >= opts.write_budget {
            held.budget = true;
            held.note(&mut report, id.clone(), &w.entry.owner);
            // Not written: as it was before this run (a pending card's files stay recorded).
            restore(&mut manifest, &recorded, &id);
            continue;
        }
        match write_card(&root, &w, w.entry.created_at) {
            Ok(stamped) => {
                let e = manifest.cards.get_mut(&id).expect("recorded as pending");
                e.pending = false;
                e.stamps = stamped;
                if let Some(old) = e.stale.clone() {
                    if remove_output(&root, &old, &mut report) {
                        e.stale = None;
                    }
                }
                if moved {
                    report.updated.push(id);
                } else {
                    report.created.push(id);
                }
            }
            Err(err) => {
                report.errors.push(format!("card {id}: {err}"));
                // A move keeps its old card (its session file is rewritten last); new output goes.
                // What cannot be reached through checked directories was not written.
                let there = |rel: &Path| root.checked_stamp(rel).is_some();
                let conn = w.entry.output.join("connection.yml");
                let gone = if moved {
                    !there(&conn) || remove_output(&root, &w.entry.output, &mut CardReport::default())
                } else {
                    (!there(&conn) && !there(&w.entry.db))
                        || remove_card(&root, &id, &w.entry, &mut CardReport::default())
                };
                if gone {
                    restore(&mut manifest, &recorded, &id);
                }
            }
        }
    }
    if let Some(line) = held.summary(opts, report.held_back.len()) {
        report.errors.push(line);
    }

    // Most dashboard starts change nothing: then nothing is written. If this write fails, the record on
    // disk is the one above: the cards written this run stay pending, checked again next run.
    if let Err(err) = manifest::write(&root, &manifest, &on_disk) {
        report.errors.push(format!("{err}; the cards written this run stay recorded as pending"));
    }
    fold_card_errors(&mut report.errors);
    report
}

/// Puts the entry for `id` back as the run found it (or takes it out if there was none).
fn restore(manifest: &mut manifest::Manifest, recorded: &manifest::Manifest, id: &str) {
    match recorded.cards.get(id) {
        Some(e) => manifest.cards.insert(id.to_string(), e.clone()),
        None => manifest.cards.remove(id),
    };
}

/// One cause met by many cards (a refused directory) is one line, not one per card.
fn fold_card_errors(errors: &mut Vec<String>) {
    let cause = |line: &str| {
        line.strip_prefix("card ").and_then(|rest| rest.split_once(": ")).map(|(_, cause)| cause.to_string())
    };
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for c in errors.iter().filter_map(|l| cause(l)) {
        *count.entry(c).or_default() += 1;
    }
    let mut said = Vec::new();
    errors.retain_mut(|line| match cause(line) {
        Some(c) if count[&c] > 1 => {
            if said.contains(&c) {
                return false;
            }
            *line = format!("{} cards: {c}", count[&c]);
            said.push(c);
            true
        }
        _ => true,
    });
}

/// Writes the card's two files (connection.yml first: the session file names it) and returns their
/// stamps. Not fsynced: cards are derived data (module docs).
fn write_card(root: &DataRoot, w: &Wanted, created_at: u64) -> Result<Option<(Stamp, Stamp)>> {
    let conn = w.entry.output.join("connection.yml");
    root.write(&conn, &w.connection_json(), false)?;
    root.write(&w.entry.db, &w.db_json(created_at), false)?;
    Ok(stamps(root, &w.entry.db, &w.entry.output))
}

/// The stamps a card is recorded with: its session file and connection.yml, each reached through
/// checked directories only.
fn stamps(root: &DataRoot, db: &Path, output: &Path) -> Option<(Stamp, Stamp)> {
    Some((root.checked_stamp(db)?, root.checked_stamp(&output.join("connection.yml"))?))
}

fn db_stamp(root: &DataRoot, db: &Path) -> Option<Stamp> {
    root.stamp(db.parent()?, Path::new(db.file_name()?))
}

fn conn_stamp(root: &DataRoot, output: &Path) -> Option<Stamp> {
    root.stamp(output.parent()?, &Path::new(output.file_name()?).join("connection.yml"))
}

/// Whether the card's two files are exactly as last written or checked: then it is up to date
/// (OOD marks a session completed by rewriting its file, which changes its stamp). Each stamp is
/// taken in one `fstatat` from the directory the cards share (`batch_connect/db`, the delivery app's
/// `output`); a match is the same device and inode as recorded, so the same file however reached.
fn as_recorded(root: &DataRoot, e: &Entry) -> bool {
    e.stamps.as_ref().is_some_and(|(db, conn)| {
        db_stamp(root, &e.db).as_ref() == Some(db) && conn_stamp(root, &e.output).as_ref() == Some(conn)
    })
}

/// Takes a card's output (its connection.yml and directory) away; false (and the reason in `report`)
/// when the file could not be removed.
fn remove_output(root: &DataRoot, output: &Path, report: &mut CardReport) -> bool {
    let ok = match root.remove(&output.join("connection.yml")) {
        Ok(()) => true,
        Err(err) => {
            report.errors.push(format!("{}: {err}", root.show(output).display()));
            false
        }
    };
    root.remove_empty_dir(output);
    ok
}

/// Takes a card's files away; false (and the reasons in `report`) when one could not be removed.
fn remove_card(root: &DataRoot, id: &str, e: &Entry, report: &mut CardReport) -> bool {
    let mut ok = true;
    for rel in [e.db.clone(), e.output.join("connection.yml")] {
        if let Err(err) = root.remove(&rel) {
            report.errors.push(format!("card {id}: {err}"));
            ok = false;
        }
    }
    root.remove_empty_dir(&e.output);
    ok
}

/// Takes away every card this gem wrote that OOD has since marked completed (its job ended, or the user
/// pressed Cancel), without asking the scheduler: OOD would otherwise keep showing it "Completed". The
/// entry is remembered as dismissed: a share that still lives stays dismissed (Cancel), an ended one is
/// dropped by the next discovery. Runs before each dashboard request, so it reads only the manifest and
/// those session files and never waits: when another discovery holds the lock, it does nothing.
pub fn settle_completed(dataroot: &Path, uid: u32) -> CardReport {
    let mut report = CardReport::default();
    let Ok(root) = DataRoot::open(dataroot, uid) else { return report };
    if manifest::present(&root) != Some(true) {
        return report;
    }
    // Session files share one directory, which the root walks once and remembers.
    let Ok(glance) = manifest::read(&root) else { return report };
    if !glance.cards.values().any(|e| !e.dismissed && !db_as_recorded(&root, e) && marked_completed(&root, &e.db)) {
        return report;
    }
    let Ok(_lock) = manifest::lock(&root, 1) else { return report };
    root.forget();
    let mut manifest = match manifest::read(&root) {
        Ok(m) => m,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    let recorded = manifest.clone();
    for (id, e) in manifest.cards.iter_mut() {
        if !e.dismissed
            && !db_as_recorded(&root, e)
            && marked_completed(&root, &e.db)
            && remove_card(&root, id, e, &mut report)
        {
            e.dismissed = true;
            e.pending = false;
            e.stamps = None;
            report.dismissed.push(id.clone());
        }
    }
    if let Err(e) = manifest::write(&root, &manifest, &recorded) {
        report.errors.push(e.to_string());
    }
    fold_card_errors(&mut report.errors);
    report
}

/// Removes every card this gem wrote under the data root, and its record of them. Other files stay.
pub fn purge(opts: &CardOptions, uid: u32, viewer: &str) -> CardReport {
    let mut report = reconcile(opts, uid, viewer, &[], &Unknown::default());
    // The record goes only after a clean, locked cleanup: else the next run still knows its cards.
    if !report.errors.is_empty() {
        return report;
    }
    if let Ok(root) = DataRoot::open(&opts.dataroot, uid) {
        report.errors.extend(manifest::remove(&root));
    }
    report
}
