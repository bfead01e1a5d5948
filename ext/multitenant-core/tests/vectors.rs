//! Every file in docs/vectors/ must open (or fail) exactly as it says. RSpec reads the same files.

use std::path::Path;

use multitenant_core::{open, open_legacy, Binding, Key, Message};
use serde_json::{json, Value};

fn fields(m: &Message) -> Value {
    json!({"session_id": m.session_id, "app": m.app, "method": m.method.as_str(), "delivery": m.delivery,
           "connection": m.connection, "allow": m.allow, "expires_at": m.expires_at})
}

#[test]
fn every_vector_behaves_as_specified() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let keys: Vec<Key> =
            v["keys"].as_array().unwrap().iter().map(|l| Key::from_line(l.as_str().unwrap()).unwrap()).collect();
        // The frozen v1 and legacy vectors predate the cluster and restart count: "" and 0.
        let b = Binding {
            job_id: v["job_id"].as_str().unwrap(),
            owner: v["owner"].as_str().unwrap(),
            cluster: v["cluster"].as_str().unwrap_or_default(),
            restarts: v["restarts"].as_u64().map_or(0, |n| u32::try_from(n).unwrap()),
        };
        let name = v["name"].as_str().unwrap();
        let result = if v["legacy"].as_bool().unwrap() { open_legacy(name, b) } else { open(name, b, &keys) };
        let file = path.file_name().unwrap().to_string_lossy();
        match (v["expect"].as_str().unwrap(), result) {
            ("ok", Ok(share)) => {
                assert_eq!(fields(&share.message), v["message"], "{file}");
                assert_eq!(share.size, name.len(), "{file}");
            }
            ("ok", Err(e)) => panic!("{file}: expected to open, got {e}"),
            (kind, Ok(_)) => panic!("{file}: expected {kind}, but it opened"),
            (kind, Err(e)) => assert_eq!(e.kind(), kind, "{file}: {e}"),
        }
        count += 1;
    }
    assert!(count >= 48, "only {count} vectors found in {}", dir.display());
}

/// Why the named vector (a v2 name for job 4242 of alice on alpha) does not open.
fn refusal(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors").join(file);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let keys = [Key::from_line(v["keys"][0].as_str().unwrap()).unwrap()];
    let b = Binding { job_id: "4242", owner: "alice", cluster: "alpha", restarts: 0 };
    open(v["name"].as_str().unwrap(), b, &keys).unwrap_err().to_string()
}

/// The hostile app name is refused for what it carries, naming the character and its place.
#[test]
fn a_direction_override_in_the_app_name_is_named() {
    assert_eq!(
        refusal("v2-hostile-app.json"),
        "malformed share: sealed content: app name must not contain invisible or direction-changing characters (U+202E at character 4)"
    );
}

/// A name that draws as nothing (combining marks and a space) is refused for that.
#[test]
fn an_app_name_that_draws_nothing_is_refused() {
    assert_eq!(
        refusal("v2-blank-app.json"),
        "malformed share: sealed content: app name must contain a visible letter, digit or symbol"
    );
}
