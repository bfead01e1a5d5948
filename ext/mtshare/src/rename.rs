//! Renaming the job: one `scontrol update JobId=<id> JobName=<name>`, sent again only when slurmctld
//! answered that it did not apply it because the job's accounting record was being written.
//!
//! Slurm up to 24.05 gives a new job its database index in slurmctld's `_set_db_inx_thread`, a pass
//! every 5 s that marks the jobs without one (`db_index = NO_VAL64`) and waits for slurmdbd's answer.
//! An update of a marked job fails inside slurmctld with `ESLURM_JOB_SETTING_DB_INX`, which
//! `_slurm_rpc_update_job` (src/slurmctld/proc_req.c) retries itself after `sleep(1)`, up to 5 times:
//! a publish that lands in that window (about 45 ms of the first pass after the job's submission on the
//! test cluster) takes 1 s, and one that is still in it after 5 s gets this error, with the update not
//! applied. Slurm 24.11 dropped the wait (slurmctld makes the id itself).
//!
//! A rename that is slow but under way is never cut short and sent again: slurmctld applies it after
//! its sleep anyway, and a copy arriving later could put a share back after an `unshare`.

use std::time::{Duration, Instant};

use multitenant_core::{Error, Scheduler};

/// What scontrol prints for `ESLURM_JOB_SETTING_DB_INX` (Slurm's slurm_errno.c, 20.11 to 24.05): "Job
/// update not available right now, the DB index is being set, try again in a bit for job <id>".
pub const DB_INDEX_BEING_SET: &str = "the DB index is being set";

/// When to send a refused rename again: after `first`, doubling up to `max`, while the next attempt
/// starts within `give_up_after` of the first.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub give_up_after: Duration,
}

impl Default for Backoff {
    /// Each refused attempt has already waited 5 s in slurmctld, so this is about four attempts: slurmdbd
    /// slow for half a minute is an outage to report, not to wait out.
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(250),
            max: Duration::from_secs(2),
            give_up_after: Duration::from_secs(30),
        }
    }
}

