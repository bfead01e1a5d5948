//! The envelope: `<prefix>|<group>|<version>.<base64url(kid ‖ iv ‖ ciphertext ‖ tag)>`.
//! Version 2 is written; version 1 (which binds no cluster and no run) is only read.
//! Specified in `docs/envelope.md`; keep the two in step.

use std::cell::RefCell;
use std::io::Read;

use aes::cipher::{block_padding::Pkcs7, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use flate2::write::DeflateEncoder;
use flate2::{Compression, Decompress, FlushDecompress, Status};
use hmac::{KeyInit, Mac};

use crate::error::{Error, Result};
use crate::keys::{Key, KEY_ID_LEN};
use crate::message::{check_group, check_user, Message};

/// Slurm's limit on a job name, in characters (every character of a sealed name is ASCII).
pub const NAME_LIMIT: usize = 1024;
pub const DEFAULT_PREFIX: &str = "mt";
/// The version [`seal`] writes.
pub const VERSION: &str = Version::WRITTEN.as_str();
/// Bound on the decompressed plaintext: far above anything a 1024-character name legitimately holds.
pub const MAX_PLAINTEXT: usize = 16 * 1024;

const IV_LEN: usize = 16;
const TAG_LEN: usize = 16;
const FLAG_JSON: u8 = 0;
const FLAG_DEFLATE: u8 = 1;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The versions of the authenticated envelope. Both have one layout; they differ in what the MAC binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Read only: binds the job id and owner, so it cannot tell two runs of a requeued job, nor the
    /// same job id on two Slurm clusters, apart.
    V1,
    /// Also binds the Slurm cluster name and the job's restart count.
    V2,
}

impl Version {
    /// The version sealers write.
    pub const WRITTEN: Version = Version::V2;

    /// The payload's marker, before the first `.`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "1",
            Version::V2 => "2",
        }
    }

    fn from_marker(marker: &str) -> Option<Version> {
        match marker {
            "1" => Some(Version::V1),
            "2" => Some(Version::V2),
            _ => None,
        }
    }

    /// Whether the MAC binds the cluster name and the restart count.
    pub fn binds_run(self) -> bool {
        self == Version::V2
    }
}

/// Which run of which job a name is bound to, as Slurm reports it (never as the name claims).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    /// Slurm's numeric job id.
    pub job_id: &'a str,
    /// The job's owner (login name).
    pub owner: &'a str,
    /// The Slurm cluster name: `SLURM_CLUSTER_NAME` in the job, squeue's `Cluster` field. Bound by v2;
    /// v1 and legacy names ignore it (it may be empty for them).
    pub cluster: &'a str,
    /// Slurm's restart count: 0 for the first run, +1 at each requeue (`SLURM_RESTART_COUNT` in the
    /// job, absent meaning 0; `squeue -O RestartCnt`). Bound by v2; v1 and legacy names ignore it.
    pub restarts: u32,
}

impl Binding<'_> {
    /// Checks the job id and owner, and the cluster name when one is given. Enough for v1 and legacy
    /// names, which bind no cluster; [`Binding::validate_run`] is what a v2 name needs.
    pub fn validate(&self) -> Result<()> {
        check_job_id(self.job_id)?;
        check_user(self.owner)?;
        if !self.cluster.is_empty() {
            check_cluster(self.cluster)?;
        }
        Ok(())
    }

    /// Everything a v2 name binds: [`Binding::validate`] and a cluster name.
    pub fn validate_run(&self) -> Result<()> {
        if self.cluster.is_empty() {
            return Err(Error::Invalid(
                "no Slurm cluster name: a v2 share is bound to its job's cluster (SLURM_CLUSTER_NAME in the job, squeue -O Cluster)".into(),
            ));
        }
        self.validate()
    }
}

/// Slurm's numeric job id: 1-20 digits.
pub fn check_job_id(s: &str) -> Result<()> {
    let ok = (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(()).ok_or_else(|| Error::Invalid(format!("job id {s:?} must be Slurm's numeric job id")))
}

/// A Slurm cluster name: 1-64 letters, digits, '_', '-', '.'.
pub fn check_cluster(s: &str) -> Result<()> {
    let ok =
        (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    ok.then_some(())
        .ok_or_else(|| Error::Invalid(format!("cluster name {s:?} must be 1-64 letters, digits, '_', '-', '.'")))
}

/// The format a payload announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// The authenticated envelope, in the version the payload names (1 or 2: one layout). The variant
    /// keeps the name of the envelope's first version.
    V1 { version: Version, key_id: [u8; KEY_ID_LEN] },
    /// The first implementation's `gzip | openssl enc` format (see `legacy`).
    Legacy,
}

impl Format {
    /// Hex key id of an authenticated payload.
    pub fn key_id_hex(&self) -> Option<String> {
        match self {
            Format::V1 { key_id, .. } => Some(hex(key_id)),
            Format::Legacy => None,
        }
    }

    /// `"1"`, `"2"` or `"legacy"`, as [`Share::version`] says it.
    pub fn version_str(&self) -> &'static str {
        match self {
            Format::V1 { version, .. } => version.as_str(),
            Format::Legacy => "legacy",
        }
    }
}

