//! Values of `MultiTenant.specs` as the first implementation's client forms use them: written
//! straight, unescaped, into a `form.yml.erb` line such as
//! `- [ '<%= v["accounting"]["mta"] %> (Job ID: <%= id %>)', '<%= v["connection"]["ollama_url"] %>' ]`,
//! which OOD renders with ERB and then reads as YAML. One `'` in one share's app name made that YAML
//! invalid, and OOD then dropped the app from every member's dashboard. So the legacy-shaped values
//! (`accounting.mta`, `connection.mt_appname`, and connection values that are http(s) URLs) are given
//! in a form that is the same text whichever way such a line quotes it; the app name as published
//! stays in `info.app` (titles, cards and our own views use it).

use std::borrow::Cow;

use crate::message::app_char_problem;

/// The app name as a legacy form can write it anywhere in a YAML line: the same text read as a
/// single-quoted, double-quoted or plain scalar (in a flow sequence or a block), one line, and inert in
/// ERB. Letters of every script, digits, spaces and other symbols are kept; only what YAML or ERB could
/// read as syntax is replaced by a look-alike:
///
/// - `'` → `’` (U+2019), `"` → `”` (U+201D), everywhere;
/// - `\` `` ` `` `[` `]` `{` `}` `,` → their fullwidth forms (`＼ ｀ ［ ］ ｛ ｝ ，`), everywhere;
/// - `#` → `＃` at the start or after a space (a comment); `:` → `：` at the start, or before a space,
///   `?` or the end (a mapping); `%` → `％` at the start, after `<` or before `>` (`<%`, `%>` of ERB);
/// - `& * ! | > @ ?` at the start (an anchor, alias, tag, block scalar, reserved indicator or, in a
///   flow sequence, a key), and `-` at the start before a space or the end (a sequence entry) →
///   fullwidth;
/// - a character the app-name rule refuses (controls, line separators, invisible characters: never in
///   a name that opened, kept for safety) → `�` (U+FFFD).
///
/// A name needing none of this is returned as it is. Plain-scalar type resolution (a name that is
/// exactly `true`, `~` or `12`) is not changed: legacy forms quote their labels.
pub fn form_safe_name(app: &str) -> Cow<'_, str> {
    // Most names (`Ollama_API`, `Lab dashboard 2`) hold nothing to replace: no per-share allocation.
    let plain = |b: u8| b.is_ascii_alphanumeric() || b" _.()/+=-".contains(&b);
    if app.bytes().all(plain) && !app.starts_with(['-', ' ']) {
        return Cow::Borrowed(app);
    }
    let chars: Vec<char> = app.chars().collect();
    let mut out: Option<String> = None;
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        match name_char(c, prev, next) {
            Some(r) => {
                let s = out.get_or_insert_with(|| chars[..i].iter().collect());
                s.push(r);
            }
            None => {
                if let Some(s) = out.as_mut() {
                    s.push(c);
                }
            }
        }
    }
    out.map_or(Cow::Borrowed(app), Cow::Owned)
}

/// The fullwidth form of a printable ASCII character (U+FF01–U+FF5E).
fn fullwidth(c: char) -> char {
    char::from_u32(c as u32 + 0xFEE0).unwrap_or('\u{FFFD}')
}

/// What replaces `c` (between `prev` and `next`) in a form-safe name, or `None` to keep it.
fn name_char(c: char, prev: Option<char>, next: Option<char>) -> Option<char> {
    let first = prev.is_none();
    let before_space = next.is_none_or(|n| n == ' ');
    match c {
        '\'' => Some('\u{2019}'),
        '"' => Some('\u{201D}'),
        '\\' | '`' | '[' | ']' | '{' | '}' | ',' => Some(fullwidth(c)),
        '#' if prev.is_none_or(|p| p == ' ') => Some(fullwidth(c)),
        ':' if first || before_space || next == Some('?') => Some(fullwidth(c)),
        '%' if first || prev == Some('<') || next == Some('>') => Some(fullwidth(c)),
        '&' | '*' | '!' | '|' | '>' | '@' | '?' if first => Some(fullwidth(c)),
        '-' if first && before_space => Some(fullwidth(c)),
        _ if app_char_problem(c).is_some() => Some('\u{FFFD}'),
        _ => None,
    }
}

