//! The message content validator: `Message::from_json` (which runs `validate`) and the `check_*` rules.
//!
//! The input is tried as the sealed JSON itself, and as text for each field rule: alone, inside a
//! message that is otherwise valid (`validate`), and JSON-encoded in such a message (`from_json`).
//!
//! Asserts: a message `from_json` accepts passes `validate`, and survives `to_json` → `from_json`
//! unchanged; refusals are `Malformed`; each rule's verdict is the same alone, through `validate` and
//! through `from_json`; and what a rule accepts has the shape docs/envelope.md gives (lengths,
//! alphabets, no path parts, no controls, bidi overrides, zero-width or non-space whitespace in app
//! names, no reserved connection keys).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use multitenant_core::message::{
    check_app, check_connection_key, check_delivery, check_group, check_session_id, check_user, is_user_name,
    MAX_APP_CHARS,
};
use multitenant_core::{Error, Message, Method};
use serde_json::json;

fn base() -> Message {
    Message {
        session_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        app: "Ollama_API".into(),
        method: Method::Card,
        delivery: "sys/multitenant-delivery_default".into(),
        connection: BTreeMap::from([("host".to_string(), "node017".to_string())]),
        allow: None,
        expires_at: None,
    }
}

/// The same verdict from the rule, from `validate` on `m`, and from `from_json` on `m`'s JSON.
fn agree(rule: bool, m: &Message, wire: serde_json::Value) {
    assert_eq!(rule, m.validate().is_ok(), "validate disagrees with the rule on {m:?}");
    let parsed = Message::from_json(&serde_json::to_vec(&wire).unwrap());
    match &parsed {
        Ok(got) => assert_eq!(got, m),
        Err(e) => assert!(matches!(e, Error::Malformed(_)), "{e:?}"),
    }
    assert_eq!(rule, parsed.is_ok(), "from_json disagrees with the rule on {m:?}");
}

fn wire(m: &Message) -> serde_json::Value {
    json!({"i": m.session_id, "a": m.app, "m": m.method.as_str(), "d": m.delivery, "c": m.connection})
}

fn word(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fuzz_target!(|data: &[u8]| {
    match Message::from_json(data) {
        Ok(m) => {
            m.validate().expect("from_json validates");
            assert_eq!(Message::from_json(&m.to_json()).expect("to_json reads back"), m);
        }
        Err(e) => assert!(matches!(e, Error::Malformed(_)), "{e:?}"),
    }
    let Ok(s) = std::str::from_utf8(data) else { return };

    let ok = check_session_id(s).is_ok();
    if ok {
        assert!((1..=64).contains(&s.len()) && s.as_bytes()[0].is_ascii_alphanumeric());
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    }
    let m = Message { session_id: s.into(), ..base() };
    agree(ok, &m, wire(&m));

    let ok = check_app(s).is_ok();
    if ok {
        let n = s.chars().count();
        assert!((1..=MAX_APP_CHARS).contains(&n) && !s.starts_with(' ') && !s.ends_with(' '));
        assert!(s.chars().any(|c| c != ' '));
        for c in s.chars() {
            assert!(!c.is_control() && (c == ' ' || !c.is_whitespace()), "U+{:04X}", c as u32);
            let hidden = matches!(c, '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{180E}'
                | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{2800}'
                | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{E000}'..='\u{F8FF}'
                | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}');
            assert!(!hidden, "U+{:04X} accepted in an app name", c as u32);
        }
    }
    let m = Message { app: s.into(), ..base() };
    agree(ok, &m, wire(&m));

    let ok = check_delivery(s).is_ok();
    if ok {
        let parts: Vec<&str> = s.split('/').collect();
        assert!(matches!(parts[..], ["sys" | "dev", _] | ["usr", _, _]), "{s:?}");
        let app = parts[parts.len() - 1];
        assert!((1..=64).contains(&app.len()) && app.as_bytes()[0].is_ascii_alphanumeric());
        assert!(app.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')));
        assert!(parts.len() == 2 || is_user_name(parts[1]));
    }
    let m = Message { delivery: s.into(), ..base() };
    agree(ok, &m, wire(&m));

    let ok = check_connection_key(s).is_ok();
    if ok {
        assert!((1..=64).contains(&s.len()) && (s.as_bytes()[0].is_ascii_lowercase() || s.starts_with('_')));
        assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        assert!(s != "jobid" && !s.starts_with("mt_") && !s.starts_with("__"));
        assert!(!["send", "to_h", "instance_eval", "class", "method_missing", "eval"].contains(&s));
    }
    let m = Message { connection: BTreeMap::from([(s.to_string(), "v".to_string())]), ..base() };
    agree(ok, &m, wire(&m));

    // A connection value: at most 1024 characters, no NUL.
    let ok = s.chars().count() <= 1024 && !s.contains('\0');
    let m = Message { connection: BTreeMap::from([("host".to_string(), s.to_string())]), ..base() };
    agree(ok, &m, wire(&m));

    let ok = check_user(s).is_ok();
    assert_eq!(ok, is_user_name(s));
    if ok {
        assert!((1..=64).contains(&s.len()) && word(&s[..1]));
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@')));
    }
    let m = Message { allow: Some(vec!["alice".into(), s.into()]), ..base() };
    let mut w = wire(&m);
    w["u"] = json!(m.allow);
    agree(ok, &m, w);

    if check_group(s).is_ok() {
        assert!((1..=64).contains(&s.len()) && word(&s[..1]) && !s.contains('/'));
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')));
    }
    if Method::parse(s).is_ok() {
        assert!(s == "card" || s == "form");
    }
});
