//! Seal-then-open of fuzzed plaintext: `envelope::seal_bytes` (v2) then `envelope::open`.
//!
//! Input: `mode, key, owner, cluster, prefix, group` (one byte each, indexes into the lists below),
//! the job id (u64 LE) and the restart count (u32 LE), then the content. Mode (low 4 bits) 0 seals the
//! content as the plaintext itself (any flag byte), 1 as `0x00 ‖ content` (JSON), 2 as
//! `0x01 ‖ DEFLATE(content)`; with the mode's high bit set, a message that opens is also re-sealed
//! with `seal` (the product's sealer, whose best-compression deflate is most of this target's time).
//!
//! Asserts: `seal_bytes` refuses exactly the plaintexts whose name would pass 1024 bytes, else writes a
//! name of the predicted length that parses as v2 under the key's id; `open` of that name returns the
//! message a reference decoding (flag, bounded inflate, `Message::from_json`) finds, or `Malformed`
//! where that finds none (never another error); the name does not open for the next restart count,
//! another cluster, as a v1 name, or without its key; and a message that opens re-seals with `seal`
//! (unless too large) and opens to the same message.
#![no_main]

use std::io::Read;

use flate2::read::DeflateDecoder;
use libfuzzer_sys::fuzz_target;
use multitenant_core::envelope::{self, Format, Version, MAX_PLAINTEXT};
use multitenant_core::{Binding, Error, Message, NAME_LIMIT};
use multitenant_fuzz::{deflate, keys};

const OWNERS: &[&str] = &["alice", "b.o-b@x", "_1"];
const CLUSTERS: &[&str] = &["alpha", "cluster-2.example", "c"];
const PREFIXES: &[&str] = &["mt", "sys/dashboard", "x"];
const GROUPS: &[&str] = &["class101", "_g", "a.b-c"];
const HEADER: usize = 6 + 8 + 4;

fn pick<'a>(list: &[&'a str], b: u8) -> &'a str {
    list[usize::from(b) % list.len()]
}

/// What `open` must find in a plaintext that verified: the flag, at most `MAX_PLAINTEXT` inflated
/// bytes, a valid message.
fn reference(pt: &[u8]) -> Option<Message> {
    let json = match pt.split_first()? {
        (0, json) => json.to_vec(),
        (1, z) => {
            let mut out = Vec::new();
            DeflateDecoder::new(z).take(MAX_PLAINTEXT as u64 + 1).read_to_end(&mut out).ok()?;
            if out.len() > MAX_PLAINTEXT {
                return None;
            }
            out
        }
        _ => return None,
    };
    Message::from_json(&json).ok()
}

fn sealed_len(len: usize, prefix: &str, group: &str) -> usize {
    let body = 4 + 16 + (len / 16 + 1) * 16 + 16;
    prefix.len() + group.len() + 2 + 2 + (body * 4).div_ceil(3)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let (h, content) = data.split_at(HEADER);
    let all = keys();
    let key = &all[usize::from(h[1]) % all.len()];
    let (owner, cluster, prefix, group) =
        (pick(OWNERS, h[2]), pick(CLUSTERS, h[3]), pick(PREFIXES, h[4]), pick(GROUPS, h[5]));
    let job_id = u64::from_le_bytes(h[6..14].try_into().unwrap()).to_string();
    let restarts = u32::from_le_bytes(h[14..18].try_into().unwrap());
    let b = Binding { job_id: &job_id, owner, cluster, restarts };
    let pt = match (h[0] & 0x0F) % 3 {
        0 => content.to_vec(),
        1 => [&[0u8][..], content].concat(),
        _ => [&[1u8][..], &deflate(content)].concat(),
    };

    let size = sealed_len(pt.len(), prefix, group);
    let name = match envelope::seal_bytes(&pt, key, prefix, group, b) {
        Ok(name) => name,
        Err(Error::TooLarge { size: s, limit, .. }) => {
            assert!(size > NAME_LIMIT && s == size && limit == NAME_LIMIT, "refused {s} (predicted {size})");
            return;
        }
        Err(e) => panic!("seal_bytes failed: {e:?}"),
    };
    assert_eq!(name.len(), size);
    assert!(name.len() <= NAME_LIMIT);
    let p = envelope::parse(&name).expect("a sealed name parses");
    assert_eq!(p.format, Format::V1 { version: Version::V2, key_id: key.id() });
    assert_eq!((p.prefix, p.group), (prefix, group));

    let expected = reference(&pt);
    match (&expected, envelope::open(&name, b, all)) {
        (Some(m), Ok(share)) => {
            assert_eq!(share.message, *m);
            assert_eq!(share.version, "2");
            assert_eq!(share.size, name.len());
        }
        (None, Err(Error::Malformed(_))) => {}
        (want, got) => panic!("expected {want:?}, open gave {got:?}"),
    }

    let next_run = Binding { restarts: restarts.wrapping_add(1), ..b };
    assert_eq!(envelope::open(&name, next_run, all).unwrap_err(), Error::BadSeal);
    let other_cluster = Binding { cluster: if cluster == "beta" { "gamma" } else { "beta" }, ..b };
    assert_eq!(envelope::open(&name, other_cluster, all).unwrap_err(), Error::BadSeal);
    let as_v1 = name.replacen("|2.", "|1.", 1);
    assert_eq!(envelope::open(&as_v1, b, all).unwrap_err(), Error::BadSeal);
    let others: Vec<_> = all.iter().filter(|k| k.id() != key.id()).cloned().collect();
    assert!(matches!(envelope::open(&name, b, &others), Err(Error::UnknownKey { .. })));

    if let Some(m) = expected.filter(|_| h[0] & 0x80 != 0) {
        match envelope::seal(&m, key, prefix, group, b) {
            Ok(again) => assert_eq!(envelope::open(&again, b, all).expect("a sealed message opens").message, m),
            Err(Error::TooLarge { .. }) => {}
            Err(e) => panic!("a message that opened does not seal: {e:?}"),
        }
    }
});
