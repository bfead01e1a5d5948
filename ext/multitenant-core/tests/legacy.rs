//! The legacy decoder against names made by the real `gzip | openssl enc` pipeline.

use std::process::{Command, Stdio};

use multitenant_core::{open_legacy, Binding, Method};

fn hex_padded(s: &str, digits: usize) -> String {
    let mut h: String = s.bytes().map(|b| format!("{b:02x}")).collect();
    while h.len() < digits {
        h.push('0');
    }
    h
}

/// Exactly the first implementation's pipeline, run by the real tools.
fn legacy_name(group: &str, plaintext: &str, b: Binding) -> String {
    let key = hex_padded(&format!("{}{}", b.job_id, b.owner), 64);
    let iv = hex_padded(&format!("{}{}", b.job_id, b.job_id), 32);
    let script = r#"printf %s "$MSG" | gzip | openssl enc -aes-256-cbc -e -a -A -K "$K" -iv "$IV""#;
    let out = Command::new("bash")
        .args(["-c", script])
        .env("MSG", plaintext)
        .env("K", key)
        .env("IV", iv)
        .stderr(Stdio::null())
        .output()
        .expect("bash, gzip and openssl are installed");
    assert!(out.status.success());
    format!("sys/dashboard|{group}|{}", String::from_utf8(out.stdout).unwrap().trim())
}

const OLLAMA: &str = "{'mtu':'1001,1002','mti':'0f8fad5b-d9cb-469f-a165-70867728950e','mta':'Ollama_API','mtm':'card','mtd':'sys/multitenant-delivery_default'}|{'host':'node1','port':'4000','ollama_url':'http://node1:4000'}";

#[test]
fn reads_a_real_legacy_name() {
    let b = Binding { job_id: "4242", owner: "alice", cluster: "", restarts: 0 };
    let name = legacy_name("class101", OLLAMA, b);
    let share = open_legacy(&name, b).unwrap();
    assert_eq!(share.version, "legacy");
    // Like v1, legacy names bind no cluster and no run.
    assert_eq!(open_legacy(&name, Binding { cluster: "beta", restarts: 3, ..b }).unwrap().message, share.message);
    assert_eq!(share.group, "class101");
    assert_eq!(share.prefix, "sys/dashboard");
    let m = share.message;
    assert_eq!(m.session_id, "0f8fad5b-d9cb-469f-a165-70867728950e");
    assert_eq!(m.app, "Ollama_API");
    assert_eq!(m.method, Method::Card);
    assert_eq!(m.delivery, "sys/multitenant-delivery_default");
    assert_eq!(m.allow, Some(vec!["1001".to_string(), "1002".to_string()]));
    assert_eq!(m.connection["ollama_url"], "http://node1:4000");
    assert_eq!(m.connection.len(), 3);
}

#[test]
fn over_long_key_material_is_cut_the_way_openssl_cuts_it() {
    // 8 + 27 bytes > 32: openssl ignores the excess; the first implementation's Ruby side raised here.
    let b = Binding { job_id: "12345678", owner: "a_very_long_username_indeed", cluster: "", restarts: 0 };
    let name = legacy_name("g", OLLAMA, b);
    assert_eq!(open_legacy(&name, b).unwrap().message.app, "Ollama_API");
}

#[test]
fn another_job_or_owner_does_not_decode() {
    let b = Binding { job_id: "4242", owner: "alice", cluster: "", restarts: 0 };
    let name = legacy_name("g", OLLAMA, b);
    for other in [
        Binding { job_id: "4243", owner: "alice", cluster: "", restarts: 0 },
        Binding { job_id: "4242", owner: "alicf", cluster: "", restarts: 0 },
    ] {
        let e = open_legacy(&name, other).unwrap_err();
        assert_eq!(e.kind(), "malformed", "{e}");
    }
}

#[test]
fn hostile_legacy_content_is_refused_after_decoding() {
    let b = Binding { job_id: "7", owner: "eve", cluster: "", restarts: 0 };
    let cases = [
        ("{'mtu':'','mti':'../../x','mta':'A','mtm':'card','mtd':'sys/d'}|{}", "session id"),
        ("{'mtu':'','mti':'s','mta':'A','mtm':'card','mtd':'/etc/passwd'}|{}", "delivery token"),
        ("{'mtu':'','mti':'s','mta':'A','mtm':'both','mtd':'sys/d'}|{}", "method"),
        ("{'mtu':'','mti':'s','mta':'A','mtm':'card','mtd':'sys/d'}|{'Bad-Key':'x'}", "connection key"),
        ("{'mtu':'','mti':'s','mta':'A','mtm':'card'}|{}", "missing mtd"),
        ("{'mtu':'','mti':'s','mta':'A','mtm':'card','mtd':'sys/d'}", "no '|'"),
        ("not json", "legacy content"),
    ];
    for (text, why) in cases {
        let e = open_legacy(&legacy_name("g", text, b), b).unwrap_err();
        assert!(e.to_string().contains(why), "{text}: {e}");
    }
}

#[test]
fn a_gzip_bomb_is_bounded() {
    let b = Binding { job_id: "7", owner: "eve", cluster: "", restarts: 0 };
    let big = format!("{{'mtu':'','mti':'s','mta':'{}','mtm':'card','mtd':'sys/d'}}|{{}}", "A".repeat(100_000));
    let e = open_legacy(&legacy_name("g", &big, b), b).unwrap_err();
    assert!(e.to_string().contains("inflates beyond"), "{e}");
}

#[test]
fn multi_member_gzip_is_read_whole() {
    let b = Binding { job_id: "99", owner: "bob", cluster: "", restarts: 0 };
    let (first, second) = OLLAMA.split_at(40);
    let key = hex_padded("99bob", 64);
    let iv = hex_padded("9999", 32);
    let script =
        r#"{ printf %s "$A" | gzip; printf %s "$B" | gzip; } | openssl enc -aes-256-cbc -e -a -A -K "$K" -iv "$IV""#;
    let out = Command::new("bash")
        .args(["-c", script])
        .env("A", first)
        .env("B", second)
        .env("K", key)
        .env("IV", iv)
        .output()
        .unwrap();
    let name = format!("sys/dashboard|g|{}", String::from_utf8(out.stdout).unwrap().trim());
    assert_eq!(open_legacy(&name, b).unwrap().message.connection["host"], "node1");
}
