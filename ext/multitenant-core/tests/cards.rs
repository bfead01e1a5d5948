//! Card reconciliation on the real filesystem.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{found, uid, walk};
use multitenant_core::cards::{card_id, reconcile, CardOptions, DEFAULT_DELIVERIES};
use multitenant_core::discover::{Found, Unknown};
use multitenant_core::Method;
use serde_json::Value;

const VIEWER: &str = "bob";

struct Fx {
    _tmp: tempfile::TempDir,
    opts: CardOptions,
}

impl Fx {
    /// A per-cluster data root with alice's job 42 delivered as a card on OOD cluster `ood_cluster`.
    fn with_card_on(ood_cluster: &str) -> (Fx, String) {
        let mut fx = Fx::new();
        fx.opts.per_cluster = true;
        fx.opts.cluster_map.insert("mtcluster".into(), ood_cluster.into());
        fx.run(&[found("42", "alice")]);
        (fx, card_id("mtcluster", "42", "alice"))
    }

    fn new() -> Fx {
        let tmp = tempfile::tempdir().unwrap();
        let dataroot = tmp.path().join("ondemand/data/sys/dashboard");
        fs::create_dir_all(&dataroot).unwrap();
        let cluster_map = BTreeMap::from([("mtcluster".to_string(), "ood_mt".to_string())]);
        let deliveries = DEFAULT_DELIVERIES.iter().map(|d| d.to_string()).collect();
        let opts = CardOptions { cluster_map, deliveries, now: 1_700_000_000, ..CardOptions::new(dataroot) };
        Fx { _tmp: tmp, opts }
    }

    fn run(&self, found: &[Found]) -> multitenant_core::cards::CardReport {
        let r = reconcile(&self.opts, nix::unistd::Uid::effective().as_raw(), VIEWER, found, &none());
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        r
    }

    fn db(&self, id: &str) -> PathBuf {
        self.opts.dataroot.join("batch_connect/db").join(id)
    }

    fn conn(&self, id: &str) -> PathBuf {
        self.opts.dataroot.join("batch_connect/sys/multitenant-delivery_default/output").join(id).join("connection.yml")
    }
}

