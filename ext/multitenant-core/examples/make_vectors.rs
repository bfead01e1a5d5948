//! Writes the version 2 test vectors in `docs/vectors/` (they are committed):
//! `cargo run -p multitenant-core --example make_vectors -- docs/vectors`
//!
//! A vector once written is frozen: a file that exists is kept as it is (each run seals with fresh keys
//! and IVs), so running this again only adds the vectors that are new since.
//!
//! The v1 and legacy vectors are frozen: they were written by the v1 implementation's version of this
//! program (git history of this file, up to commit 6a8ff73) and are kept byte for byte, so that they
//! prove names written by older publishers still open. This build has no v1 sealer; it reads
//! `v1-ollama.json` to write the two vectors that cross versions (`v1-any-cluster-or-run`,
//! `v1-upgraded-to-v2`).

#[path = "common/mod.rs"]
mod common;
use common::message;
use std::io::Write;
use std::path::Path;

use flate2::write::DeflateEncoder;
use flate2::Compression;
use multitenant_core::envelope::seal_bytes;
use multitenant_core::{seal, Binding, Key, Message, Method};
use serde_json::{json, Value};

/// The first run of job 4242 of alice on Slurm cluster alpha.
const JOB: Binding<'static> = Binding { job_id: "4242", owner: "alice", cluster: "alpha", restarts: 0 };

fn fields(m: &Message) -> Value {
    json!({"session_id": m.session_id, "app": m.app, "method": m.method.as_str(), "delivery": m.delivery,
           "connection": m.connection, "allow": m.allow, "expires_at": m.expires_at})
}

struct Out<'a>(&'a Path);

impl Out<'_> {
    /// `expect` is "ok" with the message it opens to, or the error kind a reader MUST report.
    fn write(
        &self,
        file: &str,
        description: &str,
        keys: &[&Key],
        b: Binding,
        name: &str,
        expect: Result<&Message, &str>,
    ) {
        let mut v = json!({
            "description": description,
            "keys": keys.iter().map(|k| k.to_line()).collect::<Vec<_>>(),
            "job_id": b.job_id, "owner": b.owner, "cluster": b.cluster, "restarts": b.restarts,
            "legacy": false, "name": name,
            "expect": expect.err().unwrap_or("ok"),
        });
        if let Ok(m) = expect {
            v["message"] = fields(m);
        }
        let path = self.0.join(format!("{file}.json"));
        if path.exists() {
            return;
        }
        std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
        println!("wrote {}", path.display());
    }

    fn read(&self, file: &str) -> Value {
        let text = std::fs::read_to_string(self.0.join(format!("{file}.json"))).expect("the frozen v1 vectors");
        serde_json::from_str(&text).unwrap()
    }
}

fn raw(plaintext: &[u8], key: &Key) -> String {
    seal_bytes(plaintext, key, "mt", "class101", JOB).unwrap()
}

