//! Break-it review of the card changes (pending records, stamps, manifest written only on change):
//! runs killed at chosen points are simulated by editing the manifest and the files the way the
//! killed run would have left them; then the next runs must repair, never leave a file untracked,
//! never trust a file that is not ours.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{found, uid, walk};
use multitenant_core::cards::{card_id, reconcile, CardOptions, CardReport, DEFAULT_DELIVERIES};
use multitenant_core::discover::{Found, Unknown};
use serde_json::Value;

const VIEWER: &str = "bob";
const OTHER: u32 = 65534;

struct Fx {
    tmp: tempfile::TempDir,
    opts: CardOptions,
}

impl Fx {
    fn new() -> Fx {
        let tmp = tempfile::tempdir().unwrap();
        let dataroot = tmp.path().join("ondemand/data/sys/dashboard");
        fs::create_dir_all(&dataroot).unwrap();
        let cluster_map = BTreeMap::from([("mtcluster".to_string(), "ood_mt".to_string())]);
        let deliveries = DEFAULT_DELIVERIES.iter().map(|d| d.to_string()).collect();
        let opts = CardOptions { cluster_map, deliveries, now: 1_700_000_000, ..CardOptions::new(dataroot) };
        Fx { tmp, opts }
    }

    /// Per-cluster data root, Slurm's mtcluster mapped to `ood`.
    fn per_cluster(ood: &str) -> Fx {
        let mut fx = Fx::new();
        fx.opts.per_cluster = true;
        fx.opts.cluster_map.insert("mtcluster".into(), ood.into());
        fx
    }

    fn try_run(&self, found: &[Found]) -> CardReport {
        reconcile(&self.opts, uid(), VIEWER, found, &Unknown::default())
    }

    fn run(&self, found: &[Found]) -> CardReport {
        let r = self.try_run(found);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        r
    }

    fn manifest_path(&self) -> PathBuf {
        self.opts.dataroot.join("multitenant/cards.json")
    }

    fn manifest(&self) -> Value {
        serde_json::from_slice(&fs::read(self.manifest_path()).unwrap()).unwrap()
    }

    /// Edits the manifest as a killed run would have left it.
    fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut m = self.manifest();
        f(&mut m);
        fs::write(self.manifest_path(), serde_json::to_vec(&m).unwrap()).unwrap();
    }

    fn make_pending(&self, id: &str) {
        self.edit(|m| {
            let e = m["cards"][id].as_object_mut().unwrap();
            e.insert("pending".into(), Value::Bool(true));
            e.remove("stamps");
        });
    }

    fn db(&self, id: &str) -> PathBuf {
        self.opts.dataroot.join("batch_connect/db").join(id)
    }

    fn conn(&self, id: &str) -> PathBuf {
        let mut p = self.opts.dataroot.join("batch_connect");
        if self.opts.per_cluster {
            p.push(&self.opts.cluster_map["mtcluster"]);
        }
        p.join("sys/multitenant-delivery_default/output").join(id).join("connection.yml")
    }

    /// Every card file (not directory) under batch_connect.
    fn card_files(&self) -> Vec<PathBuf> {
        walk(&self.opts.dataroot.join("batch_connect"))
    }

    /// The card files the manifest does not record.
    fn untracked(&self) -> Vec<PathBuf> {
        let m = self.manifest();
        let recorded: Vec<PathBuf> = m["cards"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|e| {
                [
                    self.opts.dataroot.join(e["db"].as_str().unwrap()),
                    self.opts.dataroot.join(e["output"].as_str().unwrap()).join("connection.yml"),
                ]
            })
            .collect();
        self.card_files().into_iter().filter(|p| !recorded.contains(p)).collect()
    }
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

/// A run killed after its new card's files were written but before the manifest cleared `pending`;
/// before the next run the card's output moves (the site maps the Slurm cluster to another OOD
/// cluster id, or the publisher re-publishes with another delivery app). The killed run's
/// connection.yml, at the old output, is ours: the next runs must take it away, not forget it.
#[test]
fn a_pending_card_whose_output_moved_before_the_next_run_leaves_no_untracked_file() {
    let mut fx = Fx::per_cluster("hpc");
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    let old_conn = fx.conn(&id);
    fx.make_pending(&id);

    fx.opts.cluster_map.insert("mtcluster".into(), "hpc2".into());
    let r = fx.run(&[found("42", "alice")]);
    assert_eq!(r.created, vec![id.clone()]);
    assert_eq!(fx.untracked(), Vec::<PathBuf>::new(), "the killed run's output is no longer recorded");
    fx.run(&[]);
    assert!(!old_conn.exists(), "left for good at {}", old_conn.display());
    assert_eq!(fx.card_files(), Vec::<PathBuf>::new());
}

