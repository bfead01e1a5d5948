//! Which connection values are secrets: named like a password, token or key. The publisher warns when
//! one is passed on a command line; the cards hide them behind a click (lib/multitenant/view.rb
//! `View::SECRET` follows the same rule).

/// Whether a connection key names a secret: it contains `pass`, `secret`, `token` or `credential`, or
/// is `key` or ends in `_key` (`api_key`, `gate_key`), case-insensitively.
pub fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["pass", "secret", "token", "credential"].iter().any(|w| k.contains(w)) || k == "key" || k.ends_with("_key")
}

#[cfg(test)]
mod tests {
    use super::looks_secret;

    #[test]
    fn secret_names() {
        for k in
            ["db_password", "PASSWD", "api_key", "key", "gate_key", "jupyter_token", "client_secret", "credentials"]
        {
            assert!(looks_secret(k), "{k}");
        }
        for k in ["host", "port", "keyboard", "monkey", "url", "db_user", "jdbc_url", "ollama_model"] {
            assert!(!looks_secret(k), "{k}");
        }
    }
}
