//! The one place a scheduler command is run, the way Open OnDemand's Slurm adapter runs it for a
//! cluster (`OodCore::Job::Adapters::Slurm::Batch#call`, lib/ood_core/job/adapters/slurm.rb at ood_core
//! v0.31.1): `bin_overrides[cmd]` or `bin/cmd`, `-M <cluster>` on every command but sacctmgr,
//! `SLURM_CONF=<conf>`, and through `ssh` to `submit_host` when one is set. Unlike OOD, the user's own
//! `SLURM_*`/`SQUEUE_*`/`SACCT_*` variables are removed, so they cannot change what is seen. Each call is
//! bounded in time, and its output is made valid UTF-8 before anyone splits it.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use wait_timeout::ChildExt;

use crate::error::{Error, Result};

/// Slurm's clients read variables with these prefixes (squeue(1), sacct(1), scontrol(1) of Slurm
/// 22.05, ENVIRONMENT VARIABLES); all but `SLURM_CONF` are removed before a call, here and on a
/// submit host.
const CLIENT_PREFIXES: [&str; 5] = ["SLURM_", "SQUEUE_", "SACCT_", "SCONTROL_", "SINFO_"];

/// Run by `sh` on the submit host: the same scrub as here (by prefix), then `SLURM_CONF` if the
/// cluster names one (`$1`), then the command.
const REMOTE_SCRUB: &str = "for v in $(env | cut -d= -f1 | grep -E '^(SLURM|SQUEUE|SACCT|SCONTROL|SINFO)_'); do \
[ \"$v\" = SLURM_CONF ] || unset \"$v\"; done; [ -z \"$1\" ] || export SLURM_CONF=\"$1\"; shift; exec \"$@\"";

/// Lines that mean the command failed even though it exited 0. OOD's adapter knows the first
/// (`interpret_and_raise`, same file); the others are how Slurm 22.05's clients report a controller or
/// database they could not reach.
const FAILURE_LINES: [&str; 5] = [
    "slurm_load_jobs error: Socket timed out",
    "slurm_load_jobs error:",
    "Unable to contact slurm controller",
    "Problem talking to the database",
    "slurm_persist_conn_open",
];

/// What a command printed: its output, and the stderr lines that did not make it a failure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    /// Stderr lines on a successful run (Slurm prints warnings there); to be logged, not fatal.
    pub warnings: Vec<String>,
}

