//! Attacks from an adversarial review of discovery across clusters, through ssh and on the data root;
//! each was a real defect that is now fixed, or an attack that held up.
//!
//! Fake Slurm clients are small shell scripts in a temp `bin` dir (`job.bin`); a fake `ssh` is put
//! first on PATH (the call site runs plain `ssh`): it prints the warning OpenSSH prints on every
//! connection with `UserKnownHostsFile=/dev/null`, drops its options, and hands the joined remote
//! words to `sh -c`, as sshd hands them to the remote login shell.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use common::found;
use multitenant_core::cards::{card_id, reconcile, CardOptions, DEFAULT_DELIVERIES};
use multitenant_core::discover::{discover, running_jobs, Options, Strategy, Target, Unknown, Viewer};
use multitenant_core::hostlist::Domains;
use multitenant_core::{KeyDir, Scheduler};

const OTHER: u32 = 65534;

fn uid() -> u32 {
    nix::unistd::Uid::effective().as_raw()
}

fn script(dir: &Path, name: &str, body: &str) {
    common::executable(&dir.join(name), &format!("#!/bin/sh\n{body}\n"));
}

/// Puts a fake `ssh` first on PATH, once for this test binary.
fn fake_ssh() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        script(
            &dir,
            "ssh",
            r#"echo "Warning: Permanently added 'login1' (ED25519) to the list of known hosts." >&2
# -p PORT -o OPTION … HOST
while [ "$1" = -p ] || [ "$1" = -o ]; do shift 2; done; shift
# What the remote login's dotfiles may export (the viewer's own environment on the submit host).
export SACCT_LOCAL=1 SQUEUE_PARTITION=hidden SINFO_PARTITION=x SCONTROL_ALL=1 SACCT_FORMAT=x
exec sh -c "$*""#,
        );
        let path = std::env::var("PATH").unwrap_or_default();
        std::env::set_var("PATH", format!("{}:{path}", dir.display()));
    });
}

/// Shell that extracts the separator/terminator from squeue's `-O` argument into $S and $T.
const SQUEUE_SEP: &str = r#"F=""; prev=""
for a in "$@"; do if [ "$prev" = "-O" ]; then F="$a"; fi; prev="$a"; done
S="${F#JobID:}"; S="${S%%,*}"; T="${F##*Name:}""#;
/// Shell that extracts sacct's `--delimiter=` into $S.
const SACCT_SEP: &str = r#"for a in "$@"; do case "$a" in --delimiter=*) S="${a#--delimiter=}";; esac; done"#;

fn viewer_in(group: &str, gid: u32) -> Viewer {
    Viewer {
        name: "viewer".into(),
        uid: uid(),
        gids: vec![gid],
        groups: BTreeMap::from([(group.to_string(), gid)]),
        unresolved: false,
    }
}