/// Whether `value` is an http(s) URL as a browser or `MultiTenant::Apps.http_url` reads it: after
/// leading and trailing spaces and C0 controls, it starts with `http://` or `https://` (any case).
pub fn is_http_url(value: &str) -> bool {
    let t = trimmed(value);
    let starts = |p: &str| t.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p));
    starts("http://") || starts("https://")
}

fn trimmed(value: &str) -> &str {
    value.trim_matches(|c: char| c <= ' ')
}

/// A connection value as a legacy form can write it between single (or double) quotes in a YAML line:
/// an http(s) URL ([`is_http_url`]) with leading and trailing spaces removed and every character that is
/// not allowed as it is in a URL (RFC 3986: spaces, controls, `" < > \ ^ ` { | }`, non-ASCII, `[ ]`
/// outside an IPv6 host, a second `#`, a `%` not starting `%XX`) or that ends a quoted YAML scalar (`'`)
/// percent-encoded as UTF-8: the URL an HTTP client sends for it, without quotes, newlines or `<%`. Any
/// other value (a password, a model name, a text) is returned exactly as published: its meaning is its
/// bytes, and the first implementation's forms write only labels and URLs into YAML.
pub fn form_safe_value(value: &str) -> Cow<'_, str> {
    if !is_http_url(value) {
        return Cow::Borrowed(value);
    }
    let url = trimmed(value);
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let bytes = url.as_bytes();
    let auth_end = url[scheme_end..].find(['/', '?', '#']).map_or(url.len(), |i| scheme_end + i);
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..scheme_end]);
    let mut in_fragment = false;
    for i in scheme_end..bytes.len() {
        let b = bytes[i];
        let in_auth = i < auth_end;
        let keep = match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => true,
            b'!' | b'$' | b'&' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@' | b'/' | b'?' => true,
            b'[' | b']' => in_auth,
            b'#' if !in_auth && !in_fragment => {
                in_fragment = true;
                true
            }
            b'%' => bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
            _ => false,
        };
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out == value {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_names_are_kept_as_they_are() {
        for name in [
            "Ollama_API",
            "vLLM",
            "Lab dashboard",
            "gpt-oss:120b",
            "Llama 3.1 (8B) - fast!",
            "C# tutor",
            "Qwen2.5-7B & friends",
            "Modèle français",
            "日本語モデル",
            "نموذج عربي",
            "Ελληνικά",
            "50% off",
            "a<b>c",
            "x-y?",
            "-x",
            "e-mail@host",
            "🦙 llama",
            "a:b",
        ] {
            assert!(matches!(form_safe_name(name), Cow::Borrowed(_)), "{name:?} changed to {:?}", form_safe_name(name));
        }
    }

    #[test]
    fn hostile_names_get_look_alikes() {
        for (name, safe) in [
            ("Prof's LLM", "Prof’s LLM"),
            ("say \"hi\"", "say ”hi”"),
            ("a: b", "a： b"),
            ("ends with:", "ends with："),
            (":start", "：start"),
            ("#1 model", "＃1 model"),
            ("model #1", "model ＃1"),
            ("<%= 1+1 %>", "<％= 1+1 ％>"),
            ("%x", "％x"),
            ("[x], {y}", "［x］， ｛y｝"),
            ("a\\b", "a＼b"),
            ("`id`", "｀id｀"),
            ("&anchor", "＆anchor"),
            ("*alias", "＊alias"),
            ("!tag", "！tag"),
            ("|block", "｜block"),
            (">folded", "＞folded"),
            ("@reserved", "＠reserved"),
            ("- item", "－ item"),
            ("? key", "？ key"),
            ("?x", "？x"),
            ("a:?b", "a：?b"),
            ("-", "－"),
            ("x\ny", "x\u{FFFD}y"),
            ("x\u{2028}y", "x\u{FFFD}y"),
            ("x\u{202E}y", "x\u{FFFD}y"),
            ("x\ty", "x\u{FFFD}y"),
            ("Prof's «LLM»: v2 #3, [beta]", "Prof’s «LLM»： v2 ＃3， ［beta］"),
        ] {
            assert_eq!(form_safe_name(name), safe, "{name:?}");
        }
    }

    #[test]
    fn each_character_that_is_yaml_or_erb_syntax_somewhere_is_safe_everywhere() {
        let syntax = "'\"\\`[]{},#:%&*!|>@-?<";
        for c in syntax.chars() {
            for name in [
                format!("{c}"),
                format!("{c}x"),
                format!("x{c}"),
                format!("x{c}y"),
                format!("x {c} y"),
                format!("<{c}"),
                format!("{c}>"),
            ] {
                let safe = form_safe_name(&name);
                assert!(!safe.contains(['\'', '"', '\\', '`', '[', ']', '{', '}', ',', '\n']), "{name:?} -> {safe:?}");
                assert!(
                    !safe.contains("<%") && !safe.contains("%>") && !safe.contains(": ") && !safe.contains(" #"),
                    "{name:?} -> {safe:?}"
                );
                assert!(
                    !safe.ends_with(':') && !safe.starts_with(['#', ':', '%', '&', '*', '!', '|', '>', '@']),
                    "{name:?} -> {safe:?}"
                );
                assert!(
                    !safe.starts_with("- ") && !safe.starts_with("? ") && safe != "-" && safe != "?",
                    "{name:?} -> {safe:?}"
                );
                assert_eq!(safe.chars().count(), name.chars().count(), "one character for one: {name:?}");
            }
        }
    }

    #[test]
    fn urls_are_percent_encoded_where_a_form_could_read_syntax() {
        for (url, safe) in [
            ("http://node1:4000", "http://node1:4000"),
            ("https://node1:4000/v1", "https://node1:4000/v1"),
            ("http://node1:4000/a?b=c&d=e;f#frag", "http://node1:4000/a?b=c&d=e;f#frag"),
            ("http://[::1]:8000/x", "http://[::1]:8000/x"),
            ("http://node1:4000/it's", "http://node1:4000/it%27s"),
            ("http://node1:4000/a b", "http://node1:4000/a%20b"),
            ("http://node1:4000/<%= 1+1 %>", "http://node1:4000/%3C%25=%201+1%20%25%3E"),
            ("http://node1:4000/x\ny", "http://node1:4000/x%0Ay"),
            ("http://node1:4000/\"q\"\\{}|^`", "http://node1:4000/%22q%22%5C%7B%7D%7C%5E%60"),
            ("http://node1:4000/[x]", "http://node1:4000/%5Bx%5D"),
            ("http://node1:4000/#a#b", "http://node1:4000/#a%23b"),
            ("http://node1:4000/%41%zz%", "http://node1:4000/%41%25zz%25"),
            ("http://node1:4000/é", "http://node1:4000/%C3%A9"),
            ("  http://node1:4000/ \n", "http://node1:4000/"),
            ("HTTP://Node1:4000", "HTTP://Node1:4000"),
            ("http://no'de:4000", "http://no%27de:4000"),
        ] {
            assert_eq!(form_safe_value(url), safe, "{url:?}");
        }
        assert!(matches!(form_safe_value("http://node1:4000"), Cow::Borrowed(_)));
    }

    #[test]
    fn other_values_are_kept_exactly() {
        for v in [
            "Xk9#q 'v|7\"zP€2",
            "node017",
            "jdbc:postgresql://node042:5432/db",
            "ftp://x/'",
            "# Title\n\nSome *Markdown* with 'quotes' and <%= erb %>",
            "httpx://a'b",
            "",
        ] {
            assert_eq!(form_safe_value(v), v);
            assert!(matches!(form_safe_value(v), Cow::Borrowed(_)));
        }
    }
}
