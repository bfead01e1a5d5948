//! Writes the test vectors in `docs/vectors/` (run once; they are committed):
//! `cargo run -p multitenant-core --example make_vectors -- docs/vectors`
//! The legacy vector is made with the real `gzip` and `openssl` commands.

#[path = "common/mod.rs"]
mod common;
use common::message;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use flate2::write::DeflateEncoder;
use flate2::Compression;
use multitenant_core::envelope::seal_bytes;
use multitenant_core::{seal, Binding, Key, Message, Method};
use serde_json::{json, Value};

const JOB: Binding<'static> = Binding { job_id: "4242", owner: "alice" };

fn fields(m: &Message) -> Value {
    json!({"session_id": m.session_id, "app": m.app, "method": m.method.as_str(), "delivery": m.delivery,
           "connection": m.connection, "allow": m.allow, "expires_at": m.expires_at})
}

struct Out<'a>(&'a Path);

impl Out<'_> {
    fn write(
        &self,
        file: &str,
        description: &str,
        keys: &[&Key],
        b: Binding,
        name: &str,
        expect: Result<&Message, &str>,
    ) {
        self.write_full(file, description, keys, b, name, false, expect)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_full(
        &self,
        file: &str,
        description: &str,
        keys: &[&Key],
        b: Binding,
        name: &str,
        legacy: bool,
        expect: Result<&Message, &str>,
    ) {
        let mut v = json!({
            "description": description,
            "keys": keys.iter().map(|k| k.to_line()).collect::<Vec<_>>(),
            "job_id": b.job_id, "owner": b.owner, "legacy": legacy, "name": name,
            "expect": expect.err().unwrap_or("ok"),
        });
        if let Ok(m) = expect {
            v["message"] = fields(m);
        }
        std::fs::write(self.0.join(format!("{file}.json")), serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
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
    out.write("v1-ollama", "A typical LLM card share (deflated content).", &[&key], JOB, &good, Ok(&ollama));

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
    let db_name = seal(&db, &key, "mt", "class101", JOB).unwrap();
    out.write(
        "v1-database-allow-expiry",
        "Form share with an allow-list, an expiry and a value holding quotes, '|', markup and unicode.",
        &[&other, &key],
        JOB,
        &db_name,
        Ok(&db),
    );

    let mut tiny = message("A", &[]);
    tiny.session_id = "s1".into();
    tiny.delivery = "sys/d".into();
    let tiny_json = [&[0u8][..], &tiny.to_json()].concat();
    out.write(
        "v1-stored",
        "Flag 0: JSON stored uncompressed (sealers choose it when deflate does not help).",
        &[&key],
        JOB,
        &raw(&tiny_json, &key),
        Ok(&tiny),
    );

    out.write(
        "v1-other-job",
        "MUST reject: the name is bound to job 4242, presented for 4243.",
        &[&key],
        Binding { job_id: "4243", ..JOB },
        &good,
        Err("bad_seal"),
    );
    out.write(
        "v1-other-owner",
        "MUST reject: presented for another owner.",
        &[&key],
        Binding { owner: "mallory", ..JOB },
        &good,
        Err("bad_seal"),
    );
    out.write(
        "v1-moved-group",
        "MUST reject: the group field was edited.",
        &[&key],
        JOB,
        &good.replacen("|class101|", "|class102|", 1),
        Err("bad_seal"),
    );
    out.write(
        "v1-relabelled-prefix",
        "MUST reject: the prefix was edited.",
        &[&key],
        JOB,
        &good.replacen("mt|", "xx|", 1),
        Err("bad_seal"),
    );
    let mut flipped = good.clone().into_bytes();
    let at = flipped.len() - 5;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    out.write(
        "v1-flipped-tag",
        "MUST reject: one character of the tag changed.",
        &[&key],
        JOB,
        &String::from_utf8(flipped).unwrap(),
        Err("bad_seal"),
    );
    out.write(
        "v1-wrong-key",
        "MUST reject as unknown key: only another key is available.",
        &[&other],
        JOB,
        &good,
        Err("unknown_key"),
    );
    out.write("v1-truncated", "MUST reject: cut short.", &[&key], JOB, &good[..good.len() - 30], Err("malformed"));
    out.write(
        "v2-unsupported",
        "MUST reject as unsupported version, not as malformed.",
        &[&key],
        JOB,
        "mt|class101|2.AAAAAAAAAAAAAAAAAAAAAAAA",
        Err("unsupported_version"),
    );
    out.write(
        "v1-bad-flag",
        "MUST reject: content flag 7 under a valid MAC.",
        &[&key],
        JOB,
        &raw(&[7, b'{', b'}'], &key),
        Err("malformed"),
    );
    let bomb = deflated(1, &vec![b' '; 64 * 1024]);
    out.write(
        "v1-deflate-bomb",
        "MUST reject: 64 KiB of content under a valid MAC (bound is 16 KiB).",
        &[&key],
        JOB,
        &raw(&bomb, &key),
        Err("malformed"),
    );
    let body = &good[good.rfind('.').unwrap() + 1..];
    out.write(
        "v1-impossible-length",
        "MUST reject: a body whose ciphertext is not whole blocks.",
        &[&key],
        JOB,
        &format!("mt|class101|1.{}", &body[..body.len() - 8]),
        Err("malformed"),
    );
    out.write(
        "v1-bad-base64url",
        "MUST reject as malformed: a character outside base64url after the key id.",
        &[&key],
        JOB,
        &format!("mt|class101|1.{}+{}", &body[..20], &body[21..]),
        Err("malformed"),
    );
    out.write(
        "v1-too-long",
        "MUST reject: names over 1024 characters, before any cryptography.",
        &[&key],
        JOB,
        &format!("mt|class101|1.{}{}", body, "A".repeat(1100)),
        Err("malformed"),
    );
    let extra = br#"{"i":"s","a":"A","m":"card","d":"sys/d","z":"?"}"#;
    out.write(
        "v1-unknown-field",
        "MUST reject: unknown field in v1 content.",
        &[&key],
        JOB,
        &raw(&[&[0u8][..], extra].concat(), &key),
        Err("malformed"),
    );
    let path = br#"{"i":"../../.ssh/x","a":"A","m":"card","d":"sys/d"}"#;
    out.write(
        "v1-hostile-session-id",
        "MUST reject: a session id that names a path, under a valid MAC.",
        &[&key],
        JOB,
        &raw(&[&[0u8][..], path].concat(), &key),
        Err("malformed"),
    );
    let token = br#"{"i":"s","a":"A","m":"card","d":"sys/../../etc"}"#;
    out.write(
        "v1-hostile-token",
        "MUST reject: a delivery token that names a path.",
        &[&key],
        JOB,
        &raw(&[&[0u8][..], token].concat(), &key),
        Err("malformed"),
    );

    let legacy_text = "{'mtu':'1001,1002','mti':'0f8fad5b-d9cb-469f-a165-70867728950e','mta':'Ollama_API','mtm':'card','mtd':'sys/multitenant-delivery_default'}|{'host':'node1','ollama_url':'http://node1:4000'}";
    let pad = |s: String, n: usize| format!("{:0<n$}", s.bytes().map(|b| format!("{b:02x}")).collect::<String>());
    let cmd = r#"printf %s "$MSG" | gzip | openssl enc -aes-256-cbc -e -a -A -K "$K" -iv "$IV""#;
    let o = Command::new("bash")
        .args(["-c", cmd])
        .env("MSG", legacy_text)
        .env("K", pad("4242alice".into(), 64))
        .env("IV", pad("42424242".into(), 32))
        .output()
        .unwrap();
    let legacy = format!("sys/dashboard|class101|{}", String::from_utf8(o.stdout).unwrap().trim());
    let mut lm = message("Ollama_API", &[("host", "node1"), ("ollama_url", "http://node1:4000")]);
    lm.allow = Some(vec!["1001".into(), "1002".into()]);
    out.write_full(
        "legacy-ollama",
        "Legacy name made by gzip | openssl enc; readable only with legacy decoding on.",
        &[],
        JOB,
        &legacy,
        true,
        Ok(&lm),
    );
    out.write(
        "legacy-disabled",
        "The same legacy name MUST be refused when legacy decoding is off.",
        &[],
        JOB,
        &legacy,
        Err("legacy_disabled"),
    );
}