fn options(strategy: Strategy, keys: &Path) -> Options {
    Options {
        strategy,
        wckey: "multitenant".into(),
        key_dir: KeyDir::new(keys),
        legacy: false,
        now: Some(1_700_000_000),
        budget: Duration::from_secs(5),
        host_domains: Domains::from_setting(&["cluster.example.edu"]).unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// (3) Unknown: what a run could not decide must not be "ended".
// ---------------------------------------------------------------------------------------------

/// With strategy sacct, squeue resolves the owner's name on the OOD host; when NSS does not answer,
/// Slurm's client prints the uid. The owner then disagrees with accounting's: the job is unknown
/// (its card and dismissal stay), never silently ended.
#[test]
fn sacct_owner_the_controller_cannot_resolve_is_unknown_not_ended() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    script(&bin, "sacct", &format!("{SACCT_SEP}\nprintf '5%salice%salpha%smultitenant\\n' \"$S\" \"$S\" \"$S\""));
    script(
        &bin,
        "squeue",
        &format!(
            "{SQUEUE_SEP}\nprintf '5%s1001%s0%snode1%smt|grp|2.AAAAAAAAAAAA%s\\n' \"$S\" \"$S\" \"$S\" \"$S\" \"$T\""
        ),
    );
    let t = Target { name: None, sched: Scheduler::default().with_bin_dir(&bin), problem: None };
    let d = discover(&[t], &viewer_in("grp", 4242), &options(Strategy::SacctSqueue, tmp.path()));
    let decided = d.found.iter().any(|f| f.job.id == "5");
    assert!(
        decided || d.unknown.covers("alpha", "grp", "5"),
        "job 5 is running (accounting says so) but was silently dropped: its card would be removed; {d:?}"
    );
}

/// With strategy squeue a numeric owner is looked up, not found, and the job is unknown.
#[test]
fn squeue_owner_that_cannot_be_resolved_is_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    script(
        &bin,
        "squeue",
        &format!("{SQUEUE_SEP}\nprintf '5%s1001%smultitenant%salpha%s0%snode1%smt|grp|2.AAAAAAAAAAAA%s\\n' \"$S\" \"$S\" \"$S\" \"$S\" \"$S\" \"$S\" \"$T\""),
    );
    let t = Target { name: None, sched: Scheduler::default().with_bin_dir(&bin), problem: None };
    let d = discover(&[t], &viewer_in("grp", 4242), &options(Strategy::Squeue, tmp.path()));
    assert!(d.unknown.covers("alpha", "grp", "5"), "{d:?}");
}

