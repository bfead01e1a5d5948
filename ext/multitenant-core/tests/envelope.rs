mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{database, ollama, JOB};
use multitenant_core::envelope::Version;
use multitenant_core::{open, parse, seal, Binding, Error, Format, Key, NAME_LIMIT};
use serde_json::Value;

fn kinds_of(result: multitenant_core::Result<multitenant_core::Share>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    }
}

/// A frozen v1 vector (written by the v1 implementation; this build has no v1 sealer): its name, its
/// key and the job it was sealed for.
fn frozen_v1(file: &str) -> (String, Key, String, String) {
    let path = format!("{}/../../docs/vectors/{file}.json", env!("CARGO_MANIFEST_DIR"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let s = |k: &str| v[k].as_str().unwrap().to_string();
    (
        s("name"),
        Key::from_line(v["keys"].as_array().unwrap().last().unwrap().as_str().unwrap()).unwrap(),
        s("job_id"),
        s("owner"),
    )
}

#[test]
fn round_trip_keeps_every_value() {
    let key = Key::generate().unwrap();
    let mut msg = database();
    msg.allow = Some(vec!["bob".into(), "1002".into()]);
    msg.expires_at = Some(1_800_000_000);
    msg.connection.insert("note".into(), "ünïcödé, \"quotes\", 'single', a|pipe, <b>tags</b>\tand tab".into());
    let name = seal(&msg, &key, "mt", "class101", JOB).unwrap();
    let share = open(&name, JOB, std::slice::from_ref(&key)).unwrap();
    assert_eq!(share.message, msg);
    assert_eq!(share.group, "class101");
    assert_eq!(share.prefix, "mt");
    assert_eq!(share.version, "2");
    assert_eq!(share.key_id.as_deref(), Some(key.id_hex().as_str()));
    assert_eq!(share.size, name.len());
}

#[test]
fn names_are_safe_in_a_job_name_and_a_shell_word() {
    let key = Key::generate().unwrap();
    let name = seal(&database(), &key, "mt", "class101", JOB).unwrap();
    let payload = name.rsplit('|').next().unwrap();
    assert!(payload.starts_with("2."));
    assert!(payload.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{payload}");
    assert!(name.is_ascii());
}

#[test]
fn each_iv_is_fresh() {
    let key = Key::generate().unwrap();
    let a = seal(&ollama(), &key, "mt", "g", JOB).unwrap();
    let b = seal(&ollama(), &key, "mt", "g", JOB).unwrap();
    assert_ne!(a, b);
    assert_eq!(a.len(), b.len());
}

fn assert_every_flipped_byte_is_rejected(name: &str, key: &Key, job: Binding) {
    assert_eq!(kinds_of(open(name, job, std::slice::from_ref(key))), "ok");
    let (head, data) = name.split_at(name.rfind('.').unwrap() + 1);
    let body = URL_SAFE_NO_PAD.decode(data).unwrap();
    for i in 0..body.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = body.clone();
            b[i] ^= bit;
            let forged = format!("{head}{}", URL_SAFE_NO_PAD.encode(&b));
            let kind = kinds_of(open(&forged, job, std::slice::from_ref(key)));
            // The first 4 bytes are the key id: flipping them names a key we do not have.
            let want = if i < 4 { "unknown_key" } else { "bad_seal" };
            assert_eq!(kind, want, "byte {i} bit {bit:#x}");
        }
    }
}

#[test]
fn every_flipped_payload_byte_is_rejected() {
    let key = Key::generate().unwrap();
    assert_every_flipped_byte_is_rejected(&seal(&ollama(), &key, "mt", "class101", JOB).unwrap(), &key, JOB);
    let (v1, key, job_id, owner) = frozen_v1("v1-ollama");
    assert_every_flipped_byte_is_rejected(&v1, &key, Binding { job_id: &job_id, owner: &owner, ..JOB });
}

#[test]
fn every_changed_payload_character_is_rejected() {
    let key = Key::generate().unwrap();
    let name = seal(&ollama(), &key, "mt", "class101", JOB).unwrap();
    let start = name.rfind('.').unwrap() + 1;
    for i in start..name.len() {
        let mut forged = name.clone().into_bytes();
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_ne!(kinds_of(open(&forged, JOB, std::slice::from_ref(&key))), "ok", "char {i}");
    }
}

#[test]
fn a_name_is_bound_to_its_job_owner_group_prefix_and_key() {
    let key = Key::generate().unwrap();
    let other_key = Key::generate().unwrap();
    let name = seal(&ollama(), &key, "mt", "class101", JOB).unwrap();
    let keys = std::slice::from_ref(&key);
    assert_eq!(kinds_of(open(&name, Binding { job_id: "4243", ..JOB }, keys)), "bad_seal");
    assert_eq!(kinds_of(open(&name, Binding { owner: "mallory", ..JOB }, keys)), "bad_seal");
    let moved = name.replacen("|class101|", "|class102|", 1);
    assert_eq!(kinds_of(open(&moved, JOB, keys)), "bad_seal");
    let relabelled = name.replacen("mt|", "mu|", 1);
    assert_eq!(kinds_of(open(&relabelled, JOB, keys)), "bad_seal");
    assert_eq!(kinds_of(open(&name, JOB, std::slice::from_ref(&other_key))), "unknown_key");
    // A different key that claims the same id still fails the MAC.
    assert_eq!(kinds_of(open(&name, JOB, &[])), "unknown_key");
}

#[test]
fn a_v2_name_is_bound_to_its_cluster_and_run() {
    let key = Key::generate().unwrap();
    let keys = std::slice::from_ref(&key);
    let name = seal(&ollama(), &key, "mt", "class101", JOB).unwrap();
    assert_eq!(parse(&name).unwrap().format, Format::V1 { version: Version::V2, key_id: key.id() });
    // The requeue case: run 0's name, still on the job when run 1 starts.
    assert_eq!(kinds_of(open(&name, Binding { restarts: 1, ..JOB }, keys)), "bad_seal");
    assert_eq!(kinds_of(open(&name, Binding { cluster: "beta", ..JOB }, keys)), "bad_seal");
    assert_eq!(kinds_of(open(&name, Binding { cluster: "alph", ..JOB }, keys)), "bad_seal");
    let e = open(&name, Binding { cluster: "", ..JOB }, keys).unwrap_err();
    assert_eq!(e.kind(), "invalid");
    assert!(e.to_string().contains("cluster"), "{e}");
    assert_eq!(kinds_of(open(&name, Binding { cluster: "a|b", ..JOB }, keys)), "invalid");
    // A later run opens only its own name.
    let run3 = Binding { cluster: "cluster-2.example", restarts: 3, ..JOB };
    let name3 = seal(&ollama(), &key, "mt", "class101", run3).unwrap();
    assert_eq!(open(&name3, run3, keys).unwrap().message, ollama());
    for restarts in [0, 2, 4, 30, u32::MAX] {
        assert_eq!(kinds_of(open(&name3, Binding { restarts, ..run3 }, keys)), "bad_seal", "{restarts}");
    }
    // Restart counts are decimal text in the MAC, length-prefixed: 1 ‖ "1" is not 11.
    let r11 = seal(&ollama(), &key, "mt", "class101", Binding { restarts: 11, ..JOB }).unwrap();
    assert_eq!(kinds_of(open(&r11, Binding { restarts: 1, cluster: "alpha1", ..JOB }, keys)), "bad_seal");
    let c = seal(&ollama(), &key, "mt", "class101", Binding { cluster: "alpha1", restarts: 1, ..JOB }).unwrap();
    assert_eq!(kinds_of(open(&c, Binding { cluster: "alpha", restarts: 11, ..JOB }, keys)), "bad_seal");
}

#[test]
fn sealing_needs_a_cluster_name() {
    let key = Key::generate().unwrap();
    for cluster in ["", "a b", "a|b", "a/b", &"c".repeat(65)] {
        let e = seal(&ollama(), &key, "mt", "g", Binding { cluster, ..JOB }).unwrap_err();
        assert_eq!(e.kind(), "invalid", "{cluster:?}");
    }
    seal(&ollama(), &key, "mt", "g", Binding { cluster: &"c".repeat(64), restarts: u32::MAX, ..JOB }).unwrap();
}

#[test]
fn v1_names_still_open_and_cannot_tell_runs_or_clusters_apart() {
    let (name, key, job_id, owner) = frozen_v1("v1-ollama");
    let keys = std::slice::from_ref(&key);
    assert_eq!(parse(&name).unwrap().format.version_str(), "1");
    for (cluster, restarts) in [("", 0), ("alpha", 0), ("beta", 5)] {
        let share = open(&name, Binding { job_id: &job_id, owner: &owner, cluster, restarts }, keys).unwrap();
        assert_eq!(share.version, "1");
        assert_eq!(share.message, ollama());
    }
    let b = Binding { job_id: &job_id, owner: &owner, ..JOB };
    assert_eq!(kinds_of(open(&name, Binding { job_id: "4243", ..b }, keys)), "bad_seal");
    // Neither marker can be swapped: the version is MACed.
    assert_eq!(kinds_of(open(&name.replacen("|1.", "|2.", 1), b, keys)), "bad_seal");
    let v2 = seal(&ollama(), &key, "mt", "class101", b).unwrap();
    assert_eq!(kinds_of(open(&v2.replacen("|2.", "|1.", 1), b, keys)), "bad_seal");
}

#[test]
fn a_v2_name_is_as_long_as_the_v1_name_of_the_same_content() {
    // The cluster and restart count are MACed, never carried.
    let (v1, key, ..) = frozen_v1("v1-ollama");
    let v2 = seal(&ollama(), &key, "mt", "class101", Binding { cluster: &"c".repeat(64), restarts: u32::MAX, ..JOB })
        .unwrap();
    assert_eq!(v2.len(), v1.len());
    assert_eq!(v2.split_once('.').unwrap().0.replacen("|2", "|1", 1), v1.split_once('.').unwrap().0);
}

#[test]
fn truncation_at_every_length_is_an_error_never_a_panic() {
    let key = Key::generate().unwrap();
    let name = seal(&database(), &key, "mt", "class101", JOB).unwrap();
    for len in 0..name.len() {
        let kind = kinds_of(open(&name[..len], JOB, std::slice::from_ref(&key)));
        assert!(["malformed", "bad_seal", "unknown_key", "legacy_disabled"].contains(&kind), "len {len}: {kind}");
    }
}

#[test]
fn versions_are_told_apart() {
    assert!(matches!(parse("mt|g|3.AAAAAAAA").unwrap_err(), Error::UnsupportedVersion(v) if v == "3"));
    assert_eq!(parse("mt|g|1.AAAAAAAA").unwrap().format.version_str(), "1");
    assert_eq!(parse("mt|g|2.AAAAAAAA").unwrap().format.version_str(), "2");
    assert_eq!(parse("mt|g|02.AAAAAAAA").unwrap_err().kind(), "unsupported_version");
    assert!(matches!(parse("mt|g|17.xyz").unwrap_err(), Error::UnsupportedVersion(_)));
    assert_eq!(parse("mt|g|x.AAAA").unwrap_err().kind(), "malformed");
    assert_eq!(parse("sys/dashboard|g|QUJD").unwrap().format, Format::Legacy);
    assert_eq!(open("sys/dashboard|g|QUJD", JOB, &[]).unwrap_err().kind(), "legacy_disabled");
    for bad in
        ["", "a", "a|b", "a|b|c|d", "|g|1.x", "mt||1.AAAAAAAA", "mt|g|", "mt|../x|1.AAAAAAAA", "m t|g|1.AAAAAAAA"]
    {
        assert_eq!(parse(bad).unwrap_err().kind(), "malformed", "{bad:?}");
    }
}

#[test]
fn size_is_exact_and_the_limit_is_enforced_with_a_hint() {
    let key = Key::generate().unwrap();
    let mut msg = ollama();
    let name = seal(&msg, &key, "mt", "class101", JOB).unwrap();
    assert!(name.len() < NAME_LIMIT);
    // Incompressible values so the name must grow past the limit.
    let mut n = 0u64;
    let err = loop {
        n += 1;
        let v: String = (0..40).map(|i| char::from(b'a' + ((n * 7919 + i * 104729) % 26) as u8)).collect();
        msg.connection.insert(format!("k{n}"), format!("{v}{}", n * 2654435761));
        match seal(&msg, &key, "mt", "class101", JOB) {
            Ok(name) => assert!(name.len() <= NAME_LIMIT),
            Err(e) => break e,
        }
    };
    let Error::TooLarge { size, limit, .. } = &err else { panic!("{err:?}") };
    assert!(*size > 1024 && *limit == 1024);
    let text = err.to_string();
    assert!(text.contains(&format!("would be {size} characters")) && text.contains("trim about"), "{text}");
}

#[test]
fn seal_refuses_invalid_input_with_the_reason() {
    let key = Key::generate().unwrap();
    let mut msg = ollama();
    msg.connection.insert("Bad-Key".into(), "x".into());
    let e = seal(&msg, &key, "mt", "class101", JOB).unwrap_err();
    assert!(e.to_string().contains("\"Bad-Key\""), "{e}");
    assert_eq!(seal(&ollama(), &key, "mt", "a/b", JOB).unwrap_err().kind(), "invalid");
    assert_eq!(seal(&ollama(), &key, "m|t", "g", JOB).unwrap_err().kind(), "invalid");
    assert_eq!(seal(&ollama(), &key, "mt", "g", Binding { job_id: "12a", ..JOB }).unwrap_err().kind(), "invalid");
    let mut msg = ollama();
    msg.delivery = "../../etc".into();
    assert_eq!(seal(&msg, &key, "mt", "g", JOB).unwrap_err().kind(), "invalid");
}

#[test]
fn seal_refuses_content_receivers_would_refuse_as_a_bomb() {
    let key = Key::generate().unwrap();
    // 20 values of 1000 characters: each valid, and they deflate into a short name, but the JSON is
    // over the 16 KiB a receiver inflates: every member would see "content inflates beyond".
    let mut msg = ollama();
    for i in 0..20 {
        msg.connection.insert(format!("v{i}"), "a".repeat(1000));
    }
    let e = seal(&msg, &key, "mt", "g", JOB).unwrap_err();
    assert_eq!(e.kind(), "invalid");
    assert!(e.to_string().contains("over the 16384 bytes receivers read"), "{e}");
    // 15 of them fit: sealed, and opened.
    msg.connection.retain(|k, _| !k.starts_with('v') || k[1..].parse::<u32>().unwrap() < 15);
    let name = seal(&msg, &key, "mt", "g", JOB).unwrap();
    assert_eq!(open(&name, JOB, std::slice::from_ref(&key)).unwrap().message, msg);
}

#[test]
fn hostile_names_never_panic() {
    let key = Key::generate().unwrap();
    let seeds = ["mt|g|1.", "mt|g|1.A", "mt|g|1.AAAAAAAAAAAAAAAA", "mt|g|1.////", "mt|g|1.é", "x|g|====", "x|g|A==="];
    for s in seeds {
        let _ = open(s, JOB, std::slice::from_ref(&key));
        let _ = open(&s.replace("|1.", "|2."), JOB, std::slice::from_ref(&key));
    }
    // Random printable garbage behind a valid-looking header.
    let mut state = 0x2545F4914F6CDD1Du64;
    for i in 0..4000 {
        let len = (state % 300) as usize;
        let mut s = String::from(if i % 2 == 0 { "mt|g|1." } else { "mt|g|2." });
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            s.push(char::from(b'!' + (state % 94) as u8));
        }
        let _ = open(&s, JOB, std::slice::from_ref(&key));
    }
}