fn none() -> Unknown {
    Unknown::default()
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

#[test]
fn a_card_is_written_the_way_ood_reads_it() {
    let fx = Fx::new();
    let id = card_id("mtcluster", "42", "alice");
    assert_eq!(fx.run(&[found("42", "alice")]).created, vec![id.clone()]);
    let db = json(&fx.db(&id));
    let keys: Vec<&str> = db.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "cache_completed",
            "cluster_id",
            "completed_at",
            "created_at",
            "id",
            "job_id",
            "script_type",
            "title",
            "token"
        ]
    );
    assert_eq!(db["id"], id.as_str());
    assert_eq!(db["created_at"], 1_700_000_000);
    assert!(db["created_at"].is_u64());
    assert_eq!(db["job_id"], "42");
    assert_eq!(db["cluster_id"], "ood_mt");
    assert_eq!(db["token"], "sys/multitenant-delivery_default");
    assert_eq!(db["title"], "alice: Ollama_API");
    assert_eq!(db["script_type"], "basic");
    let conn = json(&fx.conn(&id));
    assert_eq!(conn["ollama_url"], "http://node017:41234");
    assert_eq!(conn["jobid"], "42");
    assert!(conn.as_object().unwrap().values().all(Value::is_string));
    for p in [fx.db(&id), fx.conn(&id)] {
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let leftovers: Vec<_> =
        fs::read_dir(fx.db(&id).parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temp files: {leftovers:?}");
}

#[test]
fn cards_are_updated_and_removed_and_other_files_are_untouched() {
    let fx = Fx::new();
    let own = fx.opts.dataroot.join("batch_connect/db/0f8fad5b-d9cb-469f-a165-70867728950e");
    fs::create_dir_all(own.parent().unwrap()).unwrap();
    fs::write(&own, "{\"my\":\"own session\"}").unwrap();
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    let mut f = found("42", "alice");
    assert_eq!(fx.run(&[f.clone()]).unchanged, vec![id.clone()]);
    f.share.message.connection.insert("port".into(), "5555".into());
    assert_eq!(fx.run(&[f.clone()]).updated, vec![id.clone()]);
    assert_eq!(json(&fx.conn(&id))["port"], "5555");
    assert_eq!(json(&fx.db(&id))["created_at"], 1_700_000_000);
    assert_eq!(fx.run(&[]).removed, vec![id.clone()]);
    assert!(!fx.db(&id).exists() && !fx.conn(&id).exists() && !fx.conn(&id).parent().unwrap().exists());
    assert_eq!(fs::read_to_string(&own).unwrap(), "{\"my\":\"own session\"}");
}

#[test]
fn a_dismissed_card_stays_dismissed_while_its_share_lives() {
    let fx = Fx::new();
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    fs::remove_file(fx.db(&id)).unwrap();
    assert_eq!(fx.run(&[found("42", "alice")]).dismissed, vec![id.clone()]);
    assert!(!fx.conn(&id).exists());
    for _ in 0..3 {
        fx.run(&[found("42", "alice")]);
        assert!(!fx.db(&id).exists());
    }
    assert_eq!(fx.run(&[]).removed, vec![id.clone()]);
    assert_eq!(fx.run(&[found("42", "alice")]).created, vec![id], "a new share of the same job is a new card");
}

#[test]
fn a_run_that_changes_nothing_writes_nothing() {
    let fx = Fx::new();
    fx.run(&[]);
    assert_eq!(fs::read_dir(&fx.opts.dataroot).unwrap().count(), 0, "no shares, no files");
    fx.run(&[found("42", "alice")]);
    let manifest = fx.opts.dataroot.join("multitenant/cards.json");
    let stamp = fs::metadata(&manifest).unwrap().modified().unwrap();
    let db = fs::metadata(fx.db(&card_id("mtcluster", "42", "alice"))).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    fx.run(&[found("42", "alice")]);
    assert_eq!(fs::metadata(&manifest).unwrap().modified().unwrap(), stamp);
    assert_eq!(fs::metadata(fx.db(&card_id("mtcluster", "42", "alice"))).unwrap().modified().unwrap(), db);
}

#[test]
fn no_card_for_the_owner_or_for_form_shares() {
    let fx = Fx::new();
    let mut form = found("43", "carol");
    form.share.message.method = Method::Form;
    let r = fx.run(&[found("42", VIEWER), form]);
    assert!(r.created.is_empty());
    assert!(!fx.opts.dataroot.join("batch_connect").exists());
}

#[test]
fn a_file_it_did_not_write_is_left_alone() {
    let fx = Fx::new();
    let id = card_id("mtcluster", "42", "alice");
    fs::create_dir_all(fx.db(&id).parent().unwrap()).unwrap();
    fs::write(fx.db(&id), "mine").unwrap();
    let r = reconcile(&fx.opts, nix::unistd::Uid::effective().as_raw(), VIEWER, &[found("42", "alice")], &none());
    assert!(r.errors[0].contains("was not written by multitenant: left alone"), "{:?}", r.errors);
    assert_eq!(fs::read_to_string(fx.db(&id)).unwrap(), "mine");
    reconcile(&fx.opts, nix::unistd::Uid::effective().as_raw(), VIEWER, &[], &none());
    assert_eq!(fs::read_to_string(fx.db(&id)).unwrap(), "mine");
}

#[test]
fn per_cluster_data_root_and_cluster_mapping() {
    let mut fx = Fx::new();
    fx.opts.per_cluster = true;
    fx.opts.cluster_map.insert("mtcluster".into(), "hpc".into());
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    assert_eq!(json(&fx.db(&id))["cluster_id"], "hpc");
    assert!(fx
        .opts
        .dataroot
        .join("batch_connect/hpc/sys/multitenant-delivery_default/output")
        .join(&id)
        .join("connection.yml")
        .exists());
    fx.opts.cluster_map.insert("mtcluster".into(), "../x".into());
    let r = reconcile(&fx.opts, nix::unistd::Uid::effective().as_raw(), VIEWER, &[found("42", "alice")], &none());
    assert!(r.errors.iter().any(|e| e.contains("not a clusters.d name")), "{:?}", r.errors);
}

#[test]
fn card_ids_are_uuids_bound_to_the_job() {
    let id = card_id("c", "1", "alice");
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
    assert_ne!(id, card_id("c", "1", "bob"));
    assert_ne!(id, card_id("c", "2", "alice"));
    assert_eq!(id, card_id("c", "1", "alice"));
}

#[test]
fn purge_removes_every_card_it_wrote_and_nothing_else() {
    let fx = Fx::new();
    let own = fx.opts.dataroot.join("batch_connect/db/own-session");
    fx.run(&[found("42", "alice"), found("43", "carol")]);
    fs::write(&own, "{}").unwrap();
    let id = card_id("mtcluster", "42", "alice");
    fs::remove_file(fx.db(&id)).unwrap();
    fx.run(&[found("42", "alice"), found("43", "carol")]); // 42 is now dismissed
    let r = multitenant_core::cards::purge(&fx.opts, nix::unistd::Uid::effective().as_raw(), VIEWER);
    assert_eq!(r.removed.len(), 2, "{r:?}");
    assert!(!fx.opts.dataroot.join("multitenant").exists());
    let left: Vec<_> = fs::read_dir(own.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("own-session")]);
}

#[test]
fn no_card_without_a_cluster_mapping_or_for_a_foreign_delivery_app() {
    let mut fx = Fx::new();
    fx.opts.cluster_map.clear();
    let r = reconcile(&fx.opts, uid(), VIEWER, &[found("42", "alice"), found("43", "carol")], &none());
    assert!(r.created.is_empty());
    assert_eq!(r.errors.len(), 1, "said once, not once per job: {:?}", r.errors);
    assert!(
        r.errors[0].contains("no OOD cluster for Slurm cluster \"mtcluster\": set MULTITENANT_CLUSTERS=mtcluster="),
        "{:?}",
        r.errors
    );
    let fx = Fx::new();
    let mut f = found("42", "alice");
    f.share.message.delivery = "sys/bc_osc_jupyter".into();
    let r = reconcile(&fx.opts, uid(), VIEWER, &[f], &none());
    assert!(r.created.is_empty());
    assert!(r.errors[0].contains("delivery app sys/bc_osc_jupyter is not allowed"), "{:?}", r.errors);
    assert!(!fx.opts.dataroot.join("batch_connect").exists());
}

#[test]
fn cards_of_a_group_whose_keys_failed_are_kept() {
    let fx = Fx::new();
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    let unknown = Unknown { groups: vec!["class101".to_string()], ..Unknown::default() };
    let r = reconcile(&fx.opts, uid(), VIEWER, &[], &unknown);
    assert!(r.removed.is_empty() && r.errors.is_empty(), "{r:?}");
    assert!(fx.db(&id).exists());
    assert_eq!(reconcile(&fx.opts, uid(), VIEWER, &[], &none()).removed, vec![id]);
}

