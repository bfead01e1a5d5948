//! Credential checks: the key as `Authorization: Bearer` or as a Basic password, and the gate's
//! cookie, which a login form sets. All comparisons are constant-time.

use base64::Engine as _;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, COOKIE};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Key;

/// Start of the name of every gate's cookie: `multitenant_gate_<8 hex digits of a digest of the key>`,
/// one name per share, since browsers send a host's cookies to all its ports (RFC 6265 §8.5) and two
/// shares on one node must not overwrite each other's. Every cookie so named is taken out of forwarded
/// requests (another share's too) and out of the service's own `Set-Cookie` answers.
pub const COOKIE_PREFIX: &str = "multitenant_gate";
/// The query that marks a login request: `POST <path ending in />?multitenant-login`.
pub const LOGIN_QUERY: &str = "multitenant-login";
/// Form field of the login request that holds the key.
pub const LOGIN_FIELD: &str = "multitenant_key";

/// The credentials one gate accepts, derived once from its key.
pub(crate) struct Auth {
    key_digest: [u8; 32],
    cookie_name: String,
    cookie: String,
}

/// How a request proved it may pass, if it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// An `Authorization` header carried the key (the header is taken out before forwarding).
    Authorization,
    /// The gate's cookie was right.
    Cookie,
    /// Nothing carried a credential.
    Missing,
    /// A credential was there but wrong (another key, another gate's cookie).
    Wrong,
}

impl Verdict {
    pub(crate) fn passes(self) -> bool {
        matches!(self, Verdict::Authorization | Verdict::Cookie)
    }
}

impl Auth {
    pub(crate) fn new(key: &Key) -> Auth {
        // The cookie is a digest of the key, so a stolen cookie does not give away the key itself.
        let cookie =
            hex(&Sha256::new().chain_update(b"multitenant-gate cookie v1\0").chain_update(key.as_bytes()).finalize());
        let name =
            Sha256::new().chain_update(b"multitenant-gate cookie name v1\0").chain_update(key.as_bytes()).finalize();
        Auth {
            key_digest: key_digest(key.as_bytes()),
            cookie_name: format!("{COOKIE_PREFIX}_{}", hex(&name[..4])),
            cookie,
        }
    }

    /// Whether `presented` is the key. Comparing digests keeps the time independent of where the two
    /// differ and of the presented length.
    pub(crate) fn is_key(&self, presented: &[u8]) -> bool {
        bool::from(key_digest(presented).ct_eq(&self.key_digest))
    }

    fn is_cookie(&self, value: &[u8]) -> bool {
        bool::from(value.ct_eq(self.cookie.as_bytes()))
    }

    /// `Set-Cookie` value for a successful login. No `Path`: the browser scopes the cookie to the
    /// directory of the login URL, which behind OOD's node proxy is `/rnode/<host>/<port>`.
    pub(crate) fn set_cookie(&self, secure: bool) -> HeaderValue {
        let secure = if secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!("{}={}; HttpOnly; SameSite=Lax{secure}", self.cookie_name, self.cookie))
            .expect("hex digest and fixed attributes are a valid header value")
    }

    /// Looks at every `Authorization` and `Cookie` header of a request.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Verdict {
        let mut verdict = Verdict::Missing;
        for value in headers.get_all(AUTHORIZATION) {
            match self.authorization_is_key(value) {
                Some(true) => return Verdict::Authorization,
                Some(false) => verdict = Verdict::Wrong,
                None => {}
            }
        }
        for value in headers.get_all(COOKIE) {
            for (name, value) in cookie_pairs(value.as_bytes()) {
                if name == self.cookie_name.as_bytes() {
                    if self.is_cookie(value) {
                        return Verdict::Cookie;
                    }
                    verdict = Verdict::Wrong;
                }
            }
        }
        verdict
    }

    /// `Some(true)` when the header carries the key as a Bearer token or a Basic password,
    /// `Some(false)` when it carries another Bearer token or Basic password, `None` for other schemes.
    fn authorization_is_key(&self, value: &HeaderValue) -> Option<bool> {
        let value = value.as_bytes();
        let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
            Some(i) => (&value[..i], value[i + 1..].trim_ascii()),
            None => (value, &[][..]),
        };
        if scheme.eq_ignore_ascii_case(b"bearer") {
            Some(self.is_key(rest))
        } else if scheme.eq_ignore_ascii_case(b"basic") {
            let decoded = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
            let password = decoded.iter().position(|&b| b == b':').map(|i| &decoded[i + 1..])?;
            Some(self.is_key(password))
        } else {
            None
        }
    }

    /// Takes the gate's own credentials out of a request that passed: the `Authorization` headers that
    /// carry the key, and the gate's cookie from `Cookie` (other cookies stay, joined in one header).
    pub(crate) fn strip(&self, headers: &mut HeaderMap) {
        if headers.contains_key(AUTHORIZATION) {
            let kept: Vec<HeaderValue> = headers
                .get_all(AUTHORIZATION)
                .iter()
                .filter(|v| self.authorization_is_key(v) != Some(true))
                .cloned()
                .collect();
            headers.remove(AUTHORIZATION);
            for v in kept {
                headers.append(AUTHORIZATION, v);
            }
        }
        if headers.contains_key(COOKIE) {
            let mut kept: Vec<u8> = Vec::new();
            for value in headers.get_all(COOKIE) {
                for (name, value) in cookie_pairs(value.as_bytes()) {
                    if !is_gate_cookie(name) {
                        if !kept.is_empty() {
                            kept.extend_from_slice(b"; ");
                        }
                        kept.extend_from_slice(name);
                        kept.push(b'=');
                        kept.extend_from_slice(value);
                    }
                }
            }
            headers.remove(COOKIE);
            if let Ok(v) = HeaderValue::from_bytes(&kept) {
                if !kept.is_empty() {
                    headers.insert(COOKIE, v);
                }
            }
        }
    }

    /// Whether an `application/x-www-form-urlencoded` login body holds the key in `multitenant_key`.
    pub(crate) fn login_form_is_key(&self, body: &[u8]) -> bool {
        form_urlencoded::parse(body).any(|(name, value)| name == LOGIN_FIELD && self.is_key(value.as_bytes()))
    }
}