/// Renames the job. A stderr line that reports an error means the job was not renamed, even when scontrol
/// exits 0 (`slurm_update error: …`): the publisher must not say it published. Other stderr lines, and
/// each retry, are given to `warn`.
pub fn rename_job(
    scheduler: &Scheduler,
    job_id: &str,
    name: &str,
    backoff: Backoff,
    mut warn: impl FnMut(String),
) -> Result<(), Error> {
    let (id_arg, name_arg) = (format!("JobId={job_id}"), format!("JobName={name}"));
    let args = ["update", id_arg.as_str(), name_arg.as_str()];
    let start = Instant::now();
    let mut wait = backoff.first;
    for attempt in 1.. {
        let reason = match scheduler.output("scontrol", &args) {
            Ok(out) => match out.warnings.iter().find(|l| l.to_ascii_lowercase().contains("error")) {
                Some(line) => line.clone(),
                None => {
                    out.warnings.into_iter().for_each(|w| warn(format!("scontrol: {w}")));
                    return Ok(());
                }
            },
            Err(Error::Command { reason, .. }) => reason,
            Err(e) => return Err(e),
        };
        if !reason.contains(DB_INDEX_BEING_SET) {
            return Err(Error::Command { program: "scontrol".into(), reason });
        }
        if start.elapsed() + wait > backoff.give_up_after {
            return Err(Error::Command {
                program: "scontrol".into(),
                reason: format!(
                    "{reason} (refused {attempt} times over {:.0} s: slurmctld is waiting for slurmdbd to record the job; is slurmdbd answering?)",
                    start.elapsed().as_secs_f32()
                ),
            });
        }
        warn(format!(
            "slurmctld is still recording job {job_id} in accounting (scontrol: {reason}): renaming again in {:.2} s",
            wait.as_secs_f32()
        ));
        std::thread::sleep(wait);
        wait = (wait * 2).min(backoff.max);
    }
    unreachable!("the attempts never run out")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::Path;

    /// Recorded from slurmctld 22.05.8 when the job's index stays unset for 5 s (stderr, exit 1).
    const REFUSED: &str = "Job update not available right now, the DB index is being set, try again in a bit for job 7";

    /// Held for a whole test: a child forked by another test's thread while a fake scontrol is open
    /// for writing would keep it so, and running it would fail with ETXTBSY ("Text file busy").
    static SPAWN: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn spawning() -> std::sync::MutexGuard<'static, ()> {
        SPAWN.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A scontrol that records its arguments, one call a line, and runs `body` ($n is this call's number).
    fn fake_scontrol(dir: &Path, body: &str) -> Scheduler {
        let calls = dir.join("calls");
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nn=$(wc -l < '{}')\n{body}\n",
            calls.display(),
            calls.display()
        );
        std::fs::write(dir.join("scontrol"), script).unwrap();
        std::fs::set_permissions(dir.join("scontrol"), std::fs::Permissions::from_mode(0o755)).unwrap();
        Scheduler::default().with_bin_dir(dir)
    }

    fn calls(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls")).unwrap_or_default().lines().map(String::from).collect()
    }

    const QUICK: Backoff = Backoff {
        first: Duration::from_millis(1),
        max: Duration::from_millis(4),
        give_up_after: Duration::from_millis(300),
    };

    #[test]
    fn a_rename_refused_while_the_index_is_set_is_sent_again_until_applied() {
        let _spawning = spawning();
        let dir = tempfile::tempdir().unwrap();
        let s = fake_scontrol(dir.path(), &format!("[ \"$n\" -le 2 ] && {{ echo '{REFUSED}' >&2; exit 1; }}; exit 0"));
        let mut warnings = Vec::new();
        rename_job(&s, "7", "mt|g|x", QUICK, |w| warnings.push(w)).unwrap();
        assert_eq!(calls(dir.path()), vec!["update JobId=7 JobName=mt|g|x"; 3]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0]
            .starts_with("slurmctld is still recording job 7 in accounting (scontrol: Job update not available"));
        assert!(warnings[0].ends_with("renaming again in 0.00 s"), "{}", warnings[0]);
    }

    #[test]
    fn a_rename_refused_past_the_bound_fails_with_slurms_reason() {
        let _spawning = spawning();
        let dir = tempfile::tempdir().unwrap();
        let s = fake_scontrol(dir.path(), &format!("echo '{REFUSED}' >&2; exit 1"));
        let t = Instant::now();
        let e = rename_job(&s, "7", "n", QUICK, |_| {}).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let n = calls(dir.path()).len();
        assert!(n >= 3, "{n} calls");
        assert_eq!(e.kind(), "command");
        let text = e.to_string();
        assert!(text.starts_with(&format!("scontrol: {REFUSED} (refused {n} times over ")), "{text}");
        assert!(text.ends_with("is slurmdbd answering?)"), "{text}");
    }

    #[test]
    fn any_other_failure_is_not_sent_again() {
        let _spawning = spawning();
        let dir = tempfile::tempdir().unwrap();
        let s = fake_scontrol(dir.path(), "echo 'Invalid job id specified for job 7' >&2; exit 1");
        let e = rename_job(&s, "7", "n", QUICK, |_| {}).unwrap_err();
        assert_eq!(e.to_string(), "scontrol: Invalid job id specified for job 7");
        assert_eq!(calls(dir.path()).len(), 1);
        // An error line on exit 0 means not renamed either.
        let dir = tempfile::tempdir().unwrap();
        let s = fake_scontrol(dir.path(), "echo 'slurm_update error: Invalid user id' >&2; exit 0");
        let e = rename_job(&s, "7", "n", QUICK, |_| {}).unwrap_err();
        assert_eq!(e.to_string(), "scontrol: slurm_update error: Invalid user id");
        assert_eq!(calls(dir.path()).len(), 1);
    }

    #[test]
    fn other_stderr_lines_are_warnings_of_a_single_rename() {
        let _spawning = spawning();
        let dir = tempfile::tempdir().unwrap();
        let s = fake_scontrol(dir.path(), "echo 'scontrol: warning: something' >&2; exit 0");
        let mut warnings = Vec::new();
        rename_job(&s, "7", "n", QUICK, |w| warnings.push(w)).unwrap();
        assert_eq!(warnings, vec!["scontrol: scontrol: warning: something".to_string()]);
        assert_eq!(calls(dir.path()).len(), 1);
    }
}
