//! Both discovery strategies against recorded scheduler output, through fake `squeue`/`sacct`
//! commands (the real ones are exercised by the integration specs on the test cluster).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use multitenant_core::discover::{running_jobs, Job, Strategy};
use multitenant_core::Scheduler;

/// A fake command that records its arguments in `<dir>/<name>.args` and prints `body`, with SEP and
/// TERM replaced by the field separator and record terminator it was asked for (squeue's `-O JobID:<sep>,
/// …,Name:<term>`, sacct's `--delimiter=<sep>`).
fn fake(dir: &Path, name: &str, body: &str) {
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$0.args\"\nfor a in \"$@\"; do case \"$a\" in *Name:*) term=\"${{a##*Name:}}\"; sep=\"${{a#JobID:}}\"; sep=\"${{sep%%,*}}\";; --delimiter=*) sep=\"${{a#--delimiter=}}\";; esac; done\nprintf '%s' '{}' | sed \"s/TERM/$term/g; s/SEP/$sep/g\"\n",
        body.replace('\'', "'\\''")
    );
    let path = dir.join(name);
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn args(dir: &Path, name: &str) -> Vec<String> {
    fs::read_to_string(dir.join(format!("{name}.args"))).unwrap().lines().map(String::from).collect()
}

fn job(id: &str, owner: &str, name: &str) -> Job {
    Job { id: id.into(), owner: owner.into(), cluster: "mtcluster".into(), name: name.into(), restarts: 0 }
}

#[test]
fn squeue_keeps_only_the_exact_wckey_and_checks_every_field() {
    let dir = tempfile::tempdir().unwrap();
    fake(
        dir.path(),
        "squeue",
        "1SEPmtownerSEPmultitenantSEPmtclusterSEP0SEPmt|g|1.abcTERM\n\
         2SEPmtdefaultSEP*multitenantSEPmtclusterSEP0SEPmt|g|1.defTERM\n\
         3SEPbobSEPpersonalSEPmtclusterSEP0SEPplainTERM\n\
         4SEPeveSEPmultitenantSEPmtclusterSEP2SEPx\n5|mtowner|multitenant|mtcluster|0|forgedTERM\n\
         not-a-numberSEPaSEPmultitenantSEPcSEP0SEPnTERM\n\
         6SEPbad user!SEPmultitenantSEPmtclusterSEP0SEPnTERM\n\
         7SEPeveSEPmultitenantSEPmt cluster?SEP0SEPnTERM\n\
         8SEPeveSEPmultitenantSEPmtclusterSEPxSEPnTERM\n",
    );
    let l = running_jobs(&Scheduler::default().with_bin_dir(dir.path()), Strategy::Squeue, "MultiTenant").unwrap();
    let mut four = job("4", "eve", "x\n5|mtowner|multitenant|mtcluster|0|forged");
    four.restarts = 2;
    assert_eq!(l.jobs, vec![job("1", "mtowner", "mt|g|1.abc"), four]);
    // As OOD's adapter asks: --all, so hidden partitions and other groups' partitions are listed too.
    assert_eq!(args(dir.path(), "squeue")[..3], ["--all", "--noheader", "--states=RUNNING"]);
}

#[test]
fn squeue_on_a_named_cluster_reads_past_the_cluster_header() {
    let dir = tempfile::tempdir().unwrap();
    // Slurm 22.05 prints `CLUSTER: mtbeta` first with a header (not with --noheader); either way it is read past.
    fake(
        dir.path(),
        "squeue",
        "CLUSTER: mtbeta\n1SEPmtownerSEPmultitenantSEPmtbetaSEP0SEPmt|g|1.abcTERM\n\
         2SEPmtownerSEPmultitenantSEPmtclusterSEP0SEPmt|g|1.defTERM\n",
    );
    let s = Scheduler::default().with_bin_dir(dir.path()).with_cluster("mtbeta");
    let l = running_jobs(&s, Strategy::Squeue, "multitenant").unwrap();
    assert_eq!(l.jobs.len(), 1, "{l:?}");
    assert_eq!((l.jobs[0].id.as_str(), l.jobs[0].cluster.as_str()), ("1", "mtbeta"));
    assert_eq!(args(dir.path(), "squeue")[5..], ["-M", "mtbeta"]);
}

#[test]
fn sacct_then_squeue_requires_the_owners_to_agree() {
    let dir = tempfile::tempdir().unwrap();
    fake(
        dir.path(),
        "sacct",
        "10SEPaliceSEPmtclusterSEPmultitenant\n11SEPbobSEPmtclusterSEPmultitenant\n12SEPcarolSEPmtclusterSEP*multitenant\n13SEPdaveSEPmtclusterSEPmulti|x\n",
    );
    fake(
        dir.path(),
        "squeue",
        "10SEPaliceSEP0SEPmt|g|1.aaaTERM\n11SEPmallorySEP0SEPmt|g|1.bbbTERM\n12SEPcarolSEP0SEPmt|g|1.cccTERM\n",
    );
    let l = running_jobs(&Scheduler::default().with_bin_dir(dir.path()), Strategy::SacctSqueue, "multitenant").unwrap();
    assert_eq!(l.jobs, vec![job("10", "alice", "mt|g|1.aaa")]);
    assert!(args(dir.path(), "squeue").contains(&"--all".to_string()));
}

#[test]
fn a_runaway_job_in_accounting_has_ended() {
    let dir = tempfile::tempdir().unwrap();
    fake(dir.path(), "sacct", "10SEPaliceSEPmtclusterSEPmultitenant\n");
    // Recorded: squeue --jobs <an id slurmctld does not know> (Slurm 22.05).
    fs::write(
        dir.path().join("squeue"),
        "#!/bin/sh\necho 'slurm_load_jobs error: Invalid job id specified' >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(dir.path().join("squeue"), fs::Permissions::from_mode(0o755)).unwrap();
    let l = running_jobs(&Scheduler::default().with_bin_dir(dir.path()), Strategy::SacctSqueue, "multitenant").unwrap();
    assert!(l.jobs.is_empty());
}

#[test]
fn no_accounted_job_means_no_squeue_call() {
    let dir = tempfile::tempdir().unwrap();
    fake(dir.path(), "sacct", "");
    let l = running_jobs(&Scheduler::default().with_bin_dir(dir.path()), Strategy::SacctSqueue, "multitenant").unwrap();
    assert!(l.jobs.is_empty());
    assert!(!dir.path().join("squeue.args").exists());
}

#[test]
fn a_failing_scheduler_is_one_error_and_a_warning_is_not() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("squeue"),
        "#!/bin/sh\necho 'squeue: error: Unable to contact slurm controller (connect failure)' >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(dir.path().join("squeue"), fs::Permissions::from_mode(0o755)).unwrap();
    let s = Scheduler::default().with_bin_dir(dir.path());
    let e = running_jobs(&s, Strategy::Squeue, "multitenant").unwrap_err();
    assert_eq!(e.to_string(), "squeue: squeue: error: Unable to contact slurm controller (connect failure)");

    fake(dir.path(), "squeue", "1SEPaSEPmultitenantSEPcSEP0SEPmt|g|1.aTERM\n");
    let body = fs::read_to_string(dir.path().join("squeue")).unwrap();
    fs::write(dir.path().join("squeue"), body.replace("#!/bin/sh\n", "#!/bin/sh\necho 'squeue: warning: x' >&2\n"))
        .unwrap();
    let l = running_jobs(&s, Strategy::Squeue, "multitenant").unwrap();
    assert_eq!((l.jobs.len(), l.warnings), (1, vec!["squeue: warning: x".to_string()]));
}