#[test]
fn oversized_input_is_an_error_never_a_panic() {
    let key = Key::generate().unwrap();
    let mut msg = ollama();
    let mut x = 88172645463325252u64;
    for i in 0..80 {
        let v: String = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'!' + (x % 90) as u8)
            })
            .collect();
        msg.connection.insert(format!("k{i}"), v);
    }
    assert_eq!(seal(&msg, &key, "mt", "g", JOB).unwrap_err().kind(), "too_large");
    // A 93 KB name carrying a real key id.
    let name = seal(&ollama(), &key, "mt", "g", JOB).unwrap();
    let huge = format!("{name}{}", "A".repeat(93_000));
    let e = open(&huge, JOB, std::slice::from_ref(&key)).unwrap_err();
    assert_eq!(e.kind(), "malformed");
    assert!(e.to_string().contains("over Slurm's 1024"), "{e}");
}

#[test]
fn expiries_past_the_year_9999_are_refused() {
    let key = Key::generate().unwrap();
    let mut msg = ollama();
    msg.expires_at = Some(u64::MAX);
    assert_eq!(seal(&msg, &key, "mt", "g", JOB).unwrap_err().kind(), "invalid");
    msg.expires_at = Some(253_402_300_799);
    seal(&msg, &key, "mt", "g", JOB).unwrap();
}

#[test]
fn any_all_digit_version_is_unsupported_and_bad_characters_are_malformed() {
    assert_eq!(parse("mt|g|123456789012.x").unwrap_err().kind(), "unsupported_version");
    assert_eq!(parse("mt|g|1.AAAAAAAAé€").unwrap_err().kind(), "malformed");
}