fn deflated(flag: u8, data: &[u8]) -> Vec<u8> {
    let mut z = DeflateEncoder::new(vec![flag], Compression::best());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: make_vectors DIR");
    let out = Out(Path::new(&dir));
    let key = Key::generate().unwrap();
    let other = Key::generate().unwrap();

    let ollama = message(
        "Ollama_API",
        &[
            ("host", "node017"),
            ("port", "41234"),
            ("ollama_url", "http://node017:41234"),
            ("ollama_model", "gpt-oss:120b"),
        ],
    );
    let good = seal(&ollama, &key, "mt", "class101", JOB).unwrap();
    out.write(
        "v2-ollama",
        "A typical LLM card share (deflated content), first run (restart count 0) of job 4242 on cluster alpha.",
        &[&key],
        JOB,
        &good,
        Ok(&ollama),
    );

    let mut db = message(
        "PostgreSQL",
        &[
            ("host", "node042"),
            ("port", "5432"),
            ("db_password", "Xk9#q 'v|7\"zP€2 <b>"),
            ("jdbc_url", "jdbc:postgresql://node042:5432/msba"),
        ],
    );
    db.method = Method::Form;
    db.allow = Some(vec!["bob".into(), "1002".into()]);
    db.expires_at = Some(4_102_444_800);
    let requeued = Binding { cluster: "cluster-2.example", restarts: 3, ..JOB };
    let db_name = seal(&db, &key, "mt", "class101", requeued).unwrap();
    out.write(
        "v2-database-allow-expiry",
        "Form share with an allow-list, an expiry and a value holding quotes, '|', markup and unicode, published by the fourth run (restart count 3) on a cluster whose name holds '-' and '.'.",
        &[&other, &key],
        requeued,
        &db_name,
        Ok(&db),
    );

    let mut tiny = message("A", &[]);
    tiny.session_id = "s1".into();
    tiny.delivery = "sys/d".into();
    let tiny_json = [&[0u8][..], &tiny.to_json()].concat();
    out.write(
        "v2-stored",
        "Flag 0: JSON stored uncompressed (sealers choose it when deflate does not help).",
        &[&key],
        JOB,
        &raw(&tiny_json, &key),
        Ok(&tiny),
    );

    out.write(
        "v2-previous-run",
        "MUST reject: sealed by run 0, presented after a requeue (restart count 1): a share never outlives the run that published it.",
        &[&key],
        Binding { restarts: 1, ..JOB },
        &good,
        Err("bad_seal"),
    );
    out.write(
        "v2-earlier-run",
        "MUST reject: sealed by the fourth run (restart count 3), presented for restart count 2.",
        &[&other, &key],
        Binding { restarts: 2, ..requeued },
        &db_name,
        Err("bad_seal"),
    );
    out.write(
        "v2-other-cluster",
        "MUST reject: the same job id on another Slurm cluster (beta, not alpha).",
        &[&key],
        Binding { cluster: "beta", ..JOB },
        &good,
        Err("bad_seal"),
    );
    out.write(
        "v2-missing-cluster",
        "MUST refuse: a v2 name cannot be opened without the job's cluster name (an input error, not a verdict on the seal).",
        &[&key],
        Binding { cluster: "", ..JOB },
        &good,
        Err("invalid"),
    );
    out.write(
        "v2-other-job",
        "MUST reject: the name is bound to job 4242, presented for 4243.",
        &[&key],
        Binding { job_id: "4243", ..JOB },
        &good,
        Err("bad_seal"),
    );
    out.write(
        "v2-other-owner",
        "MUST reject: presented for another owner.",
        &[&key],
        Binding { owner: "mallory", ..JOB },
        &good,
        Err("bad_seal"),
    );
    out.write(
        "v2-moved-group",
        "MUST reject: the group field was edited.",
        &[&key],
        JOB,
        &good.replacen("|class101|", "|class102|", 1),
        Err("bad_seal"),
    );
    out.write(
        "v2-relabelled-prefix",
        "MUST reject: the prefix was edited.",
        &[&key],
        JOB,
        &good.replacen("mt|", "xx|", 1),
        Err("bad_seal"),
    );
    out.write(
        "v2-downgraded-to-v1",
        "MUST reject: the version marker changed from 2 to 1 (a v1 reading would ignore cluster and run).",
        &[&key],
        JOB,
        &good.replacen("|2.", "|1.", 1),
        Err("bad_seal"),
    );
    let mut flipped = good.clone().into_bytes();
    let at = flipped.len() - 5;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    out.write(
        "v2-flipped-tag",
        "MUST reject: one character of the tag changed.",
        &[&key],
        JOB,
        &String::from_utf8(flipped).unwrap(),
        Err("bad_seal"),
    );
    out.write(
        "v2-wrong-key",
        "MUST reject as unknown key: only another key is available.",
        &[&other],
        JOB,
        &good,
        Err("unknown_key"),
    );
    out.write("v2-truncated", "MUST reject: cut short.", &[&key], JOB, &good[..good.len() - 30], Err("malformed"));
    out.write(
        "v3-unsupported",
        "MUST reject as unsupported version, not as malformed.",
        &[&key],
        JOB,
        "mt|class101|3.AAAAAAAAAAAAAAAAAAAAAAAA",
        Err("unsupported_version"),
    );
    out.write(
        "v2-bad-flag",
        "MUST reject: content flag 7 under a valid MAC.",
        &[&key],
        JOB,
        &raw(&[7, b'{', b'}'], &key),
        Err("malformed"),
    );
    let bomb = deflated(1, &vec![b' '; 64 * 1024]);
    out.write(
        "v2-deflate-bomb",
        "MUST reject: 64 KiB of content under a valid MAC (bound is 16 KiB).",
        &[&key],
        JOB,
        &raw(&bomb, &key),
        Err("malformed"),
    );
    let body = &good[good.rfind('.').unwrap() + 1..];
    out.write(
        "v2-impossible-length",
        "MUST reject: a body whose ciphertext is not whole blocks.",
        &[&key],
        JOB,
        &format!("mt|class101|2.{}", &body[..body.len() - 8]),
        Err("malformed"),
    );
    out.write(
        "v2-bad-base64url",
        "MUST reject as malformed: a character outside base64url after the key id.",
        &[&key],
        JOB,
        &format!("mt|class101|2.{}+{}", &body[..20], &body[21..]),
        Err("malformed"),
    );
    out.write(
        "v2-too-long",
        "MUST reject: names over 1024 characters, before any cryptography.",
        &[&key],
        JOB,
        &format!("mt|class101|2.{}{}", body, "A".repeat(1100)),
        Err("malformed"),
    );
    let extra = br#"{"i":"s","a":"A","m":"card","d":"sys/d","z":"?"}"#;
    out.write(
        "v2-unknown-field",
        "MUST reject: unknown field in the content.",
        &[&key],
        JOB,
        &raw(&[&[0u8][..], extra].concat(), &key),
        Err("malformed"),
    );
    let path = br#"{"i":"../../.ssh/x","a":"A","m":"card","d":"sys/d"}"#;
    out.write(
        "v2-hostile-session-id",
        "MUST reject: a session id that names a path, under a valid MAC.",
        &[&key],
        JOB,
        &raw(&[&[0u8][..], path].concat(), &key),
        Err("malformed"),
    );
    let token = br#"{"i":"s","a":"A","m":"card","d":"sys/../../etc"}"#;
    out.write(
        "v2-hostile-token",
        "MUST reject: a delivery token that names a path.",
        &[&key],
        JOB,
        &raw(&[&[0u8][..], token].concat(), &key),
        Err("malformed"),
    );

    // The owner's name is shown beside the app name: a right-to-left override in the app name would
    // show it reversed ("Ab" + U+202E + "ecilA" reads "Ab Alice"), and zero-width or tag characters
    // would hide text. Refused at sealing, so only a hand-made seal carries one.
    let bidi = "{\"i\":\"s\",\"a\":\"Ab \u{202E}ecilA\",\"m\":\"card\",\"d\":\"sys/d\"}";
    out.write(
        "v2-hostile-app",
        "MUST reject as malformed: an app name carrying U+202E RIGHT-TO-LEFT OVERRIDE (invisible or direction-changing characters are refused), under a valid MAC.",
        &[&key],
        JOB,
        &raw(&[&[0u8][..], bidi.as_bytes()].concat(), &key),
        Err("malformed"),
    );

    // A name with nothing that draws by itself (combining marks with no letter to sit on, and a space)
    // shows as blank beside the owner's name. Refused at sealing, so only a hand-made seal carries one.
    let blank = "{\"i\":\"s\",\"a\":\"\u{301}\u{301} \u{20DD}\",\"m\":\"card\",\"d\":\"sys/d\"}";
    out.write(
        "v2-blank-app",
        "MUST reject as malformed: an app name of combining marks and a space (U+0301 U+0301 U+0020 U+20DD), with no letter, digit, punctuation or symbol, which draws as nothing (an app name must contain a visible letter, digit or symbol), under a valid MAC.",
        &[&key],
        JOB,
        &raw(&[&[0u8][..], blank.as_bytes()].concat(), &key),
        Err("malformed"),
    );

    // Across versions, from the frozen v1 vector.
    let v1 = out.read("v1-ollama");
    let v1_key = Key::from_line(v1["keys"][0].as_str().unwrap()).unwrap();
    let v1_name = v1["name"].as_str().unwrap();
    let v1_job = Binding { job_id: v1["job_id"].as_str().unwrap(), owner: v1["owner"].as_str().unwrap(), ..JOB };
    let mut v1_message: Message = ollama.clone();
    v1_message.connection = v1["message"]["connection"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(fields(&v1_message), v1["message"], "v1-ollama.json holds the Ollama message");
    out.write(
        "v1-any-cluster-or-run",
        "v1 still opens, and cannot tell runs or clusters apart: the frozen v1-ollama name opens for any cluster and restart count.",
        &[&v1_key],
        Binding { cluster: "beta", restarts: 7, ..v1_job },
        v1_name,
        Ok(&v1_message),
    );
    out.write(
        "v1-upgraded-to-v2",
        "MUST reject: the frozen v1-ollama name with its version marker changed from 1 to 2.",
        &[&v1_key],
        v1_job,
        &v1_name.replacen("|1.", "|2.", 1),
        Err("bad_seal"),
    );
}
