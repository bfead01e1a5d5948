//! Read-only decoder for the first implementation's names (`docs/envelope.md`, "Legacy").
//! It has no integrity and its key is public: use only to migrate, never to trust.

use std::collections::BTreeMap;

use aes::cipher::{block_padding::Pkcs7, BlockModeDecrypt, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use flate2::read::MultiGzDecoder;
use serde_json::{Map, Value};

use crate::envelope::{bounded_read, parse, Binding, Format, Share};
use crate::error::{Error, Result};
use crate::message::{Message, Method};

/// Key and IV as the legacy shell pipeline builds them: the ASCII bytes of `<job id><owner>` (resp.
/// `<job id><job id>`) zero-padded, and cut to size the way `openssl enc -K/-iv` cuts over-long hex.
pub fn legacy_key_iv(binding: Binding) -> ([u8; 32], [u8; 16]) {
    let mut key = [0u8; 32];
    let mut iv = [0u8; 16];
    for (dst, src) in key.iter_mut().zip(binding.job_id.bytes().chain(binding.owner.bytes())) {
        *dst = src;
    }
    for (dst, src) in iv.iter_mut().zip(binding.job_id.bytes().chain(binding.job_id.bytes())) {
        *dst = src;
    }
    (key, iv)
}

pub fn open_legacy(name: &str, binding: Binding) -> Result<Share> {
    let parsed = parse(name)?;
    if parsed.format != Format::Legacy {
        return Err(Error::Malformed("not a legacy-format name".into()));
    }
    binding.validate()?;
    let ct = STANDARD.decode(parsed.payload).map_err(|_| Error::Malformed("legacy payload is not base64".into()))?;
    let (key, iv) = legacy_key_iv(binding);
    let gz = cbc::Decryptor::<aes::Aes256>::new(&key.into(), &iv.into())
        .decrypt_padded_vec::<Pkcs7>(&ct)
        .map_err(|_| Error::Malformed("legacy payload does not decrypt for this job id and owner".into()))?;
    let text = bounded_read(MultiGzDecoder::new(&gz[..]), "legacy gzip")?;
    let text = String::from_utf8(text).map_err(|_| Error::Malformed("legacy content is not UTF-8".into()))?;
    let message = parse_legacy_text(&text)?;
    Ok(Share {
        prefix: parsed.prefix.to_string(),
        group: parsed.group.to_string(),
        version: "legacy".into(),
        key_id: None,
        message,
        size: name.len(),
    })
}

/// `{'mtu':…,'mti':…}|{'host':…}` with single quotes for double quotes.
fn parse_legacy_text(text: &str) -> Result<Message> {
    let json = text.replace('\'', "\"");
    let bad = |why: &str| Error::Malformed(format!("legacy content: {why}"));
    let mut stream = serde_json::Deserializer::from_str(&json).into_iter::<Map<String, Value>>();
    let accounting = stream.next().ok_or_else(|| bad("empty"))?.map_err(|e| bad(&e.to_string()))?;
    let rest = json[stream.byte_offset()..].strip_prefix('|').ok_or_else(|| bad("no '|' between the two parts"))?;
    let connection: Map<String, Value> = serde_json::from_str(rest).map_err(|e| bad(&e.to_string()))?;

    let text_of = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let field = |k: &str| accounting.get(k).and_then(text_of).ok_or_else(|| bad(&format!("missing {k}")));
    let allow: Vec<String> = field("mtu")?.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
    let mut conn = BTreeMap::new();
    for (k, v) in &connection {
        conn.insert(k.clone(), text_of(v).ok_or_else(|| bad(&format!("connection value {k:?} is not text")))?);
    }
    let message = Message {
        session_id: field("mti")?,
        app: field("mta")?,
        method: Method::parse(&field("mtm")?).map_err(|e| bad(&e.to_string()))?,
        delivery: field("mtd")?,
        connection: conn,
        allow: (!allow.is_empty()).then_some(allow),
        expires_at: None,
    };
    message.validate().map_err(|e| bad(&e.to_string()))?;
    Ok(message)
}