#[test]
fn concurrent_runs_of_one_user_never_leave_an_untracked_card() {
    let fx = std::sync::Arc::new(Fx::new());
    for round in 0..30 {
        let shares = if round % 2 == 0 { vec![found("42", "alice"), found("43", "carol")] } else { vec![] };
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let fx = fx.clone();
                let shares = shares.clone();
                std::thread::spawn(move || reconcile(&fx.opts, uid(), VIEWER, &shares, &none()))
            })
            .collect();
        for t in threads {
            let r = t.join().unwrap();
            assert!(r.errors.is_empty(), "round {round}: {:?}", r.errors);
        }
        let on_disk = fs::read_dir(fx.opts.dataroot.join("batch_connect/db")).map_or(0, |d| d.count());
        assert_eq!(on_disk, shares.len(), "round {round}");
    }
}

#[test]
fn a_directory_others_can_write_is_refused() {
    let fx = Fx::new();
    fs::create_dir_all(fx.opts.dataroot.join("batch_connect")).unwrap();
    fs::set_permissions(fx.opts.dataroot.join("batch_connect"), fs::Permissions::from_mode(0o777)).unwrap();
    let r = reconcile(&fx.opts, uid(), VIEWER, &[found("42", "alice")], &none());
    assert!(r.created.is_empty());
    assert!(r.errors.iter().any(|e| e.contains("writable by others")), "{:?}", r.errors);
}

/// OOD's Cancel (and its completed handling) rewrites the session file with cache_completed: true.
fn mark_completed_as_ood_does(p: &Path) {
    let mut db = json(p);
    db["cache_completed"] = Value::Bool(true);
    db["completed_at"] = Value::from(1_700_000_100u64);
    fs::write(p, serde_json::to_vec(&db).unwrap()).unwrap();
}

#[test]
fn cancel_on_a_live_share_dismisses_its_card() {
    let fx = Fx::new();
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    mark_completed_as_ood_does(&fx.db(&id));

    let r = fx.run(&[found("42", "alice")]);
    assert_eq!(r.dismissed, vec![id.clone()]);
    assert!(!fx.db(&id).exists() && !fx.conn(&id).exists());
    // Dismissed while the share lives, across runs.
    assert_eq!(fx.run(&[found("42", "alice")]).unchanged, vec![id.clone()]);
    assert!(!fx.db(&id).exists());
}

#[test]
fn cards_ood_marked_completed_are_settled_without_the_scheduler() {
    use multitenant_core::cards::settle_completed;
    let fx = Fx::new();
    let (ended, live) = (card_id("mtcluster", "42", "alice"), card_id("mtcluster", "43", "alice"));
    fx.run(&[found("42", "alice"), found("43", "alice")]);
    assert_eq!(settle_completed(&fx.opts.dataroot, uid()), Default::default(), "nothing marked: nothing done");
    mark_completed_as_ood_does(&fx.db(&ended));

    let r = settle_completed(&fx.opts.dataroot, uid());
    assert_eq!((r.dismissed, r.errors), (vec![ended.clone()], vec![]));
    assert!(!fx.db(&ended).exists() && !fx.conn(&ended).exists());
    assert!(fx.db(&live).exists() && fx.conn(&live).exists());
    assert_eq!(settle_completed(&fx.opts.dataroot, uid()).dismissed, Vec::<String>::new());
    // The next discovery drops the ended share's record; the live one is untouched.
    let r = fx.run(&[found("43", "alice")]);
    assert_eq!((r.removed, r.unchanged), (vec![ended], vec![live]));
}

