//! Card reconciliation on the real filesystem.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::ollama;
use multitenant_core::cards::{card_id, reconcile, CardOptions, DEFAULT_DELIVERIES};
use multitenant_core::discover::{Found, Job};
use multitenant_core::{Method, Share};
use serde_json::Value;

const VIEWER: &str = "bob";

fn found(job_id: &str, owner: &str) -> Found {
    let job = Job { id: job_id.into(), owner: owner.into(), cluster: "mtcluster".into(), name: String::new(), restarts: 0 };
    let share = Share {
        prefix: "mt".into(),
        group: "class101".into(),
        version: "1".into(),
        key_id: None,
        message: ollama(),
        size: 300,
    };
    Found { job, share }
}

struct Fx {
    _tmp: tempfile::TempDir,
    opts: CardOptions,
}

impl Fx {
    fn new() -> Fx {
        let tmp = tempfile::tempdir().unwrap();
        let dataroot = tmp.path().join("ondemand/data/sys/dashboard");
        fs::create_dir_all(&dataroot).unwrap();
        let cluster_map = BTreeMap::from([("mtcluster".to_string(), "ood_mt".to_string())]);
        let deliveries = DEFAULT_DELIVERIES.iter().map(|d| d.to_string()).collect();
        let opts = CardOptions { dataroot, per_cluster: false, cluster_map, deliveries, now: 1_700_000_000 };
        Fx { _tmp: tmp, opts }
    }

    fn run(&self, found: &[Found]) -> multitenant_core::cards::CardReport {
        let r = reconcile(&self.opts, nix::unistd::Uid::effective().as_raw(), VIEWER, found, &[]);
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
    assert_eq!(db["title"], "Ollama_API from alice");
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
fn symlinks_inside_the_data_root_are_never_followed() {
    let fx = Fx::new();
    let elsewhere = fx.opts.dataroot.parent().unwrap().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::create_dir_all(fx.opts.dataroot.join("batch_connect")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, fx.opts.dataroot.join("batch_connect/db")).unwrap();
    let r = reconcile(&fx.opts, nix::unistd::Uid::effective().as_raw(), VIEWER, &[found("42", "alice")], &[]);
    assert!(r.created.is_empty());
    assert!(r.errors.iter().any(|e| e.contains("is a symlink")), "{:?}", r.errors);
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn a_file_it_did_not_write_is_left_alone() {
    let fx = Fx::new();
    let id = card_id("mtcluster", "42", "alice");
    fs::create_dir_all(fx.db(&id).parent().unwrap()).unwrap();
    fs::write(fx.db(&id), "mine").unwrap();
    let r = reconcile(&fx.opts, nix::unistd::Uid::effective().as_raw(), VIEWER, &[found("42", "alice")], &[]);
    assert!(r.errors[0].contains("was not written by multitenant: left alone"), "{:?}", r.errors);
    assert_eq!(fs::read_to_string(fx.db(&id)).unwrap(), "mine");
    reconcile(&fx.opts, nix::unistd::Uid::effective().as_raw(), VIEWER, &[], &[]);
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
    let r = reconcile(&fx.opts, nix::unistd::Uid::effective().as_raw(), VIEWER, &[found("42", "alice")], &[]);
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

fn uid() -> u32 {
    nix::unistd::Uid::effective().as_raw()
}

#[test]
fn no_card_without_a_cluster_mapping_or_for_a_foreign_delivery_app() {
    let mut fx = Fx::new();
    fx.opts.cluster_map.clear();
    let r = reconcile(&fx.opts, uid(), VIEWER, &[found("42", "alice"), found("43", "carol")], &[]);
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
    let r = reconcile(&fx.opts, uid(), VIEWER, &[f], &[]);
    assert!(r.created.is_empty());
    assert!(r.errors[0].contains("delivery app sys/bc_osc_jupyter is not allowed"), "{:?}", r.errors);
    assert!(!fx.opts.dataroot.join("batch_connect").exists());
}

#[test]
fn cards_of_a_group_whose_keys_failed_are_kept() {
    let fx = Fx::new();
    let id = card_id("mtcluster", "42", "alice");
    fx.run(&[found("42", "alice")]);
    let r = reconcile(&fx.opts, uid(), VIEWER, &[], &["class101".to_string()]);
    assert!(r.removed.is_empty() && r.errors.is_empty(), "{r:?}");
    assert!(fx.db(&id).exists());
    assert_eq!(reconcile(&fx.opts, uid(), VIEWER, &[], &[]).removed, vec![id]);
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
                std::thread::spawn(move || reconcile(&fx.opts, uid(), VIEWER, &shares, &[]))
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
    let r = reconcile(&fx.opts, uid(), VIEWER, &[found("42", "alice")], &[]);
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
