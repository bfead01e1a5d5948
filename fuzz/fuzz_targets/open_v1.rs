//! Raw job names, as anyone can set them, through `envelope::parse` and `envelope::open` with the
//! vectors' keys and fixed bindings. Asserts: `open` fails exactly as `parse` does on names `parse`
//! refuses; a legacy name is `LegacyDisabled`; whatever opens is at most 1024 bytes, carries a valid
//! message, reports the parts `parse` found, and does not open for another job id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multitenant_core::envelope::{self, Format};
use multitenant_core::{Binding, Error, NAME_LIMIT};
use multitenant_fuzz::{keys, BINDINGS};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else { return };
    let parsed = envelope::parse(name);
    if let Ok(p) = &parsed {
        assert!(name.len() <= NAME_LIMIT);
        assert_eq!(format!("{}|{}|{}", p.prefix, p.group, p.payload), name);
        assert!(envelope::check_prefix(p.prefix).is_ok());
        assert!(multitenant_core::message::check_group(p.group).is_ok());
        assert!(!p.payload.contains('|'));
        if let Format::V1 { version, .. } = p.format {
            assert!(p.payload.starts_with(&format!("{}.", version.as_str())));
        }
    }
    for &b in BINDINGS {
        let opened = envelope::open(name, b, keys());
        let p = match (&parsed, opened) {
            (Err(pe), Err(oe)) => {
                assert_eq!(*pe, oe, "open must refuse what parse refuses, for the same reason");
                continue;
            }
            (Err(pe), Ok(_)) => panic!("opened a name parse refuses ({pe})"),
            (Ok(p), Err(e)) => {
                match p.format {
                    Format::Legacy => assert_eq!(e, Error::LegacyDisabled),
                    Format::V1 { .. } => {
                        assert!(!matches!(e, Error::LegacyDisabled | Error::UnsupportedVersion(_)), "{e:?}")
                    }
                }
                continue;
            }
            (Ok(p), Ok(share)) => {
                assert_eq!(share.size, name.len());
                assert_eq!(share.prefix, p.prefix);
                assert_eq!(share.group, p.group);
                assert_eq!(share.version, p.format.version_str());
                assert_eq!(share.key_id, p.format.key_id_hex());
                share.message.validate().expect("an opened message is valid");
                p
            }
        };
        // Job id and owner are bound by every version.
        let other_job = Binding { job_id: "4243", ..b };
        assert_eq!(envelope::open(name, other_job, keys()).unwrap_err(), Error::BadSeal, "{:?}", p.format);
        let other_owner = Binding { owner: "mallory", ..b };
        assert_eq!(envelope::open(name, other_owner, keys()).unwrap_err(), Error::BadSeal);
    }
});