#[test]
fn a_fifo_where_a_card_was_never_blocks_settling() {
    use multitenant_core::cards::settle_completed;
    let fx = Fx::new();
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    fs::remove_file(fx.db(&id)).unwrap();
    nix::unistd::mkfifo(&fx.db(&id), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let r = settle_completed(&fx.opts.dataroot, uid());
    assert!(r.dismissed.is_empty() && r.errors.is_empty());
    assert!(fs::symlink_metadata(fx.db(&id)).unwrap().file_type().is_fifo(), "not ours to touch");
}

#[test]
fn a_card_ood_marked_completed_because_its_job_ended_is_removed() {
    let fx = Fx::new();
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    mark_completed_as_ood_does(&fx.db(&id));
    assert_eq!(fx.run(&[]).removed, vec![id.clone()]);
    assert!(!fx.db(&id).exists() && !fx.conn(&id).exists());
}

/// A uid that is not the viewer's, for hostile layouts (the tests run as root in CI, which may chown).
const OTHER: u32 = 65534;

/// Gives `p` (not what it leads to) to another uid; false when this process may not (not root).
fn give_away(p: &Path) -> bool {
    if uid() != 0 {
        eprintln!("not root: skipping a layout owned by another uid");
        return false;
    }
    std::os::unix::fs::lchown(p, Some(OTHER), Some(OTHER)).unwrap();
    true
}

fn mode(p: &Path, m: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
}

fn count_files(dir: &Path) -> usize {
    walk(dir).len()
}

impl Fx {
    /// A directory next to the data root (the user's project space, say).
    fn elsewhere(&self) -> PathBuf {
        let p = self._tmp.path().join("project/bob/ood");
        fs::create_dir_all(&p).unwrap();
        p
    }

    fn try_run(&self, found: &[Found]) -> multitenant_core::cards::CardReport {
        reconcile(&self.opts, uid(), VIEWER, found, &none())
    }

    fn manifest(&self) -> Vec<u8> {
        fs::read(self.opts.dataroot.join("multitenant/cards.json")).unwrap()
    }
}

#[test]
fn a_umask_0007_layout_gets_cards() {
    let fx = Fx::new();
    // What OOD makes with umask 0007: group-writable directories.
    fs::create_dir_all(fx.opts.dataroot.join("batch_connect/db")).unwrap();
    fs::create_dir_all(fx.opts.dataroot.join("batch_connect/sys")).unwrap();
    for d in ["", "batch_connect", "batch_connect/db", "batch_connect/sys"] {
        mode(&fx.opts.dataroot.join(d), 0o770);
    }
    let id = card_id("mtcluster", "42", "alice");
    assert_eq!(fx.run(&[found("42", "alice")]).created, vec![id.clone()]);
    assert_eq!(json(&fx.db(&id))["job_id"], "42");
    assert!(fx.conn(&id).exists());
    assert_eq!(fx.run(&[]).removed, vec![id.clone()]);
    assert!(!fx.db(&id).exists());
}

#[test]
fn cards_are_written_through_a_symlink_of_yours_to_a_directory_of_yours() {
    for linked in ["batch_connect", "batch_connect/db"] {
        let fx = Fx::new();
        let elsewhere = fx.elsewhere();
        let link = fx.opts.dataroot.join(linked);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let id = card_id("mtcluster", "42", "alice");
        assert_eq!(fx.run(&[found("42", "alice")]).created, vec![id.clone()], "{linked}");
        let through = if linked == "batch_connect" { elsewhere.join("db").join(&id) } else { elsewhere.join(&id) };
        assert_eq!(json(&through)["id"], id.as_str(), "{linked}");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
        assert_eq!(fx.run(&[]).removed, vec![id], "{linked}");
        assert!(!through.exists());
        assert!(elsewhere.exists(), "the linked directory itself stays");
    }
}

#[test]
fn a_symlink_owned_by_another_uid_is_refused() {
    let fx = Fx::new();
    let elsewhere = fx.elsewhere();
    fs::create_dir_all(fx.opts.dataroot.join("batch_connect")).unwrap();
    let link = fx.opts.dataroot.join("batch_connect/db");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    if !give_away(&link) {
        return;
    }
    let r = fx.try_run(&[found("42", "alice"), found("43", "alice")]);
    assert!(r.created.is_empty(), "{r:?}");
    assert_eq!(r.errors.len(), 1, "one cause, one line: {:?}", r.errors);
    assert!(
        r.errors[0].contains("a symlink owned by uid 65534, not by you (uid 0)")
            && r.errors[0].starts_with("2 cards: "),
        "{:?}",
        r.errors
    );
    assert_eq!(count_files(&elsewhere), 0, "nothing written outside the root");
    assert!(!fx.opts.dataroot.join("batch_connect/sys").exists(), "no untracked connection file left");
}

#[test]
fn a_symlink_of_yours_to_a_directory_of_another_uid_is_refused() {
    let fx = Fx::new();
    let elsewhere = fx.elsewhere();
    if !give_away(&elsewhere) {
        return;
    }
    std::os::unix::fs::symlink(&elsewhere, fx.opts.dataroot.join("batch_connect")).unwrap();
    let r = fx.try_run(&[found("42", "alice")]);
    assert!(r.created.is_empty());
    assert!(
        r.errors
            .iter()
            .any(|e| e.contains("your symlink leads to a directory that is owned by uid 65534, not by you (uid 0)")),
        "{:?}",
        r.errors
    );
    assert_eq!(count_files(&elsewhere), 0);
}

#[test]
fn a_directory_of_another_uid_below_the_root_is_refused() {
    let fx = Fx::new();
    let db = fx.opts.dataroot.join("batch_connect/db");
    fs::create_dir_all(&db).unwrap();
    if !give_away(&db) {
        return;
    }
    let r = fx.try_run(&[found("42", "alice")]);
    assert!(r.created.is_empty());
    assert!(r.errors[0].contains("it is owned by uid 65534, not by you (uid 0): make it yours"), "{:?}", r.errors);
    assert_eq!(count_files(&db), 0);
}

#[test]
fn a_data_root_others_can_write_is_refused_unless_sticky() {
    let fx = Fx::new();
    mode(&fx.opts.dataroot, 0o777);
    let r = fx.try_run(&[found("42", "alice")]);
    assert!(r.created.is_empty());
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(
        r.errors[0].starts_with(&format!(
            "data root {} is writable by others (mode 777): chmod o-w",
            fx.opts.dataroot.display()
        )),
        "{:?}",
        r.errors
    );
    assert_eq!(fs::read_dir(&fx.opts.dataroot).unwrap().count(), 0);
    mode(&fx.opts.dataroot, 0o1777);
    assert_eq!(fx.run(&[found("42", "alice")]).created.len(), 1);
}

#[test]
fn a_data_root_of_another_uid_is_refused() {
    let fx = Fx::new();
    if !give_away(&fx.opts.dataroot) {
        return;
    }
    let r = fx.try_run(&[found("42", "alice")]);
    let said = format!("data root {} is not a directory owned by uid 0 (you): it is owned by uid 65534, not by you (uid 0); point OOD's data root at a directory of yours", fx.opts.dataroot.display());
    assert_eq!(r.errors, vec![said]);
    assert_eq!(fs::read_dir(&fx.opts.dataroot).unwrap().count(), 0);
}

#[test]
fn a_data_root_reached_through_a_symlink_is_fine() {
    let fx = Fx::new();
    let link = fx._tmp.path().join("dataroot-link");
    std::os::unix::fs::symlink(&fx.opts.dataroot, &link).unwrap();
    let opts = CardOptions { dataroot: link, ..fx.opts.clone() };
    let r = reconcile(&opts, uid(), VIEWER, &[found("42", "alice")], &none());
    assert_eq!((r.created.len(), r.errors), (1, vec![]));
    assert!(fx.db(&card_id("mtcluster", "42", "alice")).exists());
}

#[test]
fn a_directory_swapped_for_a_symlink_between_runs_cannot_redirect_a_write() {
    let fx = Fx::new();
    let elsewhere = fx.elsewhere();
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    // The card's output dir becomes a symlink (another uid's) to a directory outside the root.
    let out = fx.conn(&id).parent().unwrap().to_path_buf();
    fs::remove_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &out).unwrap();
    if !give_away(&out) {
        return;
    }
    let mut f = found("42", "alice");
    f.share.message.connection.insert("port".into(), "5555".into());
    let r = fx.try_run(&[f.clone()]);
    assert!(r.updated.is_empty() && r.errors.iter().any(|e| e.contains("a symlink owned by uid 65534")), "{r:?}");
    assert_eq!(count_files(&elsewhere), 0, "nothing written through it");
    // The share ends: the card's files are removed, never what the link leads to.
    fs::write(elsewhere.join("connection.yml"), "not yours").unwrap();
    let r = fx.try_run(&[]);
    assert!(!fx.db(&id).exists());
    assert_eq!(fs::read_to_string(elsewhere.join("connection.yml")).unwrap(), "not yours", "{r:?}");
}

