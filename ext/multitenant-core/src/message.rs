//! What a share says: the sealed content of a job name, and the rules every field must follow.
//! The same rules run before sealing and after opening, so hostile content never leaves `open`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the share reaches its receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Offered as a choice in other apps' forms (through `MultiTenant.specs`).
    Form,
    /// Also delivered as a card in the receiver's "My Interactive Sessions".
    Card,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Form => "form",
            Method::Card => "card",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "form" => Ok(Method::Form),
            "card" => Ok(Method::Card),
            _ => Err(Error::Invalid(format!("method must be \"form\" or \"card\", not {s:?}"))),
        }
    }
}

/// The plaintext of a share. Field names on the wire are one letter to save room in the job name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// The owner's OOD session id; names the receiver's card file.
    #[serde(rename = "i")]
    pub session_id: String,
    /// App or preset name shown to receivers (legacy `mta`).
    #[serde(rename = "a")]
    pub app: String,
    #[serde(rename = "m")]
    pub method: Method,
    /// OOD app token of the delivery app that renders the card (legacy `mtd`).
    #[serde(rename = "d")]
    pub delivery: String,
    /// Connection values, published as-is to receivers.
    #[serde(rename = "c", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connection: BTreeMap<String, String>,
    /// Users (names, or numeric uids) the share is narrowed to; `None` means the whole group.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Expiry, seconds since the Unix epoch.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

pub const MAX_VALUE_CHARS: usize = 1024;
pub const MAX_APP_CHARS: usize = 128;
/// 9999-12-31T23:59:59Z: later expiries cannot be shown as dates and are surely mistakes.
pub const MAX_EXPIRY: u64 = 253_402_300_799;

impl Message {
    /// Checks every field; the error names the field and the rule.
    pub fn validate(&self) -> Result<()> {
        check_session_id(&self.session_id)?;
        check_app(&self.app)?;
        check_delivery(&self.delivery)?;
        for (k, v) in &self.connection {
            check_connection_key(k)?;
            if v.chars().count() > MAX_VALUE_CHARS || v.contains('\0') {
                return Err(Error::Invalid(format!(
                    "connection value {k:?} must be at most {MAX_VALUE_CHARS} characters with no NUL"
                )));
            }
        }
        if self.expires_at.is_some_and(|t| t > MAX_EXPIRY) {
            return Err(Error::Invalid("expiry must be before the year 10000".into()));
        }
        if let Some(users) = &self.allow {
            if users.is_empty() {
                return Err(Error::Invalid("allow-list is empty: omit it to share with the whole group".into()));
            }
            for u in users {
                check_user(u)?;
            }
        }
        Ok(())
    }

    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }

    /// Whether the allow-list (if any) names this user by name or uid. Group membership is checked elsewhere.
    pub fn allows(&self, user: &str, uid: u32) -> bool {
        match &self.allow {
            None => true,
            Some(users) => {
                let uid = uid.to_string();
                users.iter().any(|u| u == user || *u == uid)
            }
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a Message always serializes")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let msg: Message =
            serde_json::from_slice(bytes).map_err(|e| Error::Malformed(format!("sealed content: {e}")))?;
        msg.validate().map_err(|e| Error::Malformed(format!("sealed content: {e}")))?;
        Ok(msg)
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A session id names a file in the receiver's data root: a UUID or a short word, nothing path-like.
pub fn check_session_id(s: &str) -> Result<()> {
    let ok = (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(|c| is_word(c) || c == '-');
    ok.then_some(())
        .ok_or_else(|| Error::Invalid(format!("session id {s:?} must be 1-64 letters, digits, '-' or '_' (a UUID)")))
}

/// Characters that draw nothing (or draw as blank) but are letters or symbols, not `Cf`, and the
/// variation selectors and other default-ignorable marks: they could hide text or pose as spacing.
const INVISIBLE: &[(char, char)] = &[
    ('\u{034F}', '\u{034F}'),   // COMBINING GRAPHEME JOINER
    ('\u{115F}', '\u{1160}'),   // HANGUL CHOSEONG and JUNGSEONG FILLER
    ('\u{17B4}', '\u{17B5}'),   // KHMER VOWEL INHERENT AQ, AA
    ('\u{180B}', '\u{180F}'),   // MONGOLIAN FREE VARIATION SELECTORS (and U+180E, which is Cf)
    ('\u{2800}', '\u{2800}'),   // BRAILLE PATTERN BLANK
    ('\u{3164}', '\u{3164}'),   // HANGUL FILLER
    ('\u{FE00}', '\u{FE0F}'),   // VARIATION SELECTOR-1 to -16
    ('\u{FFA0}', '\u{FFA0}'),   // HALFWIDTH HANGUL FILLER
    ('\u{16FE4}', '\u{16FE4}'), // KHITAN SMALL SCRIPT FILLER
    ('\u{1D159}', '\u{1D159}'), // MUSICAL SYMBOL NULL NOTEHEAD
    ('\u{E0100}', '\u{E01EF}'), // VARIATION SELECTOR-17 to -256
];

/// Why `c` may not appear in an app name shown to members, or `None` when it may. Refused: every
/// control (Cc), format character (Cf: bidi controls and isolates, zero-width spaces and joiners, soft
/// hyphen, tags…), line and paragraph separator (Zl, Zp), private-use (Co), surrogate (Cs) and unassigned
/// (Cn, noncharacters included) code point, the invisible letters and variation selectors of
/// [`INVISIBLE`], and every White_Space character but U+0020.
pub(crate) fn app_char_problem(c: char) -> Option<&'static str> {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    if c == ' ' {
        return None;
    }
    if c.is_whitespace() {
        return Some("whitespace other than the space");
    }
    match c.general_category() {
        G::Control => Some("control characters"),
        G::Format | G::LineSeparator | G::ParagraphSeparator | G::PrivateUse | G::Surrogate | G::Unassigned => {
            Some("invisible or direction-changing characters")
        }
        _ if INVISIBLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) => {
            Some("invisible or direction-changing characters")
        }
        _ => None,
    }
}

