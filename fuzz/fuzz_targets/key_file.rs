//! The key file parser: `keys::parse_keys` (a key file's text) and `Key::from_line` (each line).
//!
//! Asserts: a line `from_line` accepts is exactly the canonical `mtk1:<id>:<secret>` of the key it
//! gives (trimmed), so a key has one spelling and its id always matches its secret; `parse_keys`
//! accepts a text only when every non-comment line is a key, returns those keys in order, and never
//! an empty list; the keys it returns parse back from their own lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multitenant_core::keys::parse_keys;
use multitenant_core::Key;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(key) = Key::from_line(text) {
        assert_eq!(key.to_line(), text.trim());
        assert_eq!(Key::from_line(&key.to_line()), Ok(key));
    }
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    match parse_keys(text) {
        Ok(keys) => {
            assert!(!keys.is_empty());
            assert_eq!(keys.len(), lines.len());
            for (key, line) in keys.iter().zip(&lines) {
                assert_eq!(key.to_line(), *line);
                assert_eq!(Key::from_line(line).as_ref(), Ok(key));
            }
        }
        Err(e) => {
            assert!(!e.is_empty());
            assert!(lines.is_empty() || lines.iter().any(|l| Key::from_line(l).is_err()), "{e}");
        }
    }
});
