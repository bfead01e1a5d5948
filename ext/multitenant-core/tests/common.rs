#![allow(dead_code)]
use std::collections::BTreeMap;

use multitenant_core::discover::{Found, Job};
use multitenant_core::{Binding, Message, Method, Share};

pub const JOB: Binding<'static> = Binding { job_id: "4242", owner: "alice", cluster: "alpha", restarts: 0 };

pub fn ollama() -> Message {
    let mut connection = BTreeMap::new();
    connection.insert("host".to_string(), "node017".to_string());
    connection.insert("port".to_string(), "41234".to_string());
    connection.insert("ollama_url".to_string(), "http://node017:41234".to_string());
    connection.insert("ollama_model".to_string(), "gpt-oss:120b".to_string());
    Message {
        session_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        app: "Ollama_API".into(),
        method: Method::Card,
        delivery: "sys/multitenant-delivery_default".into(),
        connection,
        allow: None,
        expires_at: None,
    }
}

pub fn database() -> Message {
    let mut m = ollama();
    m.app = "PostgreSQL".into();
    m.connection = [
        ("host", "node042"),
        ("port", "5432"),
        ("db_engine", "postgresql"),
        ("db_name", "msba_2026"),
        ("db_user", "msba_student"),
        ("db_password", "Xk9#q 'v|7\"zP€2"),
        ("jdbc_url", "jdbc:postgresql://node042:5432/msba_2026"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    m
}

/// A share of `ollama()` that job `job_id` of `owner` on mtcluster published for class101.
pub fn found(job_id: &str, owner: &str) -> Found {
    let job = Job {
        id: job_id.into(),
        owner: owner.into(),
        cluster: "mtcluster".into(),
        name: String::new(),
        restarts: 0,
        nodes: "node017".into(),
    };
    let share = Share {
        prefix: "mt".into(),
        group: "class101".into(),
        version: "2".into(),
        key_id: None,
        message: ollama(),
        size: 300,
    };
    Found { job, share }
}

/// The effective uid: the tests' data roots are the current user's.
pub fn uid() -> u32 {
    nix::unistd::Uid::effective().as_raw()
}

/// Every file below `dir` (symlinks not followed); none when it does not exist.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Writes `text` to `path` as an executable script, from a child process: a child that another test's
/// thread forks while this process holds the file open for writing keeps it so until it execs, and
/// running the script meanwhile fails with ETXTBSY ("Text file busy").
pub fn executable(path: &std::path::Path, text: &str) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "cannot write {}", path.display());
}