/// A job name split into its parts, before any cryptography.
#[derive(Debug, Clone)]
pub struct Parsed<'a> {
    pub prefix: &'a str,
    pub group: &'a str,
    pub payload: &'a str,
    pub format: Format,
}

/// A share that opened and verified.
#[derive(Debug, Clone)]
pub struct Share {
    pub prefix: String,
    pub group: String,
    /// `"1"`, `"2"`, or `"legacy"`.
    pub version: String,
    /// Hex key id; `None` for legacy shares.
    pub key_id: Option<String>,
    pub message: Message,
    /// Characters the whole job name takes.
    pub size: usize,
}

pub fn check_prefix(s: &str) -> Result<()> {
    let ok = (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    ok.then_some(())
        .ok_or_else(|| Error::Invalid(format!("prefix {s:?} must be 1-64 letters, digits, '_', '-', '.', '/'")))
}

/// Splits a job name and detects its format. Cheap: no key, no crypto.
pub fn parse(name: &str) -> Result<Parsed<'_>> {
    if name.len() > NAME_LIMIT {
        return Err(Error::Malformed(format!("name is {} bytes, over Slurm's {NAME_LIMIT}", name.len())));
    }
    let mut parts = name.splitn(3, '|');
    let (Some(prefix), Some(group), Some(payload)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::Malformed("expected <prefix>|<group>|<payload>".into()));
    };
    if payload.contains('|') {
        return Err(Error::Malformed("more than three '|'-separated fields".into()));
    }
    check_prefix(prefix).map_err(|e| Error::Malformed(e.to_string()))?;
    check_group(group).map_err(|e| Error::Malformed(e.to_string()))?;
    let format = match payload.split_once('.') {
        Some((marker, data)) if Version::from_marker(marker).is_some() => {
            let version = Version::from_marker(marker).expect("checked by the guard");
            Format::V1 { version, key_id: payload_key_id(version, data)? }
        }
        Some((v, _)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(Error::UnsupportedVersion(v.chars().take(16).collect()))
        }
        Some(_) => return Err(Error::Malformed("payload has no version marker".into())),
        None if is_std_base64(payload) => Format::Legacy,
        None => return Err(Error::Malformed("payload is neither a versioned envelope nor legacy base64".into())),
    };
    Ok(Parsed { prefix, group, payload, format })
}

fn is_std_base64(s: &str) -> bool {
    !s.is_empty()
        && s.len().is_multiple_of(4)
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

fn payload_key_id(version: Version, data: &str) -> Result<[u8; KEY_ID_LEN]> {
    let v = version.as_str();
    if !data.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(Error::Malformed(format!("v{v} payload is not base64url")));
    }
    let head = data.get(..8).ok_or_else(|| Error::Malformed(format!("v{v} payload is truncated")))?;
    let bytes = URL_SAFE_NO_PAD.decode(head).map_err(|_| Error::Malformed(format!("v{v} payload is not base64url")))?;
    Ok(bytes[..KEY_ID_LEN].try_into().expect("8 base64 characters hold 6 bytes"))
}

/// Seals `msg` for `group` with `key` as a v2 name, bound to one run of one job on one cluster.
/// Refuses names over [`NAME_LIMIT`].
pub fn seal(msg: &Message, key: &Key, prefix: &str, group: &str, binding: Binding) -> Result<String> {
    check_prefix(prefix)?;
    check_group(group)?;
    binding.validate_run()?;
    msg.validate()?;

    let json = msg.to_json();
    let plaintext = encode_plaintext(&json);
    // Receivers inflate at most MAX_PLAINTEXT bytes (more is a bomb): content that compresses into a
    // name but is longer would be refused by every member. A name too long anyway says so below.
    if json.len() > MAX_PLAINTEXT && sealed_len(plaintext.len(), prefix, group) <= NAME_LIMIT {
        return Err(Error::Invalid(format!(
            "the message is {} bytes as JSON, over the {MAX_PLAINTEXT} bytes receivers read (more is refused as a compression bomb): shorten or drop connection values",
            json.len()
        )));
    }
    seal_bytes(&plaintext, key, prefix, group, binding).map_err(|e| match e {
        Error::TooLarge { size, limit, .. } => Error::TooLarge { size, limit, hint: size_hint(msg) },
        e => e,
    })
}