/// A run killed after its pending record was synced, while it moved a delivered card (the record holds
/// a's new entry, pending, with its old output as stale; new output and session file written) and
/// before the old output was taken away. The old output is ours and must go.
#[test]
fn a_run_killed_after_the_pending_record_while_a_card_moved_leaves_nothing_untracked() {
    let mut fx = Fx::per_cluster("hpc");
    let (a, b) = (card_id("mtcluster", "42", "alice"), card_id("mtcluster", "43", "alice"));
    fx.run(&[found("42", "alice")]);
    let old_conn = fx.conn(&a);
    let old_body = fs::read(&old_conn).unwrap();

    // The run that moves card a and creates card b; its state at the kill is rebuilt below: the
    // pending record holds a's new entry (written before the kill) and b pending; the old output is
    // still there; b's files were not written yet.
    fx.opts.cluster_map.insert("mtcluster".into(), "hpc2".into());
    let r = fx.run(&[found("42", "alice"), found("43", "alice")]);
    assert_eq!((r.updated.clone(), r.created.clone()), (vec![a.clone()], vec![b.clone()]));
    fs::create_dir_all(old_conn.parent().unwrap()).unwrap();
    fs::write(&old_conn, &old_body).unwrap();
    let stale = old_conn.parent().unwrap().strip_prefix(&fx.opts.dataroot).unwrap().to_str().unwrap().to_string();
    fx.make_pending(&a);
    fx.edit(|m| {
        m["cards"][a.as_str()].as_object_mut().unwrap().insert("stale".into(), Value::String(stale.clone()));
    });
    fx.make_pending(&b);
    fs::remove_file(fx.db(&b)).unwrap();
    fs::remove_file(fx.conn(&b)).unwrap();

    // The next runs: the same shares, then none.
    fx.run(&[found("42", "alice"), found("43", "alice")]);
    fx.run(&[]);
    assert_eq!(fx.card_files(), Vec::<PathBuf>::new(), "files of ours no run will ever take away");
}

/// A run killed after writing a new card's files (pending in the manifest). The next run takes it up
/// again (pending: its files are ours) but its write budget runs out in the second phase, after the
/// pending record was written and before this card's turn: the entry is then dropped ("never
/// written: nothing of it to keep"), yet the killed run's files are there. From then on the card is
/// "not written by multitenant" and stays for good. Budgets are scanned to hit that window.
#[test]
fn a_pending_card_cut_by_the_write_budget_keeps_its_record_while_its_files_exist() {
    let zed = found("999", "zed"); // considered last: owners in order
    let z = card_id("mtcluster", "999", "zed");
    let others: Vec<Found> = (0..150).map(|i| found(&(1000 + i).to_string(), "alice")).collect();
    for micros in (200..40_000).step_by(400) {
        let mut fx = Fx::new();
        fx.opts.max_cards = 10_000;
        fx.opts.max_cards_per_owner = 10_000;
        fx.run(std::slice::from_ref(&zed));
        fx.make_pending(&z);
        fx.opts.write_budget = Duration::from_micros(micros);
        let mut all = others.clone();
        all.push(zed.clone());
        let r = fx.try_run(&all);
        let recorded = fx.manifest()["cards"].get(&z).is_some();
        let files = fx.db(&z).exists() || fx.conn(&z).exists();
        if files && !recorded {
            // What the user sees from then on.
            fx.opts.write_budget = Duration::from_secs(5);
            let next = fx.try_run(&all);
            panic!(
                "budget {micros} µs: card {z} held back {:?}, its files kept but its record dropped; next run: {:?}",
                r.held_back.contains(&z),
                next.errors
            );
        }
        if r.created.len() == all.len() {
            break;
        }
    }
}

/// A group member (the data root's directories are 0770 under OOD's umask 0007) swaps an unchanged
/// card's output directory for a symlink of theirs to a directory holding a connection.yml of theirs.
/// Before the change the next run refused the symlink ("a symlink owned by uid …", the card reported);
/// now the slow path's stamp follows it (fstatat resolves the `<id>` component), finds a non-empty
/// file, records its stamp and calls the card unchanged: OOD shows the attacker's values, silently,
/// at every later start.
#[test]
fn a_foreign_symlink_swapped_in_for_an_unchanged_cards_output_dir_is_not_trusted() {
    if uid() != 0 {
        eprintln!("not root: skipped");
        return;
    }
    let fx = Fx::new();
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    let out = fx.conn(&id).parent().unwrap().to_path_buf();
    let evil = fx.tmp.path().join("mallory");
    fs::create_dir_all(&evil).unwrap();
    let mut conn = json(&fx.conn(&id));
    conn["ollama_url"] = Value::from("http://evil.example:80");
    fs::write(evil.join("connection.yml"), serde_json::to_vec(&conn).unwrap()).unwrap();
    for p in [evil.join("connection.yml"), evil.clone()] {
        std::os::unix::fs::lchown(&p, Some(OTHER), Some(OTHER)).unwrap();
    }
    fs::remove_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&evil, &out).unwrap();
    std::os::unix::fs::lchown(&out, Some(OTHER), Some(OTHER)).unwrap();

    let r = fx.try_run(&[found("42", "alice")]);
    assert!(!r.unchanged.contains(&id), "the foreign symlink's file is trusted as the card: {r:?}");
    assert!(r.errors.iter().any(|e| e.contains("a symlink owned by uid 65534")), "{r:?}");
}

/// A run killed before clearing `pending` leaves a card OOD shows. The user presses Cancel on it; the
/// next dashboard request settles it (removed, entry dismissed, still pending). The next discovery
/// takes the pending entry as a new card and writes it again: the user's Cancel is lost.
#[test]
fn cancel_on_a_card_a_killed_run_left_pending_is_not_undone_by_the_next_run() {
    use multitenant_core::cards::settle_completed;
    let fx = Fx::new();
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    fx.make_pending(&id);
    let mut db = json(&fx.db(&id));
    db["cache_completed"] = Value::Bool(true);
    db["completed_at"] = Value::from(1_700_000_100u64);
    fs::write(fx.db(&id), serde_json::to_vec(&db).unwrap()).unwrap();
    let s = settle_completed(&fx.opts.dataroot, uid());
    assert_eq!(s.dismissed, vec![id.clone()], "{s:?}");
    let r = fx.run(&[found("42", "alice")]);
    assert!(r.created.is_empty() && !fx.db(&id).exists(), "the cancelled card is back: {r:?}");
}