#[test]
fn a_file_swapped_for_a_symlink_is_replaced_not_written_through() {
    let fx = Fx::new();
    let victim = fx.elsewhere().join("victim");
    fs::write(&victim, "precious").unwrap();
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    fs::remove_file(fx.conn(&id)).unwrap();
    std::os::unix::fs::symlink(&victim, fx.conn(&id)).unwrap();
    let mut f = found("42", "alice");
    f.share.message.connection.insert("port".into(), "5555".into());
    assert_eq!(fx.run(&[f]).updated, vec![id.clone()]);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert!(fs::symlink_metadata(fx.conn(&id)).unwrap().is_file());
    assert_eq!(json(&fx.conn(&id))["port"], "5555");
}

#[test]
fn unknown_entries_survive_a_reconcile_with_no_found_shares() {
    let fx = Fx::new();
    let (a, b) = (card_id("mtcluster", "42", "alice"), card_id("mtcluster", "43", "carol"));
    fx.run(&[found("42", "alice"), found("43", "carol")]);
    fs::remove_file(fx.db(&b)).unwrap();
    assert_eq!(fx.run(&[found("42", "alice"), found("43", "carol")]).dismissed, vec![b.clone()]);
    let before = fx.manifest();
    for unknown in [
        Unknown { all: true, ..none() },
        Unknown { clusters: vec!["mtcluster".into()], ..none() },
        Unknown { groups: vec!["class101".into()], ..none() },
        Unknown { jobs: vec![("mtcluster".into(), "42".into()), ("mtcluster".into(), "43".into())], ..none() },
    ] {
        let r = reconcile(&fx.opts, uid(), VIEWER, &[], &unknown);
        assert_eq!(r, Default::default(), "{unknown:?}");
        assert_eq!(fx.manifest(), before, "card and dismissal kept: {unknown:?}");
        assert!(fx.db(&a).exists() && fx.conn(&a).exists());
    }
    // Only what is covered stays.
    let r =
        reconcile(&fx.opts, uid(), VIEWER, &[], &Unknown { jobs: vec![("mtcluster".into(), "43".into())], ..none() });
    assert_eq!(r.removed, vec![a.clone()]);
    assert!(!fx.db(&a).exists());
    let r = reconcile(&fx.opts, uid(), VIEWER, &[], &Unknown { jobs: vec![("other".into(), "43".into())], ..none() });
    assert_eq!(r.removed, vec![b]);
}

#[test]
fn caps_hold_back_new_cards_per_owner_and_per_run() {
    let mut fx = Fx::new();
    fx.opts.max_cards_per_owner = 2;
    fx.opts.max_cards = 3;
    let alice: Vec<Found> = ["100", "11", "9", "12", "10"].iter().map(|j| found(j, "alice")).collect();
    let carol = vec![found("7", "carol"), found("8", "carol")];
    let all: Vec<Found> = alice.iter().chain(&carol).cloned().collect();
    let id = |j: &str, o: &str| card_id("mtcluster", j, o);
    let r = fx.try_run(&all);
    let mut created = r.created.clone();
    created.sort();
    let mut expected = vec![id("9", "alice"), id("10", "alice"), id("7", "carol")];
    expected.sort();
    assert_eq!(created, expected, "by owner, then numeric job id");
    let mut held = r.held_back.clone();
    held.sort();
    let mut expected = vec![id("11", "alice"), id("12", "alice"), id("100", "alice"), id("8", "carol")];
    expected.sort();
    assert_eq!(held, expected);
    assert_eq!(
        r.errors,
        vec!["cards: 4 share(s) held back (at most 2 per owner, 3 per run; alice: 3, carol: 1): they stay choices in forms"]
    );
    assert!(!fx.db(&id("11", "alice")).exists());
    assert!(!String::from_utf8(fx.manifest()).unwrap().contains(&id("11", "alice")), "held back is not recorded");

    // Cards already delivered keep their place: a new, lower job id does not push one out.
    let mut more = all.clone();
    more.push(found("1", "alice"));
    let r = fx.try_run(&more);
    assert!(r.created.is_empty() && r.removed.is_empty() && r.dismissed.is_empty(), "{r:?}");
    assert_eq!(r.unchanged.len(), 3);
    assert!(r.held_back.contains(&id("1", "alice")));

    // Raised caps: the held-back shares get their cards (never dismissed).
    fx.opts.max_cards_per_owner = 10;
    fx.opts.max_cards = 50;
    let r = fx.run(&more);
    assert_eq!((r.created.len(), r.held_back.len()), (5, 0));

    // Only the run cap.
    let mut fx = Fx::new();
    fx.opts.max_cards = 1;
    let r = fx.try_run(&carol);
    assert_eq!(r.created, vec![id("7", "carol")]);
    assert_eq!(r.errors, vec!["cards: 1 share(s) held back (at most 1 per run; carol: 1): they stay choices in forms"]);

    // A card left as it is because its share is unknown this run keeps its place too.
    let mut other_group = found("5", "dave");
    other_group.share.group = "class102".into();
    let unknown = Unknown { groups: vec!["class101".into()], ..none() };
    let r = reconcile(&fx.opts, uid(), VIEWER, &[other_group], &unknown);
    assert_eq!((r.created.len(), r.removed.len(), r.held_back), (0, 0, vec![id("5", "dave")]));
}