/// Encrypts and MACs plaintext bytes as they are, as a v2 name. `seal` validates first; this does
/// not, so test vectors can carry content a receiver must reject. There is no v1 sealer.
#[doc(hidden)]
pub fn seal_bytes(plaintext: &[u8], key: &Key, prefix: &str, group: &str, binding: Binding) -> Result<String> {
    let version = Version::WRITTEN;
    let size = sealed_len(plaintext.len(), prefix, group);
    if size > NAME_LIMIT {
        return Err(Error::TooLarge { size, limit: NAME_LIMIT, hint: String::new() });
    }
    let mut iv = [0u8; IV_LEN];
    getrandom::fill(&mut iv).map_err(|e| Error::Io(format!("no random numbers for the IV: {e}")))?;
    let (enc_key, mac_key) = key.subkeys();
    let ct = cbc::Encryptor::<aes::Aes256>::new(&enc_key.into(), &iv.into()).encrypt_padded_vec::<Pkcs7>(plaintext);
    let mut body = Vec::with_capacity(KEY_ID_LEN + IV_LEN + ct.len() + TAG_LEN);
    body.extend_from_slice(&key.id());
    body.extend_from_slice(&iv);
    body.extend_from_slice(&ct);
    let tag = mac(&mac_key, version, &key.id(), prefix, group, binding, &body[KEY_ID_LEN..])?.finalize().into_bytes();
    body.extend_from_slice(&tag[..TAG_LEN]);
    Ok(format!("{prefix}|{group}|{}.{}", version.as_str(), URL_SAFE_NO_PAD.encode(&body)))
}

fn size_hint(msg: &Message) -> String {
    let conn: usize = msg.connection.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
    let allow: usize = msg.allow.iter().flatten().map(|u| u.len() + 3).sum();
    format!(
        "before compression the connection values take {conn} bytes and the allow-list {allow}: shorten or drop values, share with the whole group instead of listing users, or use a shorter prefix"
    )
}

/// The exact length of the name a plaintext of `len` bytes seals to (the MAC is never computed for
/// a name that would not fit). The cluster and restart count are MACed, not carried: a v2 name is as
/// long as a v1 name of the same content.
fn sealed_len(len: usize, prefix: &str, group: &str) -> usize {
    let body = KEY_ID_LEN + IV_LEN + (len / 16 + 1) * 16 + TAG_LEN;
    prefix.len() + group.len() + 2 + VERSION.len() + 1 + (body * 4).div_ceil(3)
}

/// Compresses when that is shorter; the first byte says which.
fn encode_plaintext(json: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = DeflateEncoder::new(vec![FLAG_DEFLATE], Compression::best());
    z.write_all(json).expect("writing to a Vec cannot fail");
    let deflated = z.finish().expect("writing to a Vec cannot fail");
    if deflated.len() < json.len() + 1 {
        deflated
    } else {
        let mut out = vec![FLAG_JSON];
        out.extend_from_slice(json);
        out
    }
}

fn decode_plaintext(pt: &[u8]) -> Result<Vec<u8>> {
    match pt.split_first() {
        Some((&FLAG_JSON, json)) => Ok(json.to_vec()),
        Some((&FLAG_DEFLATE, z)) => inflate(z),
        Some((flag, _)) => Err(Error::Malformed(format!("unknown content flag {flag}"))),
        None => Err(Error::Malformed("empty plaintext".into())),
    }
}

thread_local! {
    /// One raw-deflate decompressor and output buffer per thread, reset for each share: a fresh
    /// decompressor is a 32 KiB window and tables to allocate and clear, a third of the cost of
    /// opening a share.
    static INFLATE: RefCell<(Decompress, Vec<u8>)> =
        RefCell::new((Decompress::new(false), Vec::with_capacity(MAX_PLAINTEXT + 1)));
}

/// The raw deflate stream `z`, complete, inflating to at most [`MAX_PLAINTEXT`] bytes.
fn inflate(z: &[u8]) -> Result<Vec<u8>> {
    INFLATE.with_borrow_mut(|(d, out)| {
        d.reset(false);
        out.clear();
        let status = d.decompress_vec(z, out, FlushDecompress::Finish);
        if out.len() > MAX_PLAINTEXT {
            return Err(Error::Malformed(format!("content inflates beyond {MAX_PLAINTEXT} bytes")));
        }
        match status {
            Ok(Status::StreamEnd) => Ok(out.clone()),
            Ok(_) => Err(Error::Malformed("deflate data: the stream ends early".into())),
            Err(e) => Err(Error::Malformed(format!("deflate data: {e}"))),
        }
    })
}

