//! `mtshare gate`, the real binary, in front of a real hyper upstream.

#[path = "../../multitenant-gate/tests/common/mod.rs"]
mod common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use http_body_util::BodyExt as _;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const MTSHARE: &str = env!("CARGO_BIN_EXE_mtshare");

/// A running `mtshare gate` and everything it wrote to stderr so far.
struct Gate {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Gate {
    fn start(upstream: &str, extra: &[&str], env_key: Option<&str>) -> Gate {
        let mut cmd = Command::new(MTSHARE);
        cmd.args(["gate", "--listen", "127.0.0.1:0", "--upstream", upstream]).args(extra);
        cmd.env_remove("MULTITENANT_GATE_KEY").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        if let Some(k) = env_key {
            cmd.env("MULTITENANT_GATE_KEY", k);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                // Kept before the address is handed over: the test reads the lines as soon as it has it.
                let addr = line
                    .strip_prefix("mtshare gate: listening on ")
                    .map(|rest| rest.split(',').next().unwrap().to_string());
                lines.lock().unwrap().push(line);
                if let Some(addr) = addr {
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("no listening line: {:?}", stderr.lock().unwrap())
        });
        Gate { child, addr, stderr }
    }

    fn lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then the exit status within `within`.
    fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > within {
                let _ = self.child.kill();
                panic!("mtshare gate did not end within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Runs `mtshare gate` expecting it to refuse to start: (exit code, stderr).
fn refused(args: &[&str], env_key: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new(MTSHARE);
    cmd.arg("gate").args(args).env_remove("MULTITENANT_GATE_KEY");
    if let Some(k) = env_key {
        cmd.env("MULTITENANT_GATE_KEY", k);
    }
    let out = cmd.output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn gate_binary_forwards_only_with_the_key_and_ends_on_sigterm() {
    let up = Upstream::start_tcp();
    let upstream = up.addr.unwrap().to_string();
    let gate = Gate::start(&upstream, &[], Some(KEY));
    assert_eq!(gate.lines()[0], format!("mtshare gate: listening on {}, forwarding to {upstream}", gate.addr));

    let (status, headers, body) = fetch(gate.addr, "GET", "/api/tags", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"multitenant\"");
    assert!(body.starts_with("multitenant: this service needs its share's key"), "{body}");
    let (status, _, echo) = fetch(gate.addr, "GET", "/api/tags", &[("authorization", &bearer(KEY))]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!echo.contains(KEY) && echo.contains(&format!("host: {upstream}\n")), "{echo}");
    assert_eq!(up.seen(), ["GET /api/tags"]);

    // A client that goes away in the middle of a long response must not end the gate (SIGPIPE).
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
        let head = format!("GET /bytes?n=268435456 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0; 65536];
        let _ = s.read(&mut buf).await.unwrap();
        drop(s);
    }
    let mut client = Client::connect(gate.addr).await;
    let (parts, body) =
        client.send(request("GET", "/small", &[("authorization", &bearer(KEY))], "")).await.into_parts();
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"ok\n");

    // Scanners: only the first few refusals of a minute get a line of their own.
    for i in 0..20 {
        let (status, ..) = fetch(gate.addr, "GET", &format!("/probe/{i}"), &[("authorization", "Bearer guess")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The reader thread may not have the gate's lines yet: wait for them (bounded), then look.
    let start = Instant::now();
    while gate.lines().iter().filter(|l| l.contains("refused")).count() < 5 && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let lines = gate.lines();
    let status = gate.terminate(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "SIGTERM ends the gate with 0");
    let refusals: Vec<&String> = lines.iter().filter(|l| l.contains("refused")).collect();
    assert_eq!(refusals.len(), 5, "{lines:?}");
    assert!(lines.iter().all(|l| l.starts_with("mtshare gate: ") && !l.contains(KEY)), "{lines:?}");
}

#[tokio::test]
async fn gate_binary_reads_a_private_key_file_and_keeps_host_when_asked() {
    let up = Upstream::start_tcp();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.key");
    std::fs::write(&path, format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let gate = Gate::start(
        &up.addr.unwrap().to_string(),
        &["--key-file", path.to_str().unwrap(), "--preserve-host"],
        Some(OTHER_KEY),
    );
    let (status, _, echo) =
        fetch(gate.addr, "GET", "/", &[("authorization", &bearer(KEY)), ("host", "node7:4242")]).await;
    assert_eq!(status, StatusCode::OK, "the file's key, not the environment's");
    assert!(echo.contains("host: node7:4242\n"), "{echo}");
    let (status, ..) = fetch(gate.addr, "GET", "/", &[("authorization", &bearer(OTHER_KEY))]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(gate.terminate(Duration::from_secs(2)).code(), Some(0));
}

#[test]
fn gate_binary_refuses_unsafe_or_bad_keys_with_one_line() {
    let base = ["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9"];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.key");
    std::fs::write(&path, KEY).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let with_file = [&base[..], &["--key-file", path.to_str().unwrap()]].concat();

    let cases: Vec<(Vec<&str>, Option<&str>, i32, &str)> = vec![
        (with_file.clone(), None, 4, "group and other must have no access"),
        (base.to_vec(), Some(&KEY[..20]), 4, "the key has 20 characters"),
        (base.to_vec(), Some("0123456789abcdef0123456789abcde!"), 4, "outside A-Z a-z 0-9 _ -"),
        (base.to_vec(), None, 4, "$MULTITENANT_GATE_KEY: not set"),
        (base.to_vec(), Some(""), 4, "$MULTITENANT_GATE_KEY: not set"),
        ([&base[..], &["--key-env", KEY]].concat(), None, 3, "--key-env takes the name"),
    ];
    for (args, env, code, says) in cases {
        let (got, stderr) = refused(&args, env);
        assert_eq!(got, code, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("mtshare: ") && stderr.contains(says), "{stderr}");
        assert!(!stderr.contains(KEY), "{stderr}");
    }
    // There is no flag that takes the key itself.
    for flag in ["--key", "--token", "--secret"] {
        let (got, stderr) = refused(&[&base[..], &[flag, KEY]].concat(), None);
        assert_eq!(got, 2, "{flag}: {stderr}");
    }
}
