//! The legacy decoder, `legacy::open_legacy`, for job 4242 of alice. Its key is public, so a hostile
//! name can carry any gzip stream and any text: the first byte picks what the rest is.
//!
//! Mode 0: the rest is the job name. Mode 1: the rest is the legacy text (`{'mtu':…}|{…}`), gzipped,
//! encrypted and base64-encoded as the first implementation did. Mode 2: the rest is the gzip stream
//! itself (hostile gzip: multi-member, bombs, bad trailers), encrypted and encoded.
//!
//! Asserts: a name that opens parses as `Format::Legacy` within 1024 bytes, reports the parts `parse`
//! found, version "legacy", no key id, and a message that passes `validate`; a name `parse` refuses
//! fails with the same error; nothing else than `Malformed` or a `parse` error comes back.
#![no_main]

use aes::cipher::{block_padding::Pkcs7, BlockModeEncrypt, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use multitenant_core::envelope::{self, Format};
use multitenant_core::legacy::{legacy_key_iv, open_legacy};
use multitenant_core::{Error, NAME_LIMIT};
use multitenant_fuzz::{gzip, LEGACY_BINDING, LEGACY_PREFIX_GROUP};

fn seal_legacy(gz: &[u8]) -> String {
    let (key, iv) = legacy_key_iv(LEGACY_BINDING);
    let ct = cbc::Encryptor::<aes::Aes256>::new(&key.into(), &iv.into()).encrypt_padded_vec::<Pkcs7>(gz);
    format!("{LEGACY_PREFIX_GROUP}{}", STANDARD.encode(ct))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let name = match mode % 3 {
        0 => match std::str::from_utf8(rest) {
            Ok(s) => s.to_string(),
            Err(_) => return,
        },
        1 => seal_legacy(&gzip(rest)),
        _ => seal_legacy(rest),
    };
    let parsed = envelope::parse(&name);
    match (parsed, open_legacy(&name, LEGACY_BINDING)) {
        (Ok(p), Ok(share)) => {
            assert_eq!(p.format, Format::Legacy);
            assert!(name.len() <= NAME_LIMIT);
            assert_eq!((share.prefix.as_str(), share.group.as_str()), (p.prefix, p.group));
            assert_eq!(share.version, "legacy");
            assert_eq!(share.key_id, None);
            assert_eq!(share.size, name.len());
            share.message.validate().expect("an opened legacy message is valid");
        }
        (Err(pe), Ok(_)) => panic!("opened a name parse refuses ({pe})"),
        (Err(pe), Err(e)) => assert_eq!(pe, e),
        (Ok(_), Err(e)) => assert!(matches!(e, Error::Malformed(_)), "{e:?}"),
    }
});