/// Through a submit_host a wrapper may speak before Slurm on stderr (OpenSSH's "Permanently added"
/// line): a job accounting lists but the controller no longer knows still counts as ended.
#[test]
fn a_runaway_job_through_ssh_has_ended_and_does_not_fail_the_cluster() {
    fake_ssh();
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    script(&bin, "sacct", &format!("{SACCT_SEP}\nprintf '77%salice%salpha%smultitenant\\n' \"$S\" \"$S\" \"$S\""));
    script(&bin, "squeue", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1");
    let sched = Scheduler::default().with_bin_dir(&bin).with_submit_host("login1", false, "22");
    let r = running_jobs(&sched, Strategy::SacctSqueue, "multitenant");
    assert!(r.as_ref().is_ok_and(|l| l.jobs.is_empty()), "a runaway job must not fail the cluster: {r:?}");
}

#[test]
fn a_runaway_job_without_ssh_has_ended() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    script(&bin, "sacct", &format!("{SACCT_SEP}\nprintf '77%salice%salpha%smultitenant\\n' \"$S\" \"$S\" \"$S\""));
    script(&bin, "squeue", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1");
    let sched = Scheduler::default().with_bin_dir(&bin);
    let r = running_jobs(&sched, Strategy::SacctSqueue, "multitenant").unwrap();
    assert!(r.jobs.is_empty());
}

// ---------------------------------------------------------------------------------------------
// (4) ssh quoting and the env scrub.
// ---------------------------------------------------------------------------------------------

/// through ssh, the random separators and a hostile job name survive the remote shell, and a
/// name full of shell syntax is data (nothing runs).
#[test]
fn through_ssh_fields_survive_and_a_hostile_name_runs_nothing() {
    fake_ssh();
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let pwned = tmp.path().join("pwned");
    // The name is printed by squeue; the -O argument came through the remote shell.
    script(
        &bin,
        "squeue",
        &format!(
            "{SQUEUE_SEP}\nprintf '9%salice%smultitenant%sbeta%s2%snode[1-2]%s%s%s\\n' \"$S\" \"$S\" \"$S\" \"$S\" \"$S\" \"$S\" \"x';touch {}; echo '\" \"$T\"",
            pwned.display()
        ),
    );
    let sched = Scheduler::default()
        .with_bin_dir(&bin)
        .with_cluster("beta")
        .with_conf("/etc/slurm $(touch /tmp/x)/slurm.conf")
        .with_submit_host("login1", false, "22");
    let l = running_jobs(&sched, Strategy::Squeue, "multitenant").unwrap();
    assert_eq!(l.jobs.len(), 1, "{l:?}");
    assert_eq!((l.jobs[0].id.as_str(), l.jobs[0].cluster.as_str(), l.jobs[0].restarts), ("9", "beta", 2));
    assert_eq!(l.jobs[0].nodes, "node[1-2]");
    assert!(!pwned.exists());
    // The fake ssh speaks like OpenSSH without LogLevel=ERROR: its line is only a warning.
    assert!(l.warnings.iter().any(|w| w.starts_with("Warning: Permanently added")), "{l:?}");
}

/// Through ssh the scrub is by prefix, as it is locally: no SLURM_/SQUEUE_/SACCT_/SCONTROL_/SINFO_
/// variable from the viewer's dotfiles on the submit host reaches the command.
#[test]
fn through_ssh_no_slurm_client_variable_reaches_the_command() {
    fake_ssh();
    let sched = Scheduler::default().with_submit_host("login1", false, "22");
    let out = sched.run("sh", &["-c", "env | grep -E '^(SLURM|SQUEUE|SACCT|SCONTROL|SINFO)_' | sort"]).unwrap();
    assert_eq!(out, "", "client variables reached the remote command");
}

/// A word shlex cannot quote (it holds NUL) fails the call instead of vanishing from the remote line
/// (which would run against the submit host's default configuration).
#[test]
fn a_word_the_remote_shell_cannot_take_fails_the_call() {
    let s = Scheduler::default().with_conf("/etc/slurm-beta\0/slurm.conf").with_submit_host("login1", true, "22");
    let e = s.command_line("squeue", &["--all"]).unwrap_err().to_string();
    assert!(e.starts_with("submit_host \"login1\": cannot pass"), "{e}");
}

#[test]
fn a_submit_host_ssh_would_read_as_an_option_is_refused() {
    let s = Scheduler::default().with_submit_host("-oProxyCommand=touch /tmp/mt-pwned", true, "22");
    assert!(s.command_line("squeue", &[]).is_err());
    assert!(s.run("squeue", &[]).is_err());
}

// ---------------------------------------------------------------------------------------------
// (5) bounds
// ---------------------------------------------------------------------------------------------

/// With strategy sacct the two calls share one deadline: one cluster takes at most one timeout.
#[test]
fn one_query_takes_at_most_one_timeout_even_with_two_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    script(
        &bin,
        "sacct",
        &format!("{SACCT_SEP}\nsleep 0.7\nprintf '5%salice%salpha%smultitenant\\n' \"$S\" \"$S\" \"$S\""),
    );
    script(
        &bin,
        "squeue",
        &format!("{SQUEUE_SEP}\nsleep 0.7\nprintf '5%salice%s0%snode1%sname%s\\n' \"$S\" \"$S\" \"$S\" \"$S\" \"$T\""),
    );
    let sched = Scheduler::default().with_bin_dir(&bin).with_timeout(Duration::from_secs(1));
    let t = Instant::now();
    let r = running_jobs(&sched, Strategy::SacctSqueue, "multitenant");
    let took = t.elapsed();
    assert!(took < Duration::from_millis(1100), "one cluster took {took:?} with a 1 s timeout (answer: {r:?})");
}

// ---------------------------------------------------------------------------------------------
// (1) the data root
// ---------------------------------------------------------------------------------------------

fn card_opts(dataroot: PathBuf) -> CardOptions {
    let cluster_map = BTreeMap::from([("mtcluster".to_string(), "ood_mt".to_string())]);
    let deliveries = DEFAULT_DELIVERIES.iter().map(|d| d.to_string()).collect();
    CardOptions { cluster_map, deliveries, now: 1_700_000_000, ..CardOptions::new(dataroot) }
}

fn manifest_path(dataroot: &Path) -> PathBuf {
    dataroot.join("multitenant/cards.json")
}