/// An app name is shown to members beside its owner's name: it must be visible text that cannot hide,
/// reorder or pose as anything around it, and at least one letter, digit, punctuation mark or symbol
/// (not only combining marks and spaces). The error names the first character refused and its
/// position (counted from 1), never the name itself.
pub fn check_app(s: &str) -> Result<()> {
    if s.trim_matches(' ').is_empty() {
        return Err(Error::Invalid("app name must not be empty or blank".into()));
    }
    let n = s.chars().count();
    if n > MAX_APP_CHARS {
        return Err(Error::Invalid(format!("app name must be at most {MAX_APP_CHARS} characters, got {n}")));
    }
    if let Some((i, c, what)) = s.chars().enumerate().find_map(|(i, c)| app_char_problem(c).map(|w| (i, c, w))) {
        return Err(Error::Invalid(format!(
            "app name must not contain {what} (U+{:04X} at character {})",
            c as u32,
            i + 1
        )));
    }
    if s.starts_with(' ') || s.ends_with(' ') {
        return Err(Error::Invalid("app name must not start or end with a space".into()));
    }
    if !s.chars().any(is_visible) {
        return Err(Error::Invalid("app name must contain a visible letter, digit or symbol".into()));
    }
    Ok(())
}

/// Whether `c` draws something by itself: a letter, number, punctuation or symbol (General_Category
/// L, N, P or S). Combining marks (Mn, Mc, Me) draw only on another character, and a space draws
/// nothing: a name of those alone shows as blank.
fn is_visible(c: char) -> bool {
    use unicode_properties::{GeneralCategoryGroup as G, UnicodeGeneralCategory};
    matches!(c.general_category_group(), G::Letter | G::Number | G::Punctuation | G::Symbol)
}

fn is_app_dir(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(|c| is_word(c) || c == '-' || c == '.')
}

/// An OOD app token names a directory: `sys/<app>`, `dev/<app>` or `usr/<owner>/<app>`.
pub fn check_delivery(s: &str) -> Result<()> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = match parts.as_slice() {
        ["sys" | "dev", app] => is_app_dir(app),
        ["usr", owner, app] => is_user_name(owner) && is_app_dir(app),
        _ => false,
    };
    ok.then_some(()).ok_or_else(|| {
        Error::Invalid(format!(
            "delivery token {s:?} must be an OOD app token: sys/<app>, dev/<app> or usr/<user>/<app>"
        ))
    })
}