/// Whether a cookie name is a gate's (this share's or another's, or the unsuffixed name of earlier
/// versions).
pub(crate) fn is_gate_cookie(name: &[u8]) -> bool {
    name.starts_with(COOKIE_PREFIX.as_bytes())
}

fn key_digest(key: &[u8]) -> [u8; 32] {
    Sha256::new().chain_update(b"multitenant-gate key v1\0").chain_update(key).finalize().into()
}

/// `name=value` pairs of a `Cookie` header, trimmed; pieces without `=` are skipped.
fn cookie_pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|&b| b == b';').filter_map(|pair| {
        let pair = pair.trim_ascii();
        let i = pair.iter().position(|&b| b == b'=')?;
        Some((pair[..i].trim_ascii(), pair[i + 1..].trim_ascii()))
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(&Key::parse("0123456789abcdef0123456789abcdef", "test").unwrap())
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_basic_and_cookie() {
        let a = auth();
        let key = "0123456789abcdef0123456789abcdef";
        assert_eq!(a.check(&headers(&[("authorization", &format!("Bearer {key}"))])), Verdict::Authorization);
        assert_eq!(a.check(&headers(&[("authorization", &format!("bearer  {key} "))])), Verdict::Authorization);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("anyone:{key}"));
        assert_eq!(a.check(&headers(&[("authorization", &format!("Basic {basic}"))])), Verdict::Authorization);
        let user_only = base64::engine::general_purpose::STANDARD.encode(key);
        assert_eq!(a.check(&headers(&[("authorization", &format!("Basic {user_only}"))])), Verdict::Missing);
        assert_eq!(a.check(&headers(&[("authorization", "Bearer nope")])), Verdict::Wrong);
        assert_eq!(a.check(&headers(&[("authorization", "Digest x")])), Verdict::Missing);
        assert_eq!(a.check(&headers(&[])), Verdict::Missing);
        let cookie = format!("a=1; {}={}; b=2", a.cookie_name, a.cookie);
        assert_eq!(a.check(&headers(&[("cookie", &cookie)])), Verdict::Cookie);
        assert_eq!(a.check(&headers(&[("cookie", &format!("{}=abc", a.cookie_name))])), Verdict::Wrong);
        // Another share's cookie is neither this one nor wrong: it is not this gate's to judge.
        assert_eq!(a.check(&headers(&[("cookie", "multitenant_gate_00000000=abc")])), Verdict::Missing);
        assert_ne!(a.cookie, key);
    }

    #[test]
    fn strip_keeps_other_credentials() {
        let a = auth();
        let mut h = headers(&[
            ("authorization", "Bearer 0123456789abcdef0123456789abcdef"),
            (
                "cookie",
                &format!("a=1; {}={}; multitenant_gate_0badcafe=x; multitenant_gate=y", a.cookie_name, a.cookie),
            ),
            ("cookie", "b=2"),
        ]);
        a.strip(&mut h);
        assert!(h.get(AUTHORIZATION).is_none());
        assert_eq!(h.get(COOKIE).unwrap(), "a=1; b=2");
        let mut h = headers(&[("authorization", "Token app"), ("cookie", &format!("{}=x", a.cookie_name))]);
        a.strip(&mut h);
        assert_eq!(h.get(AUTHORIZATION).unwrap(), "Token app");
        assert!(h.get(COOKIE).is_none());
    }

    #[test]
    fn login_form() {
        let a = auth();
        assert!(a.login_form_is_key(b"x=1&multitenant_key=0123456789abcdef0123456789abcdef"));
        assert!(!a.login_form_is_key(b"multitenant_key=0123456789abcdef0123456789abcdee"));
        assert!(!a.login_form_is_key(b""));
        assert_eq!(
            a.set_cookie(true).to_str().unwrap(),
            format!("{}={}; HttpOnly; SameSite=Lax; Secure", a.cookie_name, a.cookie)
        );
    }
}