/// a FIFO planted where the manifest is fails at once (O_NONBLOCK, then not a regular file).
#[test]
fn a_fifo_as_manifest_does_not_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let dataroot = tmp.path().join("dashboard");
    fs::create_dir_all(dataroot.join("multitenant")).unwrap();
    nix::unistd::mkfifo(&manifest_path(&dataroot), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let t = Instant::now();
    let r = reconcile(&card_opts(dataroot.clone()), uid(), "bob", &[found("42", "alice")], &Unknown::default());
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(r.created.is_empty() && !r.errors.is_empty(), "{r:?}");
}

/// a huge manifest (sparse, 9 MB) is refused by its size without reading it, and kept.
#[test]
fn a_huge_manifest_is_refused_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dataroot = tmp.path().join("dashboard");
    fs::create_dir_all(dataroot.join("multitenant")).unwrap();
    let f = fs::File::create(manifest_path(&dataroot)).unwrap();
    f.set_len(9 * 1024 * 1024).unwrap();
    let r = reconcile(&card_opts(dataroot.clone()), uid(), "bob", &[found("42", "alice")], &Unknown::default());
    assert!(r.created.is_empty() && r.errors.iter().any(|e| e.contains("larger than")), "{r:?}");
    assert_eq!(fs::metadata(manifest_path(&dataroot)).unwrap().len(), 9 * 1024 * 1024);
}

/// a manifest another uid owns (planted, or a hard link) is not trusted, and nothing it lists
/// is removed.
#[test]
fn a_manifest_of_another_uid_is_refused() {
    if uid() != 0 {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dataroot = tmp.path().join("dashboard");
    fs::create_dir_all(dataroot.join("multitenant")).unwrap();
    let victim = dataroot.join("batch_connect/db/mine");
    fs::create_dir_all(victim.parent().unwrap()).unwrap();
    fs::write(&victim, "{}").unwrap();
    let planted = r#"{"version":1,"cards":{"x":{"job_id":"1","group":"g","cluster":"mtcluster","owner":"eve",
        "db":"batch_connect/db/mine","output":"batch_connect/x","digest":"d","created_at":0}}}"#;
    fs::write(manifest_path(&dataroot), planted).unwrap();
    std::os::unix::fs::lchown(manifest_path(&dataroot), Some(OTHER), Some(OTHER)).unwrap();
    let r = reconcile(&card_opts(dataroot.clone()), 0, "bob", &[], &Unknown::default());
    assert!(!r.errors.is_empty(), "{r:?}");
    assert!(victim.exists());
}

/// a manifest entry whose paths climb out (`..`, absolute) is refused, nothing outside is
/// removed, and the entry is kept for the next run (not a silent drop).
#[test]
fn manifest_paths_cannot_climb_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dataroot = tmp.path().join("dashboard");
    fs::create_dir_all(dataroot.join("multitenant")).unwrap();
    let outside = tmp.path().join("outside");
    fs::write(&outside, "keep").unwrap();
    let planted = format!(
        r#"{{"version":1,"cards":{{"x":{{"job_id":"1","group":"g","cluster":"mtcluster","owner":"eve",
        "db":"../outside","output":"{}","digest":"d","created_at":0}}}}}}"#,
        tmp.path().display()
    );
    fs::write(manifest_path(&dataroot), planted).unwrap();
    let r = reconcile(&card_opts(dataroot.clone()), uid(), "bob", &[], &Unknown::default());
    assert!(outside.exists());
    assert!(!r.errors.is_empty(), "{r:?}");
}

/// card ids are not chosen by the publisher; two owners' same job id on two clusters differ.
#[test]
fn card_ids_bind_cluster_job_and_owner() {
    let a = card_id("alpha", "42", "alice");
    assert_ne!(a, card_id("beta", "42", "alice"));
    assert_ne!(a, card_id("alpha", "42", "alicf"));
}