/// Method names of the OpenStruct that OOD binds `connection.yml` to (Ruby 3.1: OpenStruct, Object,
/// Kernel, BasicObject). A key with one of these names would replace that method in the card's view
/// (`instance_eval`, `to_h`, `send`…), so no share may use them.
const RESERVED_KEYS: &[&str] = &[
    "__callee__",
    "__dir__",
    "__id__",
    "__method__",
    "__send__",
    "abort",
    "at_exit",
    "autoload",
    "binding",
    "caller",
    "caller_locations",
    "catch",
    "class",
    "clone",
    "define_singleton_method",
    "delete_field",
    "dig",
    "display",
    "dup",
    "each_pair",
    "encode_with",
    "enum_for",
    "eval",
    "exec",
    "exit",
    "extend",
    "fail",
    "fork",
    "format",
    "freeze",
    "gem",
    "gem_original_require",
    "gets",
    "global_variables",
    "hash",
    "init_with",
    "initialize",
    "initialize_clone",
    "initialize_copy",
    "initialize_dup",
    "inspect",
    "instance_eval",
    "instance_exec",
    "instance_variable_get",
    "instance_variable_set",
    "instance_variables",
    "itself",
    "lambda",
    "load",
    "local_variables",
    "loop",
    "marshal_dump",
    "marshal_load",
    "method",
    "method_missing",
    "methods",
    "object_id",
    "open",
    "p",
    "pp",
    "print",
    "printf",
    "private_methods",
    "proc",
    "protected_methods",
    "public_method",
    "public_methods",
    "public_send",
    "putc",
    "puts",
    "raise",
    "rand",
    "readline",
    "readlines",
    "remove_instance_variable",
    "require",
    "require_relative",
    "select",
    "send",
    "set_trace_func",
    "singleton_class",
    "singleton_method",
    "singleton_method_added",
    "singleton_method_removed",
    "singleton_method_undefined",
    "singleton_methods",
    "sleep",
    "spawn",
    "sprintf",
    "srand",
    "syscall",
    "system",
    "table",
    "taint",
    "tap",
    "test",
    "then",
    "throw",
    "to_enum",
    "to_h",
    "to_s",
    "trace_var",
    "trap",
    "trust",
    "untaint",
    "untrace_var",
    "untrust",
    "warn",
    "yield_self",
];

/// Connection keys become bare names in OOD's `view.html.erb`, so they must be Ruby identifiers that
/// shadow no method. `jobid` and `mt_*` are filled in by the receiver.
pub fn check_connection_key(k: &str) -> Result<()> {
    let ok = (1..=64).contains(&k.len())
        && k.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && k != "jobid"
        && !k.starts_with("mt_");
    if !ok {
        return Err(Error::Invalid(format!(
            "connection key {k:?} must be 1-64 of a-z, 0-9, '_', start with a letter or '_', and not be jobid or mt_*"
        )));
    }
    if k.starts_with("__") || RESERVED_KEYS.contains(&k) {
        return Err(Error::Invalid(format!(
            "connection key {k:?} is the name of a Ruby method OOD's view needs: rename it"
        )));
    }
    Ok(())
}

pub fn is_user_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| is_word(c))
        && s.chars().all(|c| is_word(c) || matches!(c, '-' | '.' | '@'))
}

/// An allow-listed user: a login name, or a numeric uid.
pub fn check_user(s: &str) -> Result<()> {
    is_user_name(s).then_some(()).ok_or_else(|| Error::Invalid(format!("user {s:?} is not a valid login name or uid")))
}

