//! The card manifest reader: `manifest::parse`, which `manifest::read` applies to the bytes of
//! `<dataroot>/multitenant/cards.json` (a file in the user's home: anything may be in it).
//!
//! Asserts: whatever parses has version 1 (as `read` sets it), serializes as `write` does
//! (`to_vec_pretty`, which the product `expect`s not to fail), and reads back to the same cards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multitenant_core::manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = manifest::parse(data) else { return };
    assert_eq!(m.version, 1);
    let body = serde_json::to_vec_pretty(&m).expect("manifest serializes");
    let again = manifest::parse(&body).expect("a written manifest reads back");
    assert_eq!(again.cards, m.cards);
});
