//! Break-it review of the reusable inflater (envelope.rs `inflate`): bombs, streams that end early,
//! trailing data, the exact bound, and state left behind by an error, on the same thread and across
//! threads. The reference is the decoder it replaced (flate2's read::DeflateDecoder, bounded the same
//! way).

mod common;

use std::io::{Read, Write};

use common::{ollama, JOB};
use flate2::write::DeflateEncoder;
use flate2::Compression;
use multitenant_core::envelope::{open, seal_bytes, MAX_PLAINTEXT};
use multitenant_core::keys::Key;

fn key() -> Key {
    Key::from_secret([7u8; 32])
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut z = DeflateEncoder::new(Vec::new(), Compression::best());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

/// The content a v2 name carries: flag 1 (deflate) then the raw stream.
fn sealed_deflate(stream: &[u8]) -> String {
    let mut pt = vec![1u8];
    pt.extend_from_slice(stream);
    seal_bytes(&pt, &key(), "mt", "class101", JOB).unwrap_or_else(|e| panic!("{e} ({} bytes)", stream.len()))
}

/// The message JSON padded with spaces (JSON whitespace) to exactly `len` bytes.
fn json_of_len(len: usize) -> Vec<u8> {
    let mut j = ollama().to_json();
    assert!(j.len() <= len);
    j.resize(len, b' ');
    j
}

/// What the replaced decoder made of a stream.
fn reference(stream: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(stream)
        .take(MAX_PLAINTEXT as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() > MAX_PLAINTEXT {
        return Err("bomb".into());
    }
    Ok(out)
}

fn opens(name: &str) -> Result<(), String> {
    open(name, JOB, &[key()]).map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn exactly_max_plaintext_opens_and_one_byte_more_is_a_bomb() {
    let at = deflate(&json_of_len(MAX_PLAINTEXT));
    assert_eq!(opens(&sealed_deflate(&at)), Ok(()));
    let over = deflate(&json_of_len(MAX_PLAINTEXT + 1));
    let e = opens(&sealed_deflate(&over)).unwrap_err();
    assert!(e.contains("inflates beyond"), "{e}");
    // A real bomb: half a megabyte of spaces after the JSON.
    let bomb = deflate(&json_of_len(1 << 19));
    let e = opens(&sealed_deflate(&bomb)).unwrap_err();
    assert!(e.contains("inflates beyond"), "{e}");
    assert_eq!(reference(&bomb), Err("bomb".into()));
}

#[test]
fn an_error_leaves_nothing_for_the_next_share_on_the_thread() {
    let good = sealed_deflate(&deflate(&json_of_len(600)));
    let bomb = sealed_deflate(&deflate(&json_of_len(1 << 19)));
    let full = deflate(&json_of_len(2000));
    let early = sealed_deflate(&full[..full.len() / 2]);
    let garbage = sealed_deflate(&[0xff; 40]);
    for bad in [&bomb, &early, &garbage, &bomb] {
        assert!(opens(bad).is_err());
        assert_eq!(opens(&good), Ok(()), "after {bad}");
    }
    // And on other threads, each with its own inflater.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..50 {
                    assert!(opens(&bomb).is_err());
                    assert_eq!(opens(&good), Ok(()));
                }
            });
        }
    });
}

#[test]
fn trailing_data_and_early_ends_against_the_replaced_decoder() {
    let json = json_of_len(700);
    let stream = deflate(&json);
    // Trailing bytes after the final block: ignored by both.
    let mut trailing = stream.clone();
    trailing.extend_from_slice(b"\x00garbage after the stream");
    assert_eq!(reference(&trailing).as_deref(), Ok(&json[..]));
    assert_eq!(opens(&sealed_deflate(&trailing)), Ok(()));
    // The whole JSON in a block that is not final, and no final block: both refuse it.
    let mut z = flate2::Compress::new(Compression::best(), false);
    let mut nonfinal = Vec::with_capacity(4096);
    z.compress_vec(&json, &mut nonfinal, flate2::FlushCompress::Sync).unwrap();
    assert!(reference(&nonfinal).is_err());
    let e = opens(&sealed_deflate(&nonfinal)).unwrap_err();
    assert!(e.contains("ends early"), "{e}");
}