/// One cluster as OOD's adapter reaches it: a clusters.d entry's `v2.job` (`bin`, `bin_overrides`,
/// `conf`, `cluster`, `submit_host`, `strict_host_checking`).
#[derive(Debug, Clone)]
pub struct Scheduler {
    bin_dir: Option<PathBuf>,
    bin_overrides: BTreeMap<String, PathBuf>,
    conf: Option<PathBuf>,
    cluster: Option<String>,
    submit_host: Option<String>,
    strict_host_checking: bool,
    ssh_port: String,
    timeout: Duration,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler {
            bin_dir: None,
            bin_overrides: BTreeMap::new(),
            conf: None,
            cluster: None,
            submit_host: None,
            strict_host_checking: true,
            ssh_port: "22".into(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Scheduler {
    /// Look for commands in `dir` instead of on `PATH` (OOD's `job.bin`).
    pub fn with_bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// Full paths for some commands (OOD's `job.bin_overrides`, e.g. `{"squeue": "/opt/x/squeue"}`).
    pub fn with_bin_overrides(mut self, overrides: BTreeMap<String, PathBuf>) -> Self {
        self.bin_overrides = overrides;
        self
    }

    /// `SLURM_CONF` for every command (OOD's `job.conf`).
    pub fn with_conf(mut self, conf: impl Into<PathBuf>) -> Self {
        self.conf = Some(conf.into());
        self
    }

    /// `-M <cluster>` on every command but sacctmgr (OOD's `job.cluster`).
    pub fn with_cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = Some(cluster.into());
        self
    }

    /// Run every command through `ssh` on this host (OOD's `job.submit_host`, `strict_host_checking`, and
    /// the `OOD_SSH_PORT` port), as `OodCore::Job::Adapters::Helper.ssh_wrap` does, with each remote word
    /// shell-quoted (ssh hands the remote shell one joined line).
    pub fn with_submit_host(mut self, host: impl Into<String>, strict_host_checking: bool, port: &str) -> Self {
        self.submit_host = Some(host.into()).filter(|h| !h.is_empty());
        self.strict_host_checking = strict_host_checking;
        self.ssh_port = port.to_string();
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long one call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The `-M` cluster, if any.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// The program, its arguments and the `SLURM_CONF` value a call runs with. Fails only for a submit
    /// host that ssh would read as an option, or a word the remote shell cannot be given (a NUL).
    pub fn command_line(&self, program: &str, args: &[&str]) -> Result<(PathBuf, Vec<String>, Option<PathBuf>)> {
        let path = self
            .bin_overrides
            .get(program)
            .cloned()
            .unwrap_or_else(|| self.bin_dir.as_ref().map_or_else(|| PathBuf::from(program), |d| d.join(program)));
        let mut words: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if let Some(cluster) = self.cluster.as_ref().filter(|_| !path.to_string_lossy().ends_with("sacctmgr")) {
            words.extend(["-M".to_string(), cluster.clone()]);
        }
        let Some(host) = &self.submit_host else { return Ok((path, words, self.conf.clone())) };
        let bad = |why: String| Error::Invalid(format!("submit_host {host:?}: {why}"));
        if host.starts_with('-') {
            return Err(bad("ssh would read it as an option: name a host".into()));
        }
        let conf = self.conf.as_ref().map(|c| c.display().to_string()).unwrap_or_default();
        let mut remote = vec!["sh".to_string(), "-c".into(), REMOTE_SCRUB.into(), "sh".into(), conf];
        remote.push(path.display().to_string());
        remote.extend(words);
        let mut ssh = vec![
            "-p".to_string(),
            self.ssh_port.clone(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "-o".into(),
            format!("StrictHostKeyChecking={}", if self.strict_host_checking { "yes" } else { "no" }),
            // Else OpenSSH's "Permanently added … to the list of known hosts" comes before Slurm's own lines.
            "-o".into(),
            "LogLevel=ERROR".into(),
            host.clone(),
        ];
        for w in &remote {
            ssh.push(
                shlex::try_quote(w)
                    .map_err(|e| bad(format!("cannot pass {w:?} to the remote shell: {e}")))?
                    .into_owned(),
            );
        }
        Ok((PathBuf::from("ssh"), ssh, None))
    }

    /// Runs `program args…` and returns its stdout; see [`Scheduler::output`].
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        self.output(program, args).map(|o| o.stdout)
    }

    /// Runs `program args…` as OOD would for this cluster. A non-zero exit, a known failure line on stderr
    /// ([`FAILURE_LINES`]) or the timeout is an error (its first stderr line); other stderr lines are
    /// returned as warnings. The command runs in its own process group, which is killed whole on
    /// timeout, and its output is awaited only until the same deadline (a stray grandchild holding the
    /// pipe cannot stall us).
    pub fn output(&self, program: &str, args: &[&str]) -> Result<Output> {
        self.output_by(program, args, Instant::now() + self.timeout)
    }

    /// [`Scheduler::output`] with a deadline shared by several calls (one query may take two).
    pub fn output_by(&self, program: &str, args: &[&str], deadline: Instant) -> Result<Output> {
        let (path, words, conf) = self.command_line(program, args)?;
        let fail = |reason: String| Error::Command { program: program.to_string(), reason };
        let late = || fail(format!("no answer within {} s", self.timeout.as_secs_f32()));
        let mut cmd = Command::new(&path);
        cmd.args(&words).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k != "SLURM_CONF" && CLIENT_PREFIXES.iter().any(|p| k.starts_with(p)) {
                cmd.env_remove(&key);
            }
        }
        if let Some(conf) = conf {
            cmd.env("SLURM_CONF", conf);
        }
        let mut child = cmd.spawn().map_err(|e| {
            fail(format!("cannot run {}: {e} (is Slurm's client installed, and job.bin right?)", path.display()))
        })?;
        let group = Pid::from_raw(child.id() as i32);
        let kill = || {
            let _ = killpg(group, Signal::SIGKILL);
        };
        let drain = |mut pipe: Box<dyn Read + Send>| {
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
            });
            rx
        };
        let out = drain(Box::new(child.stdout.take().expect("stdout is piped")));
        let err = drain(Box::new(child.stderr.take().expect("stderr is piped")));
        let left = || deadline.saturating_duration_since(Instant::now());
        let status = match child.wait_timeout(left()).map_err(|e| fail(e.to_string()))? {
            Some(status) => status,
            None => {
                kill();
                let _ = child.wait();
                return Err(late());
            }
        };
        let (Ok(stdout), Ok(stderr)) = (out.recv_timeout(left()), err.recv_timeout(left())) else {
            kill();
            return Err(late());
        };
        let lines: Vec<String> = stderr.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
        if !status.success() {
            // Every line: a wrapper (ssh, a site's module shim) may speak before Slurm does.
            let all = lines.join("; ");
            return Err(fail(if all.is_empty() { format!("exited with {status}") } else { all }));
        }
        if let Some(line) = lines.iter().find(|l| FAILURE_LINES.iter().any(|f| l.contains(f))) {
            return Err(fail(line.clone()));
        }
        Ok(Output { stdout, warnings: lines })
    }