/// A POSIX group name; it also names the group's key file, so nothing path-like.
pub fn check_group(s: &str) -> Result<()> {
    let ok = (1..=64).contains(&s.len())
        && s.starts_with(|c: char| is_word(c))
        && s.chars().all(|c| is_word(c) || c == '-' || c == '.');
    ok.then_some(()).ok_or_else(|| {
        Error::Invalid(format!("group {s:?} must be a POSIX group name (letters, digits, '_', '-', '.')"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_that_name_paths_are_refused() {
        for bad in ["../etc", "sys/..", "sys/a/b", "sys/.hidden", "usr/../x", "/sys/a", "sys/", "sys/a b"] {
            assert!(check_delivery(bad).is_err(), "{bad}");
        }
        for good in ["sys/multitenant-delivery_default", "dev/my.app", "usr/alice/app"] {
            check_delivery(good).unwrap();
        }
    }

    #[test]
    fn session_ids_cannot_escape_the_db_dir() {
        for bad in ["", "..", "a/b", ".x", "a.b", "x".repeat(65).as_str(), "a\nb"] {
            assert!(check_session_id(bad).is_err(), "{bad:?}");
        }
        check_session_id("0f8fad5b-d9cb-469f-a165-70867728950e").unwrap();
    }

    #[test]
    fn connection_keys_are_identifiers() {
        for bad in [
            "Host",
            "1x",
            "a-b",
            "jobid",
            "mt_appname",
            "",
            "a b",
            "<%=",
            "instance_eval",
            "to_h",
            "send",
            "class",
            "__x",
        ] {
            assert!(check_connection_key(bad).is_err(), "{bad:?}");
        }
        check_connection_key("ollama_url").unwrap();
        check_connection_key("_x1").unwrap();
    }

    #[test]
    fn allow_list_matches_name_or_uid() {
        let mut m = Message {
            session_id: "s".into(),
            app: "A".into(),
            method: Method::Card,
            delivery: "sys/d".into(),
            connection: BTreeMap::new(),
            allow: None,
            expires_at: Some(100),
        };
        assert!(m.allows("bob", 7));
        m.allow = Some(vec!["alice".into(), "1002".into()]);
        assert!(m.allows("alice", 1));
        assert!(m.allows("carol", 1002));
        assert!(!m.allows("bob", 7));
        assert!(!m.is_expired(99));
        assert!(m.is_expired(100));
    }

    #[test]
    fn app_names_are_visible_text_without_direction_changes() {
        for good in [
            "Ollama_API",
            "PostgreSQL 16",
            "Lab <b>dash</b> & \"co\" 'x'",
            "Übung – Statistik",
            "שלום",
            "模型 API",
            "😀 bot",
            "e\u{301}",
            "\u{301}x",
            "-",
            "+",
            "€",
            "٣",
            "\u{0915}\u{093F}",
        ] {
            check_app(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
        let refused = |s: &str| check_app(s).unwrap_err().to_string();
        assert_eq!(
            refused("Ab \u{202E}ecilA"),
            "app name must not contain invisible or direction-changing characters (U+202E at character 4)"
        );
        assert_eq!(refused("a\u{0}"), "app name must not contain control characters (U+0000 at character 2)");
        assert_eq!(
            refused("a\tb"),
            "app name must not contain whitespace other than the space (U+0009 at character 2)"
        );
        assert_eq!(refused(" App"), "app name must not start or end with a space");
        assert_eq!(refused("App "), "app name must not start or end with a space");
        assert_eq!(refused("   "), "app name must not be empty or blank");
        assert_eq!(refused(""), "app name must not be empty or blank");
        assert_eq!(refused(&"x".repeat(129)), "app name must be at most 128 characters, got 129");
        check_app(&"é".repeat(128)).unwrap();
        // Names that draw as nothing: combining marks (Mn, Mc, Me) with nothing to sit on, and spaces.
        for blank in [
            "\u{301}",
            "\u{301}\u{301}\u{301}",
            "\u{301} \u{20DD}",
            "\u{20DD}",
            "\u{0903}",
            "\u{093F} \u{0903}",
            "\u{1AB0}\u{1DFF}",
            "\u{20E3}\u{20E3}",
        ] {
            assert_eq!(refused(blank), "app name must contain a visible letter, digit or symbol", "{blank:?}");
        }
        // Every class the rule names, each as the one bad character of an otherwise good name.
        let bad = [
            '\u{7}',
            '\u{7F}',
            '\u{85}', // Cc
            '\u{200E}',
            '\u{200F}',
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{061C}', // bidi (Cf)
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{2061}',
            '\u{2062}',
            '\u{2063}',
            '\u{2064}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{180E}',
            '\u{E0000}',
            '\u{E0001}',
            '\u{E0041}',
            '\u{E007F}', // Cf
            '\u{2028}',
            '\u{2029}', // Zl, Zp
            '\u{E000}',
            '\u{F8FF}',
            '\u{F0000}',
            '\u{10FFFD}', // Co
            '\u{0378}',
            '\u{FFFE}',
            '\u{FFFF}',
            '\u{FDD0}',
            '\u{10FFFF}', // Cn
            '\u{115F}',
            '\u{1160}',
            '\u{3164}',
            '\u{FFA0}',
            '\u{2800}',
            '\u{16FE4}',
            '\u{1D159}',
            '\u{034F}', // invisible letters
            '\u{FE00}',
            '\u{FE0F}',
            '\u{E0100}',
            '\u{E01EF}',
            '\u{180B}', // variation selectors
            '\u{A0}',
            '\u{1680}',
            '\u{2000}',
            '\u{200A}',
            '\u{202F}',
            '\u{205F}',
            '\u{3000}',
            '\u{B}', // White_Space
        ];
        for c in bad {
            let e = refused(&format!("Ab{c}cd"));
            assert!(e.ends_with(&format!("(U+{:04X} at character 3)", c as u32)), "{:04X}: {e}", c as u32);
        }
    }

    #[test]
    fn unknown_fields_are_malformed() {
        let e = Message::from_json(br#"{"i":"s","a":"A","m":"card","d":"sys/d","z":1}"#).unwrap_err();
        assert_eq!(e.kind(), "malformed");
    }
}