/// Reads at most [`MAX_PLAINTEXT`] bytes; more is a decompression bomb, not a share.
pub(crate) fn bounded_read(reader: impl Read, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    reader
        .take(MAX_PLAINTEXT as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Malformed(format!("{what} data: {e}")))?;
    if out.len() > MAX_PLAINTEXT {
        return Err(Error::Malformed(format!("content inflates beyond {MAX_PLAINTEXT} bytes")));
    }
    Ok(out)
}

/// The MAC input: each field length-prefixed (u16 big-endian), so no two field lists collide.
/// v1: "multitenant", "1", key id, prefix, group, job id, owner, iv ‖ ct.
/// v2: "multitenant", "2", key id, prefix, group, job id, owner, cluster, restart count (decimal
/// ASCII), iv ‖ ct.
fn mac(
    mac_key: &[u8; 32],
    version: Version,
    kid: &[u8],
    prefix: &str,
    group: &str,
    b: Binding,
    iv_ct: &[u8],
) -> Result<HmacSha256> {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(mac_key).expect("HMAC takes any key length");
    let restarts = b.restarts.to_string();
    let mut fields: Vec<&[u8]> = vec![
        b"multitenant",
        version.as_str().as_bytes(),
        kid,
        prefix.as_bytes(),
        group.as_bytes(),
        b.job_id.as_bytes(),
        b.owner.as_bytes(),
    ];
    if version.binds_run() {
        fields.extend([b.cluster.as_bytes(), restarts.as_bytes()]);
    }
    fields.push(iv_ct);
    for f in fields {
        let len = u16::try_from(f.len()).map_err(|_| Error::Malformed("a field is longer than a job name".into()))?;
        m.update(&len.to_be_bytes());
        m.update(f);
    }
    Ok(m)
}

/// Opens a v1 or v2 name bound to `binding` with whichever of `keys` carries the payload's key id.
/// A v2 name opens only for the cluster and restart count it was sealed for (else [`Error::BadSeal`]);
/// a v1 name ignores both.
pub fn open(name: &str, binding: Binding, keys: &[Key]) -> Result<Share> {
    let parsed = parse(name)?;
    let Format::V1 { version, key_id } = parsed.format else {
        return Err(Error::LegacyDisabled);
    };
    let key = keys
        .iter()
        .find(|k| k.id() == key_id)
        .ok_or_else(|| Error::UnknownKey { group: parsed.group.to_string(), key_id: hex(&key_id) })?;
    if version.binds_run() {
        binding.validate_run()?;
    } else {
        binding.validate()?;
    }
    let v = version.as_str();
    let data = &parsed.payload[v.len() + 1..];
    let body = URL_SAFE_NO_PAD.decode(data).map_err(|_| Error::Malformed(format!("v{v} payload is not base64url")))?;
    if body.len() < KEY_ID_LEN + IV_LEN + 16 + TAG_LEN
        || !(body.len() - KEY_ID_LEN - IV_LEN - TAG_LEN).is_multiple_of(16)
    {
        return Err(Error::Malformed(format!("v{v} payload has an impossible length ({} bytes)", body.len())));
    }
    let (signed, tag) = body.split_at(body.len() - TAG_LEN);
    let iv_ct = &signed[KEY_ID_LEN..];
    let (enc_key, mac_key) = key.subkeys();
    mac(&mac_key, version, &key_id, parsed.prefix, parsed.group, binding, iv_ct)?
        .verify_truncated_left(tag)
        .map_err(|_| Error::BadSeal)?;

    let (iv, ct) = iv_ct.split_at(IV_LEN);
    let iv: [u8; IV_LEN] = iv.try_into().expect("split at IV_LEN");
    let pt = cbc::Decryptor::<aes::Aes256>::new(&enc_key.into(), &iv.into())
        .decrypt_padded_vec::<Pkcs7>(ct)
        .map_err(|_| Error::Malformed("bad padding under a valid MAC (publisher bug)".into()))?;
    let message = Message::from_json(&decode_plaintext(&pt)?)?;
    Ok(Share {
        prefix: parsed.prefix.to_string(),
        group: parsed.group.to_string(),
        version: v.to_string(),
        key_id: Some(hex(&key_id)),
        message,
        size: name.len(),
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}
