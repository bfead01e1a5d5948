//! Both discovery strategies against recorded scheduler output, through fake `squeue`/`sacct`
//! commands (the real ones are exercised by the integration specs on the test cluster).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use multitenant_core::discover::{running_jobs, Job, Strategy};
use multitenant_core::Scheduler;

/// A fake command that prints `body`, with TERM replaced by the record terminator it was asked for.
fn fake(dir: &Path, name: &str, body: &str) {
    let script = format!(
        "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in *Name:*) term=\"${{a##*Name:}}\";; esac; done\nprintf '%s' '{}' | sed \"s/TERM/$term/g\"\n",
        body.replace('\'', "'\\''")
    );
    let path = dir.join(name);
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn job(id: &str, owner: &str, name: &str) -> Job {
    Job { id: id.into(), owner: owner.into(), cluster: "mtcluster".into(), name: name.into(), restarts: 0 }
}

#[test]
fn squeue_keeps_only_the_exact_wckey() {
    let dir = tempfile::tempdir().unwrap();
    fake(
        dir.path(),
        "squeue",
        "1|mtowner|multitenant|mtcluster|mt|g|1.abcTERM\n2|mtdefault|*multitenant|mtcluster|mt|g|1.defTERM\n3|bob|personal|mtcluster|plainTERM\n4|eve|multitenant|mtcluster|x\n5|mtowner|multitenant|mtcluster|forgedTERM\nnot-a-number|a|multitenant|c|nTERM\n",
    );
    let jobs = running_jobs(&Scheduler::default().with_bin_dir(dir.path()), Strategy::Squeue, "MultiTenant").unwrap();
    assert_eq!(
        jobs,
        vec![job("1", "mtowner", "mt|g|1.abc"), job("4", "eve", "x\n5|mtowner|multitenant|mtcluster|forged")]
    );
}

#[test]
fn sacct_then_squeue_requires_the_owners_to_agree() {
    let dir = tempfile::tempdir().unwrap();
    fake(
        dir.path(),
        "sacct",
        "10|alice|mtcluster|multitenant\n11|bob|mtcluster|multitenant\n12|carol|mtcluster|*multitenant\n",
    );
    fake(dir.path(), "squeue", "10|alice|mt|g|1.aaaTERM\n11|mallory|mt|g|1.bbbTERM\n12|carol|mt|g|1.cccTERM\n");
    let jobs =
        running_jobs(&Scheduler::default().with_bin_dir(dir.path()), Strategy::SacctSqueue, "multitenant").unwrap();
    assert_eq!(jobs, vec![job("10", "alice", "mt|g|1.aaa")]);
}

#[test]
fn no_accounted_job_means_no_squeue_call() {
    let dir = tempfile::tempdir().unwrap();
    fake(dir.path(), "sacct", "");
    let jobs =
        running_jobs(&Scheduler::default().with_bin_dir(dir.path()), Strategy::SacctSqueue, "multitenant").unwrap();
    assert!(jobs.is_empty());
}

#[test]
fn a_failing_scheduler_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    fake(dir.path(), "squeue", "");
    fs::write(
        dir.path().join("squeue"),
        "#!/bin/sh\necho 'squeue: error: Unable to contact slurm controller' >&2\nexit 1\n",
    )
    .unwrap();
    let e = running_jobs(&Scheduler::default().with_bin_dir(dir.path()), Strategy::Squeue, "multitenant").unwrap_err();
    assert_eq!(e.to_string(), "squeue: squeue: error: Unable to contact slurm controller");
}
