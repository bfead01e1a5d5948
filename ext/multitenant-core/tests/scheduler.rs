//! Both discovery strategies against recorded scheduler output, through fake `squeue`/`sacct`
//! commands (the real ones are exercised by the integration specs on the test cluster).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

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
    common::executable(&dir.join(name), &script);
}

fn args(dir: &Path, name: &str) -> Vec<String> {
    fs::read_to_string(dir.join(format!("{name}.args"))).unwrap().lines().map(String::from).collect()
}

fn job(id: &str, owner: &str, name: &str, nodes: &str) -> Job {
    Job {
        id: id.into(),
        owner: owner.into(),
        cluster: "mtcluster".into(),
        name: name.into(),
        restarts: 0,
        nodes: nodes.into(),
    }
}

#[test]
fn squeue_keeps_only_the_exact_wckey_and_checks_every_field() {
    let dir = tempfile::tempdir().unwrap();
    fake(
        dir.path(),
        "squeue",
        "1SEPmtownerSEPmultitenantSEPmtclusterSEP0SEPnode[01-02],gpu1SEPmt|g|1.abcTERM\n\
         2SEPmtdefaultSEP*multitenantSEPmtclusterSEP0SEPnode1SEPmt|g|1.defTERM\n\
         3SEPbobSEPpersonalSEPmtclusterSEP0SEPnode1SEPplainTERM\n\
         4SEPeveSEPmultitenantSEPmtclusterSEP2SEPnode3SEPx\n5|mtowner|multitenant|mtcluster|0|node1|forgedTERM\n\
         not-a-numberSEPaSEPmultitenantSEPcSEP0SEPnode1SEPnTERM\n\
         6SEPbad user!SEPmultitenantSEPmtclusterSEP0SEPnode1SEPnTERM\n\
         7SEPeveSEPmultitenantSEPmt cluster?SEP0SEPnode1SEPnTERM\n\
         8SEPeveSEPmultitenantSEPmtclusterSEPxSEPnode1SEPnTERM\n\
         9SEPeveSEPmultitenantSEPmtclusterSEP0SEPnTERM\n",
    );
    let l = running_jobs(&Scheduler::default().with_bin_dir(dir.path()), Strategy::Squeue, "MultiTenant").unwrap();
    let mut four = job("4", "eve", "x\n5|mtowner|multitenant|mtcluster|0|node1|forged", "node3");
    four.restarts = 2;
    // Job 9's record lacks a field (its node list): dropped, never shifted.
    assert_eq!(l.jobs, vec![job("1", "mtowner", "mt|g|1.abc", "node[01-02],gpu1"), four]);
    let format = args(dir.path(), "squeue").into_iter().find(|a| a.starts_with("JobID:")).unwrap();
    assert!(format.contains(",NodeList:@f") && format.contains(",Name:@mt"), "{format}");
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
        "CLUSTER: mtbeta\n1SEPmtownerSEPmultitenantSEPmtbetaSEP0SEPmtbeta1SEPmt|g|1.abcTERM\n\
         2SEPmtownerSEPmultitenantSEPmtclusterSEP0SEPnode1SEPmt|g|1.defTERM\n",
    );
    let s = Scheduler::default().with_bin_dir(dir.path()).with_cluster("mtbeta");
    let l = running_jobs(&s, Strategy::Squeue, "multitenant").unwrap();
    assert_eq!(l.jobs.len(), 1, "{l:?}");
    assert_eq!(
        (l.jobs[0].id.as_str(), l.jobs[0].cluster.as_str(), l.jobs[0].nodes.as_str()),
        ("1", "mtbeta", "mtbeta1")
    );
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
        "10SEPaliceSEP0SEPn[1-4]SEPmt|g|1.aaaTERM\n11SEPmallorySEP0SEPn1SEPmt|g|1.bbbTERM\n12SEPcarolSEP0SEPn1SEPmt|g|1.cccTERM\n",
    );
    let l = running_jobs(&Scheduler::default().with_bin_dir(dir.path()), Strategy::SacctSqueue, "multitenant").unwrap();
    // The nodes come from squeue, with the name and restart count of the same run.
    assert_eq!(l.jobs, vec![job("10", "alice", "mt|g|1.aaa", "n[1-4]")]);
    assert!(args(dir.path(), "squeue").contains(&"--all".to_string()));
}

