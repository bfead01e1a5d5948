//! Break-it review: the final manifest write fails after the pending record was written (disk full,
//! quota: here RLIMIT_FSIZE between the two manifests' sizes). Its own test binary, since the limit
//! is per process.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::{found, uid, walk};
use multitenant_core::cards::{card_id, reconcile, CardOptions, CardReport, DEFAULT_DELIVERIES};
use multitenant_core::discover::{Found, Unknown};
use nix::libc;

fn fx(tmp: &Path, ood: &str) -> CardOptions {
    let dataroot = tmp.join("ondemand/data/sys/dashboard");
    fs::create_dir_all(&dataroot).unwrap();
    let cluster_map = BTreeMap::from([("mtcluster".to_string(), ood.to_string())]);
    let deliveries = DEFAULT_DELIVERIES.iter().map(|d| d.to_string()).collect();
    CardOptions { cluster_map, deliveries, now: 1_700_000_000, per_cluster: true, ..CardOptions::new(dataroot) }
}

fn run(opts: &CardOptions, found: &[Found]) -> CardReport {
    reconcile(opts, uid(), "bob", found, &Unknown::default())
}

fn file_size_limit(bytes: Option<u64>) {
    let lim = bytes.unwrap_or(libc::RLIM_INFINITY);
    let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe {
        libc::getrlimit(libc::RLIMIT_FSIZE, &mut cur);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let new = libc::rlimit { rlim_cur: lim as libc::rlim_t, rlim_max: cur.rlim_max };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &new), 0);
    }
}

/// A run moves card a (its Slurm cluster now maps to another OOD cluster id) and creates card b. The
/// pending record (a's new entry, b pending) is written; b's files are written; the final manifest
/// write fails. The run then "puts the moved card back" (old session file restored, new output
/// removed) believing the manifest still records the old output: it records the new one. The old
/// output is left untracked, and no later run takes it away.
#[test]
fn a_failed_final_manifest_write_after_a_move_and_a_new_card_leaves_nothing_untracked() {
    let shares = [found("42", "alice"), found("43", "alice")];
    // The size of the final manifest of that run, measured on a scratch copy.
    let scratch = tempfile::tempdir().unwrap();
    let mut opts = fx(scratch.path(), "hpc");
    run(&opts, &shares[..1]);
    opts.cluster_map.insert("mtcluster".into(), "hpc2".into());
    let r = run(&opts, &shares);
    assert_eq!((r.updated.len(), r.created.len()), (1, 1), "{r:?}");
    let full = fs::metadata(opts.dataroot.join("multitenant/cards.json")).unwrap().len();

    let tmp = tempfile::tempdir().unwrap();
    let mut opts = fx(tmp.path(), "hpc");
    run(&opts, &shares[..1]);
    let a = card_id("mtcluster", "42", "alice");
    let old = opts.dataroot.join("batch_connect/hpc/sys/multitenant-delivery_default/output").join(&a);
    assert!(old.join("connection.yml").exists());
    opts.cluster_map.insert("mtcluster".into(), "hpc2".into());
    // The pending record (b without stamps) fits; the final one (b's stamps) does not.
    file_size_limit(Some(full - 60));
    let r = run(&opts, &shares);
    file_size_limit(None);
    assert!(
        r.errors.iter().any(|e| e.contains("the cards written this run stay recorded as pending")),
        "window missed: {r:?}"
    );
    let manifest = fs::read_to_string(opts.dataroot.join("multitenant/cards.json")).unwrap();
    let says_new_output = manifest.contains("batch_connect/hpc2/");
    let db: serde_json::Value =
        serde_json::from_slice(&fs::read(opts.dataroot.join("batch_connect/db").join(&a)).unwrap()).unwrap();
    eprintln!("after the failed run: manifest names hpc2: {says_new_output}; session file names {}", db["cluster_id"]);

    run(&opts, &shares);
    run(&opts, &[]);
    let left = walk(&opts.dataroot.join("batch_connect"));
    assert_eq!(left, Vec::<PathBuf>::new(), "card files no run will ever take away");
}
