//! A service on loopback (or a Unix socket) that another user started must never receive what members
//! send through the gate: any user on the node can bind the upstream port first (the gate's command
//! line names it), and the owner's checks through the gate would then pass against their server.
mod common;

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};

use common::*;
use hyper::StatusCode;

const SQUATTER: &str = r#"
import os, socket, sys
if sys.argv[1] == "unix":
    s = socket.socket(socket.AF_UNIX)
    s.bind(sys.argv[2])
    os.chmod(sys.argv[2], 0o777)
    s.listen(16)
    print("ready", flush=True)
elif sys.argv[1] == "dual":
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", 0))
    s.listen(16)
    print(s.getsockname()[1], flush=True)
elif sys.argv[1] == "tcp6":
    s = socket.socket(socket.AF_INET6)
    s.bind(("::1", 0))
    s.listen(16)
    print(s.getsockname()[1], flush=True)
else:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    c.recv(65536)
    c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\nsquatted\n")
    c.close()
"#;

struct Squatter(Child);

impl Drop for Squatter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server run as `nobody`, or `None` (test skipped) when this is not root or python3 is missing.
fn squatter(args: &[&str]) -> Option<(Squatter, String)> {
    if !nix::unistd::geteuid().is_root() {
        // CI runs as root: there this case must run, never pass by skipping.
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: needs root to run a server as another user");
        eprintln!("skipped: needs root to run a server as another user");
        return None;
    }
    let nobody = nix::unistd::User::from_name("nobody").ok().flatten().expect("a user named nobody");
    server(args, Some(nobody))
}

/// The same server, run as `user` (`None`: as this test's own user).
fn server(args: &[&str], user: Option<nix::unistd::User>) -> Option<(Squatter, String)> {
    let mut command = Command::new("python3");
    if let Some(user) = user {
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let mut child = command
        .arg("-c")
        .arg(SQUATTER)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    Some((Squatter(child), line.trim().to_string()))
}

#[tokio::test]
async fn another_users_server_on_the_loopback_port_gets_nothing() {
    let Some((_s, port)) = squatter(&["tcp"]) else { return };
    let gate = start_gate(multitenant_gate::Upstream::Tcp(format!("127.0.0.1:{port}")), KEY, false);
    let (status, _, body) = fetch(gate, "GET", "/", &[("authorization", &bearer(KEY))]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(!body.contains("squatted"), "{body}");
    assert!(body.contains("is not the job owner's"), "{body}");
}

#[tokio::test]
async fn another_users_unix_socket_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let path = dir.path().join("s");
    let Some((_s, _)) = squatter(&["unix", path.to_str().unwrap()]) else { return };
    let gate = start_gate(multitenant_gate::Upstream::Unix(path), KEY, false);
    let (status, _, body) = fetch(gate, "GET", "/", &[("authorization", &bearer(KEY))]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(!body.contains("squatted"), "{body}");
}

#[tokio::test]
async fn ones_own_server_on_ipv6_loopback_or_dual_stack_is_served() {
    for (kind, host) in [("tcp6", "[::1]"), ("dual", "127.0.0.1"), ("dual", "[::1]")] {
        let Some((_s, port)) = server(&[kind], None) else { return };
        let gate = start_gate(multitenant_gate::Upstream::Tcp(format!("{host}:{port}")), KEY, false);
        let (status, _, body) = fetch(gate, "GET", "/", &[("authorization", &bearer(KEY))]).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "squatted\n"), "{kind} {host}");
    }
}