#[test]
fn a_spent_write_budget_holds_back_new_cards_and_keeps_existing_ones() {
    let mut fx = Fx::new();
    let (a, b) = (card_id("mtcluster", "42", "alice"), card_id("mtcluster", "43", "alice"));
    fx.run(&[found("42", "alice")]);
    let card = fs::read(fx.conn(&a)).unwrap();
    fx.opts.write_budget = std::time::Duration::ZERO;
    let mut changed = found("42", "alice");
    changed.share.message.connection.insert("port".into(), "5555".into());
    let r = fx.try_run(&[changed.clone(), found("43", "alice")]);
    assert!(r.created.is_empty() && r.updated.is_empty() && r.removed.is_empty(), "{r:?}");
    assert_eq!(r.held_back, vec![a.clone(), b.clone()]);
    assert_eq!(
        r.errors,
        vec!["cards: 2 share(s) held back (write budget of 0 s spent; alice: 2): they stay choices in forms"]
    );
    assert_eq!(fs::read(fx.conn(&a)).unwrap(), card, "the existing card stays as it was");
    assert!(fx.db(&a).exists() && !fx.db(&b).exists());
    // Unchanged cards need no writing: not held back.
    assert_eq!(fx.try_run(&[found("42", "alice")]).unchanged, vec![a.clone()]);
    fx.opts.write_budget = std::time::Duration::from_secs(2);
    let r = fx.run(&[changed, found("43", "alice")]);
    assert_eq!((r.updated, r.created), (vec![a], vec![b]));
}

#[test]
fn a_failed_write_keeps_the_old_card_and_its_record() {
    let (mut fx, id) = Fx::with_card_on("hpc");
    let before = fx.manifest();
    let old_conn = fx.opts.dataroot.join("batch_connect/hpc/sys/multitenant-delivery_default/output").join(&id);
    assert!(old_conn.join("connection.yml").exists());
    // The card moves to another OOD cluster id, whose directory cannot be written.
    fx.opts.cluster_map.insert("mtcluster".into(), "hpc2".into());
    fs::write(fx.opts.dataroot.join("batch_connect/hpc2"), "a file where a directory should be").unwrap();
    let r = fx.try_run(&[found("42", "alice")]);
    assert!(r.updated.is_empty() && r.removed.is_empty(), "{r:?}");
    assert!(r.errors.iter().any(|e| e.contains("batch_connect/hpc2: not a directory")), "{:?}", r.errors);
    assert!(old_conn.join("connection.yml").exists(), "the old card stays whole");
    assert_eq!(json(&fx.db(&id))["cluster_id"], "hpc");
    assert_eq!(fx.manifest(), before);
    fs::remove_file(fx.opts.dataroot.join("batch_connect/hpc2")).unwrap();
    assert_eq!(fx.run(&[found("42", "alice")]).updated, vec![id.clone()]);
    assert_eq!(json(&fx.db(&id))["cluster_id"], "hpc2");
    assert!(!old_conn.exists());
}

#[test]
fn an_unreadable_manifest_is_never_overwritten() {
    let fx = Fx::new();
    fx.run(&[found("42", "alice")]);
    fs::write(fx.opts.dataroot.join("multitenant/cards.json"), "{not json").unwrap();
    let r = fx.try_run(&[found("43", "carol")]);
    assert!(r.created.is_empty());
    assert!(r.errors[0].contains("unreadable") && r.errors[0].contains("move it aside"), "{:?}", r.errors);
    assert_eq!(fx.manifest(), b"{not json");
}

/// A viewer other than root, for layouts where root's directories must differ from the viewer's (the
/// tests run as root in CI; as root, root's directories are the viewer's own).
const VIEWER_UID: u32 = 4242;

/// Gives `p` and everything below it (not what a symlink leads to) to `owner`.
fn chown_tree(p: &Path, owner: u32) {
    std::os::unix::fs::lchown(p, Some(owner), Some(owner)).unwrap();
    if fs::symlink_metadata(p).unwrap().is_dir() {
        for e in fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), owner);
        }
    }
}

/// `/tmp/…/home/bob/ondemand/…` (the data root) and `/tmp/…/proj/lab`, a project space.
fn project_layout(tmp: &Path) -> (PathBuf, PathBuf) {
    let dataroot = tmp.join("home/bob/ondemand/data/sys/dashboard");
    fs::create_dir_all(&dataroot).unwrap();
    let lab = tmp.join("proj/lab");
    fs::create_dir_all(&lab).unwrap();
    (dataroot, lab)
}

fn project_opts(dataroot: PathBuf) -> CardOptions {
    let cluster_map = BTreeMap::from([("mtcluster".to_string(), "ood_mt".to_string())]);
    CardOptions { cluster_map, now: 1_700_000_000, ..CardOptions::new(dataroot) }
}

