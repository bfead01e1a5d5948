//! The one place a scheduler command is run: bounded in time, stderr checked even on exit 0, output
//! made valid UTF-8 before anyone splits it.

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

#[derive(Debug, Clone)]
pub struct Scheduler {
    bin_dir: Option<PathBuf>,
    timeout: Duration,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler { bin_dir: None, timeout: Duration::from_secs(10) }
    }
}

impl Scheduler {
    /// Look for commands in `dir` instead of on `PATH`.
    pub fn with_bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs `program args…` and returns its stdout. A non-zero exit, any stderr, or the timeout is an error.
    /// The command runs in its own process group, which is killed whole on timeout, and its output is
    /// awaited only until the same deadline (a stray grandchild holding the pipe cannot stall us).
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        let deadline = Instant::now() + self.timeout;
        let path = self.bin_dir.as_ref().map_or_else(|| PathBuf::from(program), |d| d.join(program));
        let fail = |reason: String| Error::Command { program: program.to_string(), reason };
        let late = || fail(format!("no answer within {} s", self.timeout.as_secs_f32()));
        let mut child = Command::new(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                fail(format!("cannot run {}: {e} (is Slurm's client installed and on PATH?)", path.display()))
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
        let status = match child.wait_timeout(self.timeout).map_err(|e| fail(e.to_string()))? {
            Some(status) => status,
            None => {
                kill();
                let _ = child.wait();
                return Err(late());
            }
        };
        let left = || deadline.saturating_duration_since(Instant::now());
        let (Ok(stdout), Ok(stderr)) = (out.recv_timeout(left()), err.recv_timeout(left())) else {
            kill();
            return Err(late());
        };
        let first_err = stderr.lines().map(str::trim).find(|l| !l.is_empty());
        match (status.success(), first_err) {
            (true, None) => Ok(stdout),
            (_, Some(line)) => Err(fail(line.to_string())),
            (false, None) => Err(fail(format!("exited with {status}"))),
        }
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
    fn stderr_is_an_error_even_on_exit_0() {
        let e = Scheduler::default().run("sh", &["-c", "echo out; echo 'slurm_load_jobs error: x' >&2"]).unwrap_err();
        assert_eq!(e.to_string(), "sh: slurm_load_jobs error: x");
        let e = Scheduler::default().run("sh", &["-c", "exit 3"]).unwrap_err();
        assert!(e.to_string().starts_with("sh: exited with"), "{e}");
    }

    #[test]
    fn output_is_made_valid_utf8() {
        let out = Scheduler::default().run("printf", &["a\\377b"]).unwrap();
        assert_eq!(out, "a\u{fffd}b");
    }
}