    /// `scontrol update JobId=<id> JobName=<name>`
    pub fn rename_job(&self, job_id: &str, name: &str) -> Result<()> {
        self.run("scontrol", &["update", &format!("JobId={job_id}"), &format!("JobName={name}")]).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_command_that_hangs_is_cut_off() {
        let t = Instant::now();
        let e = Scheduler::default().with_timeout(Duration::from_millis(200)).run("sleep", &["5"]).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(e.to_string(), "sleep: no answer within 0.2 s");
    }

    #[test]
    fn a_grandchild_holding_the_output_open_cannot_stall_it() {
        let t = Instant::now();
        let e = Scheduler::default()
            .with_timeout(Duration::from_millis(300))
            .run("sh", &["-c", "sleep 8 & echo started"])
            .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(e.to_string(), "sh: no answer within 0.3 s");
    }

    #[test]
    fn stderr_is_read_the_way_oods_adapter_reads_it() {
        // Recorded: squeue when slurmctld does not answer in time exits 0 with this line.
        let timeout = "echo out; echo 'slurm_load_jobs error: Socket timed out on send/recv operation' >&2";
        let e = Scheduler::default().run("sh", &["-c", timeout]).unwrap_err();
        assert_eq!(e.to_string(), "sh: slurm_load_jobs error: Socket timed out on send/recv operation");
        let e =
            Scheduler::default().run("sh", &["-c", "echo 'squeue: error: Invalid user: x' >&2; exit 1"]).unwrap_err();
        assert_eq!(e.to_string(), "sh: squeue: error: Invalid user: x");
        let e = Scheduler::default().run("sh", &["-c", "exit 3"]).unwrap_err();
        assert!(e.to_string().starts_with("sh: exited with"), "{e}");
        // Any other line on exit 0 is a warning: the records are used.
        let warn = "echo 1; echo 'squeue: warning: the node list is long' >&2";
        let o = Scheduler::default().output("sh", &["-c", warn]).unwrap();
        assert_eq!(o, Output { stdout: "1\n".into(), warnings: vec!["squeue: warning: the node list is long".into()] });
    }

    #[test]
    fn a_call_is_built_as_oods_adapter_builds_it() {
        let overrides = BTreeMap::from([("sacct".to_string(), PathBuf::from("/opt/slurm-x/sacct"))]);
        let s = Scheduler::default()
            .with_bin_dir("/opt/slurm/bin")
            .with_bin_overrides(overrides)
            .with_conf("/etc/slurm-beta/slurm.conf")
            .with_cluster("beta");
        let (p, a, c) = s.command_line("squeue", &["--noheader"]).unwrap();
        assert_eq!(
            (p, a),
            (PathBuf::from("/opt/slurm/bin/squeue"), vec!["--noheader".into(), "-M".into(), "beta".into()])
        );
        assert_eq!(c, Some(PathBuf::from("/etc/slurm-beta/slurm.conf")));
        assert_eq!(s.command_line("sacct", &[]).unwrap().0, PathBuf::from("/opt/slurm-x/sacct"));
        // OOD adds no -M to sacctmgr.
        assert_eq!(s.command_line("sacctmgr", &["show"]).unwrap().1, vec!["show".to_string()]);
    }

    #[test]
    fn a_submit_host_that_ssh_would_read_as_an_option_or_an_unquotable_word_is_refused() {
        let s = Scheduler::default().with_submit_host("-oProxyCommand=touch /tmp/x", true, "22");
        let e = s.command_line("squeue", &[]).unwrap_err().to_string();
        assert_eq!(e, "submit_host \"-oProxyCommand=touch /tmp/x\": ssh would read it as an option: name a host");
        let s = Scheduler::default().with_conf("/etc/b\0/slurm.conf").with_submit_host("login1", true, "22");
        assert!(s.run("squeue", &[]).unwrap_err().to_string().contains("cannot pass"));
    }

    #[test]
    fn a_failure_says_every_stderr_line() {
        let e = Scheduler::default()
            .run("sh", &["-c", "echo 'Warning: a wrapper spoke first' >&2; echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1"])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "sh: Warning: a wrapper spoke first; slurm_load_jobs error: Invalid job id specified"
        );
    }

    #[test]
    fn the_users_slurm_variables_do_not_reach_the_command() {
        std::env::set_var("SQUEUE_PARTITION", "hidden");
        std::env::set_var("SLURM_CLUSTERS", "other");
        let out = Scheduler::default().run("sh", &["-c", "env | grep -E '^(SQUEUE|SLURM)_' | sort"]).unwrap();
        std::env::remove_var("SQUEUE_PARTITION");
        std::env::remove_var("SLURM_CLUSTERS");
        assert_eq!(out, "");
        let out = Scheduler::default().with_conf("/x.conf").run("sh", &["-c", "echo $SLURM_CONF"]).unwrap();
        assert_eq!(out, "/x.conf\n");
    }

    #[test]
    fn output_is_made_valid_utf8() {
        let out = Scheduler::default().run("printf", &["a\\377b"]).unwrap();
        assert_eq!(out, "a\u{fffd}b");
    }
}