#[test]
fn a_symlink_whose_target_passes_through_a_directory_of_another_uid_is_refused() {
    if uid() != 0 {
        eprintln!("not root: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (dataroot, lab) = project_layout(tmp.path());
    let private = tmp.path().join("home/bob/private");
    fs::create_dir_all(&private).unwrap();
    mode(&private, 0o700);
    // The lab's project space, writable by lab members (here: another uid's), and the viewer's own
    // project-space move, as the README suggests.
    std::os::unix::fs::lchown(&lab, Some(OTHER), Some(OTHER)).unwrap();
    let link = dataroot.join("batch_connect");
    std::os::unix::fs::symlink(lab.join("bob/bc"), &link).unwrap();
    // A lab member renamed `bob` aside and planted their own `bob/bc` leading to a directory of the viewer.
    fs::create_dir(lab.join("bob")).unwrap();
    std::os::unix::fs::symlink(&private, lab.join("bob/bc")).unwrap();
    chown_tree(&lab.join("bob"), OTHER);

    let r = reconcile(&project_opts(dataroot.clone()), 0, VIEWER, &[found("42", "alice")], &none());
    assert!(walk(&private).is_empty(), "a directory the attacker chose received a card: {r:?}");
    assert!(r.created.is_empty(), "{r:?}");
    let said = format!(
        "refusing {}: its target passes through {}, owned by uid 65534 (mode 755), not by you (uid 0) or root: point the symlink along a path only you and root can change",
        link.display(),
        lab.display()
    );
    assert!(r.errors.iter().any(|e| e.ends_with(&said)), "{:?}", r.errors);
    assert_eq!(r.errors.len(), 1, "one cause, one line: {:?}", r.errors);
}

#[test]
fn a_symlink_whose_target_passes_through_a_group_writable_directory_of_root_is_refused_unless_sticky() {
    if uid() != 0 {
        eprintln!("not root: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (dataroot, lab) = project_layout(tmp.path());
    // The viewer (not root here) made their project-space directory, and the card directories in it;
    // root's /proj/lab is the lab's (2770).
    let bc = lab.join("bob/bc");
    let id = card_id("mtcluster", "42", "alice");
    fs::create_dir_all(bc.join("db")).unwrap();
    fs::create_dir_all(bc.join("sys/multitenant-delivery_default/output").join(&id)).unwrap();
    fs::create_dir_all(dataroot.join("multitenant")).unwrap();
    let link = dataroot.join("batch_connect");
    std::os::unix::fs::symlink(&bc, &link).unwrap();
    chown_tree(&tmp.path().join("home/bob"), VIEWER_UID);
    chown_tree(&lab.join("bob"), VIEWER_UID);
    mode(&lab, 0o2770);

    let opts = project_opts(dataroot.clone());
    let r = reconcile(&opts, VIEWER_UID, VIEWER, &[found("42", "alice")], &none());
    assert!(r.created.is_empty(), "{r:?}");
    let said = format!(
        "refusing {}: its target passes through {}, which others can write (mode 2770, owner uid 0): point the symlink along a path only you and root can change",
        link.display(),
        lab.display()
    );
    assert!(r.errors.iter().any(|e| e.ends_with(&said)), "{:?}", r.errors);
    assert!(walk(&bc).is_empty(), "nothing written");

    // Sticky, a lab member can no longer rename the viewer's `bob`: the card goes through (the
    // viewer's own `bob` may be group-writable: they chose so, as umask 0007 does).
    mode(&lab, 0o3770);
    mode(&lab.join("bob"), 0o2770);
    let r = reconcile(&opts, VIEWER_UID, VIEWER, &[found("42", "alice")], &none());
    assert_eq!((r.created, r.errors), (vec![id.clone()], vec![]));
    assert!(bc.join("db").join(&id).exists());
}

#[test]
fn cards_are_written_through_a_symlink_into_a_project_space_made_under_umask_0007() {
    let fx = Fx::new();
    // `umask 0007 && mkdir -p ~/project-space/ood && ln -s …`: group-writable directories of the viewer
    // on the way, reached through a relative symlink of the viewer's on the way too.
    let project = fx._tmp.path().join("project-space/ood");
    fs::create_dir_all(&project).unwrap();
    mode(&project, 0o770);
    mode(project.parent().unwrap(), 0o770);
    std::os::unix::fs::symlink("project-space", fx._tmp.path().join("ps")).unwrap();
    let link = fx.opts.dataroot.join("batch_connect");
    std::os::unix::fs::symlink(fx._tmp.path().join("ondemand/../ps/./ood/"), &link).unwrap();
    let id = card_id("mtcluster", "42", "alice");
    assert_eq!(fx.run(&[found("42", "alice")]).created, vec![id.clone()]);
    assert_eq!(json(&project.join("db").join(&id))["id"], id.as_str());
    assert_eq!(fx.run(&[]).removed, vec![id.clone()]);
    assert!(!project.join("db").join(&id).exists());
}

#[test]
fn a_symlink_loop_or_a_dangling_symlink_is_refused() {
    let fx = Fx::new();
    let link = fx.opts.dataroot.join("batch_connect");
    std::os::unix::fs::symlink("loop", &link).unwrap();
    std::os::unix::fs::symlink("batch_connect", fx.opts.dataroot.join("loop")).unwrap();
    let r = fx.try_run(&[found("42", "alice")]);
    assert!(r.created.is_empty());
    assert!(
        r.errors.iter().any(|e| e
            .contains(&format!("refusing {}: its target goes through more than 8 symlinks (a loop?)", link.display()))),
        "{:?}",
        r.errors
    );
    fs::remove_file(fx.opts.dataroot.join("loop")).unwrap();
    let r = fx.try_run(&[found("42", "alice")]);
    assert!(
        r.errors.iter().any(|e| e.contains(&format!(
            "your symlink leads nowhere ({} does not exist)",
            fx.opts.dataroot.join("loop").display()
        ))),
        "{:?}",
        r.errors
    );
}

#[test]
fn a_manifest_that_cannot_be_written_leaves_a_moving_card_as_it_was_and_nothing_untracked() {
    let (mut fx, id) = Fx::with_card_on("hpc");
    let before = fx.manifest();
    let output = |c: &str| {
        fx.opts.dataroot.join("batch_connect").join(c).join("sys/multitenant-delivery_default/output").join(&id)
    };
    let (old, new) = (output("hpc"), output("hpc2"));
    let old_conn = fs::read(old.join("connection.yml")).unwrap();
    // The manifest cannot be replaced this run (full disk, quota…: here a directory that cannot change).
    let mdir = fx.opts.dataroot.join("multitenant");
    let freeze = |on: bool| {
        if uid() == 0 {
            std::process::Command::new("chattr")
                .arg(if on { "+i" } else { "-i" })
                .arg(&mdir)
                .status()
                .is_ok_and(|s| s.success())
        } else {
            mode(&mdir, if on { 0o500 } else { 0o700 });
            true
        }
    };
    if !freeze(true) {
        eprintln!("chattr +i unsupported here: skipped");
        return;
    }
    fx.opts.cluster_map.insert("mtcluster".into(), "hpc2".into());
    let r = fx.try_run(&[found("42", "alice")]);
    assert!(freeze(false));
    assert!(r.updated.is_empty(), "{r:?}");
    // A move is recorded (pending, with its old output) before anything is written: nothing is.
    assert!(r.errors.iter().any(|e| e.ends_with(": no card written anew this run")), "{:?}", r.errors);
    // As the last good run left it.
    assert_eq!(fx.manifest(), before);
    assert_eq!(fs::read(old.join("connection.yml")).unwrap(), old_conn);
    assert_eq!(json(&fx.db(&id))["cluster_id"], "hpc");
    assert!(!new.exists(), "the new output, which nothing records, is taken back");
    // The next run moves it; when the share ends, nothing is left behind.
    assert_eq!(fx.run(&[found("42", "alice")]).updated, vec![id.clone()]);
    assert!(new.join("connection.yml").exists() && !old.exists());
    assert_eq!(json(&fx.db(&id))["cluster_id"], "hpc2");
    assert_eq!(fx.run(&[]).removed, vec![id]);
    let left: Vec<_> = walk(&fx.opts.dataroot.join("batch_connect")).into_iter().filter(|p| p.is_file()).collect();
    assert!(left.is_empty(), "untracked card files left behind: {left:?}");
}

#[test]
fn a_card_emptied_by_a_power_loss_is_rewritten_by_the_next_run() {
    // Card files are not fsynced (derived data): after a power loss one may be empty. The next run
    // sees its stamp changed, finds it is not OOD's JSON, and writes it again.
    let fx = Fx::new();
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    let (db, conn) = (fs::read(fx.db(&id)).unwrap(), fs::read(fx.conn(&id)).unwrap());
    fs::write(fx.db(&id), b"").unwrap();
    let r = fx.run(&[found("42", "alice")]);
    assert_eq!(r.updated, vec![id.clone()]);
    assert_eq!(fs::read(fx.db(&id)).unwrap(), db);
    fs::write(fx.conn(&id), b"").unwrap();
    assert_eq!(fx.run(&[found("42", "alice")]).updated, vec![id.clone()]);
    assert_eq!(fs::read(fx.conn(&id)).unwrap(), conn);
    assert_eq!(fx.run(&[found("42", "alice")]).unchanged, vec![id]);
}

#[test]
fn a_card_ood_rewrote_unmarked_is_checked_then_trusted_again() {
    // OOD rewriting a session file without marking it (its stamp changes) costs one read, then the
    // new stamp is recorded and the card is up to date again.
    let fx = Fx::new();
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    let mut db = json(&fx.db(&id));
    db["created_at"] = Value::from(1_700_000_001u64);
    fs::write(fx.db(&id), serde_json::to_vec(&db).unwrap()).unwrap();
    assert_eq!(fx.run(&[found("42", "alice")]).unchanged, vec![id.clone()]);
    assert_eq!(json(&fx.db(&id))["created_at"], 1_700_000_001u64);
    let manifest = fx.opts.dataroot.join("multitenant/cards.json");
    let before = fs::read(&manifest).unwrap();
    assert_eq!(fx.run(&[found("42", "alice")]).unchanged, vec![id.clone()]);
    assert_eq!(fs::read(&manifest).unwrap(), before, "nothing changed: nothing written");
    // Marking it completed is still seen.
    mark_completed_as_ood_does(&fx.db(&id));
    assert_eq!(fx.run(&[found("42", "alice")]).dismissed, vec![id]);
}

#[test]
fn new_cards_are_recorded_before_they_are_written_so_a_killed_run_leaves_nothing_stray() {
    // A run killed after recording its new cards as pending, with one card's files written and the
    // other's not: the next run takes the files as its own and finishes, or takes them away.
    let fx = Fx::new();
    let (a, b) = (card_id("mtcluster", "42", "alice"), card_id("mtcluster", "43", "alice"));
    fx.run(&[found("42", "alice"), found("43", "alice")]);
    let manifest = fx.opts.dataroot.join("multitenant/cards.json");
    let mut m = json(&manifest);
    for id in [&a, &b] {
        let e = m["cards"][id.as_str()].as_object_mut().unwrap();
        e.insert("pending".into(), Value::Bool(true));
        e.remove("stamps");
    }
    fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    fs::remove_file(fx.db(&b)).unwrap();
    fs::write(fx.conn(&a), b"half").unwrap();

    // Job 43's share has ended meanwhile; job 42's is still there.
    let r = fx.run(&[found("42", "alice")]);
    assert_eq!(r.created, vec![a.clone()], "{r:?}");
    assert!(r.removed.is_empty(), "a card never delivered is not reported removed: {r:?}");
    assert!(fx.conn(&a).exists() && json(&fx.conn(&a))["jobid"] == "42");
    assert!(!fx.conn(&b).exists() && !fx.db(&b).exists());
    let m = json(&manifest);
    assert_eq!(m["cards"].as_object().unwrap().keys().collect::<Vec<_>>(), vec![&a]);
    assert!(m["cards"][a.as_str()].get("pending").is_none());
}