#[test]
fn a_runaway_job_in_accounting_has_ended() {
    let dir = tempfile::tempdir().unwrap();
    fake(dir.path(), "sacct", "10SEPaliceSEPmtclusterSEPmultitenant\n");
    // Recorded: squeue --jobs <an id slurmctld does not know> (Slurm 22.05).
    common::executable(
        &dir.path().join("squeue"),
        "#!/bin/sh\necho 'slurm_load_jobs error: Invalid job id specified' >&2\nexit 1\n",
    );
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
    common::executable(
        &dir.path().join("squeue"),
        "#!/bin/sh\necho 'squeue: error: Unable to contact slurm controller (connect failure)' >&2\nexit 1\n",
    );
    let s = Scheduler::default().with_bin_dir(dir.path());
    let e = running_jobs(&s, Strategy::Squeue, "multitenant").unwrap_err();
    assert_eq!(e.to_string(), "squeue: squeue: error: Unable to contact slurm controller (connect failure)");

    fake(dir.path(), "squeue", "1SEPaSEPmultitenantSEPcSEP0SEPn1SEPmt|g|1.aTERM\n");
    let body = fs::read_to_string(dir.path().join("squeue")).unwrap();
    common::executable(
        &dir.path().join("squeue"),
        &body.replace("#!/bin/sh\n", "#!/bin/sh\necho 'squeue: warning: x' >&2\n"),
    );
    let l = running_jobs(&s, Strategy::Squeue, "multitenant").unwrap();
    assert_eq!((l.jobs.len(), l.warnings), (1, vec!["squeue: warning: x".to_string()]));
}

#[test]
fn through_a_submit_host_the_remote_shell_gets_each_word_and_a_scrubbed_environment() {
    let dir = tempfile::tempdir().unwrap();
    common::executable(
        &dir.path().join("squeue"),
        "#!/bin/sh\nenv | grep -E '^(SLURM|SQUEUE|SACCT|SCONTROL|SINFO)_' | sort\nprintf '[%s]' \"$@\"\n",
    );
    let remote = |s: &Scheduler| {
        let (p, a, c) = s.command_line("squeue", &["-O", "JobID:@x|y@", "it's"]).unwrap();
        assert_eq!((p, c), (PathBuf::from("ssh"), None));
        let opts = ["-p", "2222", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=/dev/null", "-o"];
        assert_eq!(a[..7], opts);
        assert_eq!(a[7..11], ["StrictHostKeyChecking=no", "-o", "LogLevel=ERROR", "login1"]);
        // As sshd hands the words to the remote login shell: one line, in the user's environment.
        let out = Command::new("sh")
            .arg("-c")
            .arg(a[11..].join(" "))
            .env("SQUEUE_PARTITION", "hidden")
            .env("SCONTROL_ALL", "1")
            .env("SACCT_LOCAL", "1")
            .env("SLURM_CONF", "/remote/slurm.conf")
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let s =
        Scheduler::default().with_bin_dir(dir.path()).with_cluster("beta").with_submit_host("login1", false, "2222");
    assert_eq!(remote(&s), "SLURM_CONF=/remote/slurm.conf\n[-O][JobID:@x|y@][it's][-M][beta]");
    let s = s.with_conf("/etc/b $(touch x).conf");
    assert_eq!(remote(&s), "SLURM_CONF=/etc/b $(touch x).conf\n[-O][JobID:@x|y@][it's][-M][beta]");
}
