//! Group keys and the site-wide key: parsing, permission checks, atomic generation.
//!
//! A key file holds one key per line, newest first: the first seals new shares, every line still opens.
//! Group keys live at `<dir>/<group>.key` (`root:<group>`, 0440), the site-wide key at `<dir>/@site.key`
//! (0444) — `@` cannot start a group name, so the two never collide.

use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use nix::errno::Errno;
use nix::fcntl::{openat, Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Group, Uid, User};
use sha2::{Digest, Sha256};

use crate::envelope::hex;
use crate::error::{Error, Result};
use crate::message::check_group;

pub const KEY_ID_LEN: usize = 4;
pub const SITE_KEY_FILE: &str = "@site.key";
const LINE_TAG: &str = "mtk1";

/// A 256-bit key and its 32-bit id (a hash of the key, so ids need no coordination).
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    id: [u8; KEY_ID_LEN],
    secret: [u8; 32],
    /// The encryption and MAC keys, derived once: every share opened with this key uses them.
    enc: [u8; 32],
    mac: [u8; 32],
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.id_hex())
    }
}

impl Key {
    pub fn generate() -> Result<Key> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| Error::Io(format!("no random numbers for a key: {e}")))?;
        Ok(Key::from_secret(secret))
    }

    pub fn from_secret(secret: [u8; 32]) -> Key {
        let digest = Sha256::new().chain_update(b"multitenant key id").chain_update(secret).finalize();
        let id = digest[..KEY_ID_LEN].try_into().expect("a SHA-256 digest is 32 bytes");
        let hk = Hkdf::<Sha256>::new(Some(b"multitenant v1"), &secret);
        let (mut enc, mut mac) = ([0u8; 32], [0u8; 32]);
        hk.expand(b"enc", &mut enc).expect("32 bytes is a valid HKDF length");
        hk.expand(b"mac", &mut mac).expect("32 bytes is a valid HKDF length");
        Key { id, secret, enc, mac }
    }

    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        self.id
    }

    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }

    /// Separate encryption and MAC keys (HKDF-SHA256, salt "multitenant v1"; info "enc", "mac").
    pub(crate) fn subkeys(&self) -> ([u8; 32], [u8; 32]) {
        (self.enc, self.mac)
    }

    /// `mtk1:<key id hex>:<base64url secret>`
    pub fn to_line(&self) -> String {
        format!("{LINE_TAG}:{}:{}", self.id_hex(), URL_SAFE_NO_PAD.encode(self.secret))
    }

    pub fn from_line(line: &str) -> std::result::Result<Key, String> {
        let mut parts = line.trim().split(':');
        let (Some(LINE_TAG), Some(id), Some(secret), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a multitenant key (expected mtk1:<id>:<secret>)".into());
        };
        let secret: [u8; 32] = URL_SAFE_NO_PAD
            .decode(secret)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("the secret is not 32 bytes of base64url")?;
        let key = Key::from_secret(secret);
        if key.id_hex() != id {
            return Err(format!("key id {id} does not match its secret (damaged line?)"));
        }
        Ok(key)
    }
}

/// Parses a key file's text: `#` comments and blank lines are skipped; at least one key is required.
pub fn parse_keys(text: &str) -> std::result::Result<Vec<Key>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        keys.push(Key::from_line(line).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    if keys.is_empty() {
        return Err("holds no key".into());
    }
    Ok(keys)
}

/// Which key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTarget<'a> {
    Group(&'a str),
    Site,
}

/// A loaded key file: `keys[0]` seals.
#[derive(Debug, Clone)]
pub struct KeyFile {
    pub path: PathBuf,
    pub keys: Vec<Key>,
}

/// The key directory, with the owner every key file must have (root unless told otherwise).
#[derive(Debug, Clone)]
pub struct KeyDir {
    path: PathBuf,
    owner: u32,
}

fn user_label(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => format!("uid {uid}"),
    }
}

fn group_label(gid: u32) -> String {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => format!("gid {gid}"),
    }
}

fn lookup_gid(group: &str) -> Result<u32> {
    match Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(Error::Invalid(format!("no such group {group:?} on this host"))),
        Err(e) => Err(Error::Io(format!("looking up group {group:?}: {e}"))),
    }
}

impl KeyDir {
    pub fn new(path: impl Into<PathBuf>) -> KeyDir {
        KeyDir { path: path.into(), owner: 0 }
    }

    /// Expect key files and the directory to be owned by `uid` instead of root (tests, personal setups).
    pub fn with_owner(mut self, uid: u32) -> KeyDir {
        self.owner = uid;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file_path(&self, target: KeyTarget) -> Result<PathBuf> {
        Ok(match target {
            KeyTarget::Group(g) => {
                check_group(g)?;
                self.path.join(format!("{g}.key"))
            }
            KeyTarget::Site => self.path.join(SITE_KEY_FILE),
        })
    }

    /// Opens the key directory and checks it through the descriptor, so the checked directory is the
    /// one every key file is then opened in.
    fn open_dir(&self) -> Result<File> {
        let dir = OpenOptions::new().read(true).custom_flags(OFlag::O_DIRECTORY.bits()).open(&self.path).map_err(
            |e| match e.kind() {
                ErrorKind::NotFound => Error::key_file(
                    &self.path,
                    "key directory does not exist: create keys with `mtshare keygen` as root",
                ),
                _ => Error::key_file(&self.path, format!("cannot open key directory: {e}")),
            },
        )?;
        let meta = dir.metadata().map_err(|e| Error::key_file(&self.path, e.to_string()))?;
        if meta.uid() != self.owner {
            return Err(Error::key_file(
                &self.path,
                format!(
                    "key directory is owned by {}, not {}: chown {} {}",
                    user_label(meta.uid()),
                    user_label(self.owner),
                    user_label(self.owner),
                    self.path.display()
                ),
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(Error::key_file(
                &self.path,
                format!("key directory is writable by others: chmod go-w {}", self.path.display()),
            ));
        }
        Ok(dir)
    }

    /// Whether the key file exists (a symlink or an unreadable entry counts: loading then says why).
    fn file_exists(&self, target: KeyTarget) -> Result<bool> {
        let path = self.file_path(target)?;
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::key_file(&path, format!("cannot stat key file: {e}"))),
        }
    }

    fn check_meta(&self, target: KeyTarget, path: &Path, meta: &Metadata) -> Result<()> {
        let shown = path.display();
        if meta.file_type().is_symlink() {
            return Err(Error::key_file(path, "is a symlink: key files must be regular files"));
        }
        if !meta.is_file() {
            return Err(Error::key_file(path, "is not a regular file"));
        }
        let owner = user_label(self.owner);
        let (want_mode, chown) = match target {
            KeyTarget::Group(g) => ("0440", format!("chown {owner}:{g} {shown}")),
            KeyTarget::Site => ("0444", format!("chown {owner} {shown}")),
        };
        if meta.uid() != self.owner {
            return Err(Error::key_file(path, format!("is owned by {}, not {owner}: {chown}", user_label(meta.uid()))));
        }
        let mode = meta.mode();
        if let KeyTarget::Group(g) = target {
            if meta.gid() != lookup_gid(g)? {
                return Err(Error::key_file(
                    path,
                    format!("belongs to group {}, not {g}: {chown}", group_label(meta.gid())),
                ));
            }
            if mode & 0o004 != 0 {
                return Err(Error::key_file(path, format!("is world-readable: chmod {want_mode} {shown}")));
            }
            if mode & 0o003 != 0 {
                return Err(Error::key_file(path, format!("is accessible to others: chmod {want_mode} {shown}")));
            }
        }
        if mode & 0o022 != 0 {
            return Err(Error::key_file(path, format!("is writable by group or others: chmod {want_mode} {shown}")));
        }
        Ok(())
    }

    /// Opens the file relative to the checked directory without following symlinks, checks type,
    /// owner, group and mode on that descriptor, and reads from the same descriptor.
    fn load(&self, target: KeyTarget) -> Result<KeyFile> {
        self.load_text(target).map(|(file, _)| file)
    }

    /// [`KeyDir::load`], with the file's text.
    fn load_text(&self, target: KeyTarget) -> Result<(KeyFile, String)> {
        let dir = self.open_dir()?;
        let path = self.file_path(target)?;
        let name = path.file_name().expect("key files have names").to_os_string();
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let file = match openat(&dir, name.as_os_str(), flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(Errno::ENOENT) => {
                return Err(match target {
                    KeyTarget::Group(g) => Error::key_file(
                        &path,
                        format!("no key for group {g}: an admin creates it with `mtshare keygen --group {g}`"),
                    ),
                    KeyTarget::Site => {
                        Error::key_file(&path, "no site-wide key: an admin creates it with `mtshare keygen --site`")
                    }
                })
            }
            Err(Errno::ELOOP) => return Err(Error::key_file(&path, "is a symlink: key files must be regular files")),
            Err(Errno::EACCES) => {
                // Say what is wrong with the file if anything is; else the reader is simply not a member.
                if let Ok(meta) = fs::symlink_metadata(&path) {
                    self.check_meta(target, &path, &meta)?;
                }
                let who = user_label(Uid::effective().as_raw());
                return Err(match target {
                    KeyTarget::Group(g) => Error::key_file(
                        &path,
                        format!("permission denied for {who}: only members of group {g} can read its key"),
                    ),
                    KeyTarget::Site => Error::key_file(
                        &path,
                        format!("permission denied for {who}: the site-wide key must be mode 0444"),
                    ),
                });
            }
            Err(e) => return Err(Error::key_file(&path, format!("cannot open key file: {e}"))),
        };
        let meta = file.metadata().map_err(|e| Error::key_file(&path, e.to_string()))?;
        self.check_meta(target, &path, &meta)?;
        let mut text = String::new();
        (&file)
            .take(64 * 1024)
            .read_to_string(&mut text)
            .map_err(|e| Error::key_file(&path, format!("cannot read key file: {e}")))?;
        let keys = parse_keys(&text).map_err(|why| Error::key_file(&path, why))?;
        Ok((KeyFile { path, keys }, text))
    }

    pub fn load_group(&self, group: &str) -> Result<KeyFile> {
        self.load(KeyTarget::Group(group))
    }

    /// The site-wide key file, or `None` when there is none.
    pub fn load_site(&self) -> Result<Option<KeyFile>> {
        if !self.file_exists(KeyTarget::Site)? {
            self.open_dir()?;
            return Ok(None);
        }
        self.load(KeyTarget::Site).map(Some)
    }

    /// The key that seals new shares for `group`: the group's newest key. The site-wide key is used
    /// only for a group with no key file of its own, and only when `allow_site` says so, because
    /// every user can read it.
    pub fn sealing_key(&self, group: &str, allow_site: bool) -> Result<(Key, PathBuf)> {
        lookup_gid(group)?;
        if self.file_exists(KeyTarget::Group(group))? || !allow_site {
            let f = self.load_group(group)?;
            return Ok((f.keys[0].clone(), f.path));
        }
        match self.load_site()? {
            Some(f) => Ok((f.keys[0].clone(), f.path)),
            None => Err(self.load_group(group).expect_err("the group key file is missing")),
        }
    }

    /// The keys that may open `group`'s shares: the group's own keys when it has a key file, else the
    /// site-wide keys. Never both: a site-wide key, readable by all, must not vouch for a group that
    /// has its own key.
    pub fn opening_keys(&self, group: &str) -> Result<Vec<Key>> {
        if self.file_exists(KeyTarget::Group(group))? {
            return Ok(self.load_group(group)?.keys);
        }
        Ok(self.load_site()?.map(|f| f.keys).unwrap_or_default())
    }

    /// Writes a new key file (or, with `rotate`, puts a new key first in an existing one).
    /// The file appears atomically with its final owner, group and mode; without `rotate` an existing
    /// file is never replaced.
    pub fn generate(&self, target: KeyTarget, rotate: bool) -> Result<KeyFile> {
        let path = self.file_path(target)?;
        let (gid, mode) = file_group_and_mode(target)?;
        if !self.path.exists() {
            fs::create_dir_all(&self.path)
                .map_err(|e| Error::key_file(&self.path, format!("cannot create key directory: {e}")))?;
            fs::set_permissions(&self.path, Permissions::from_mode(0o755))
                .map_err(|e| Error::key_file(&self.path, e.to_string()))?;
        }
        let _lock = self.lock()?;
        let mut keys = vec![Key::generate()?];
        let exists = self.file_exists(target)?;
        match (exists, rotate) {
            (true, false) => {
                return Err(Error::key_file(
                    &path,
                    "already exists: to add a new key and keep the old ones, use --rotate",
                ))
            }
            (true, true) => keys.extend(self.load(target)?.keys),
            (false, _) => {}
        }
        let text = format!("{}{}\n", header(target), keys.iter().map(Key::to_line).collect::<Vec<_>>().join("\n"));
        write_key_file(&self.temp_path(&path)?, &path, text.as_bytes(), self.owner, gid, mode, exists)?;
        Ok(KeyFile { path, keys })
    }

    /// Keeps only the first (newest) key of an existing key file and returns the file and how many
    /// older keys were dropped. Shares sealed with a dropped key no longer open here: run it after a
    /// rotation, once every share sealed with the old keys has ended. Written like [`KeyDir::generate`]
    /// (under the same lock, atomically, with the final owner, group and mode); the comment lines
    /// above the first key are kept.
    pub fn drop_old(&self, target: KeyTarget) -> Result<(KeyFile, usize)> {
        let path = self.file_path(target)?;
        let (gid, mode) = file_group_and_mode(target)?;
        let _lock = self.lock()?;
        if !self.file_exists(target)? {
            let create = match target {
                KeyTarget::Group(g) => format!("mtshare keygen --group {g}"),
                KeyTarget::Site => "mtshare keygen --site".into(),
            };
            return Err(Error::key_file(
                &path,
                format!("does not exist, so there are no old keys to drop (create it with `{create}`)"),
            ));
        }
        let (file, text) = self.load_text(target)?;
        if file.keys.len() == 1 {
            return Err(Error::Invalid(format!("nothing to drop: {} holds one key", path.display())));
        }
        let dropped = file.keys.len() - 1;
        let kept = file.keys[0].clone();
        let comments: String = text
            .lines()
            .take_while(|l| l.trim().is_empty() || l.trim().starts_with('#'))
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        let head = if comments.is_empty() { header(target) } else { comments };
        let text = format!("{head}{}\n", kept.to_line());
        write_key_file(&self.temp_path(&path)?, &path, text.as_bytes(), self.owner, gid, mode, true)?;
        Ok((KeyFile { path, keys: vec![kept] }, dropped))
    }

    /// One writer at a time: two concurrent rotations (or a rotation and a drop) must not lose a key.
    fn lock(&self) -> Result<Flock<File>> {
        Flock::lock(self.open_dir()?, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::key_file(&self.path, format!("cannot lock key directory: {e}")))
    }

    /// A fresh, unguessable temp file name next to `path`.
    fn temp_path(&self, path: &Path) -> Result<PathBuf> {
        let mut rnd = [0u8; 6];
        getrandom::fill(&mut rnd).map_err(|e| Error::Io(e.to_string()))?;
        Ok(self.path.join(format!(".{}.{}.tmp", path.file_name().unwrap().to_string_lossy(), hex(&rnd))))
    }
}

/// The group a key file belongs to and its mode.
fn file_group_and_mode(target: KeyTarget) -> Result<(u32, u32)> {
    Ok(match target {
        KeyTarget::Group(g) => (lookup_gid(g)?, 0o440),
        KeyTarget::Site => (0, 0o444),
    })
}

/// The comment lines a new key file starts with.
fn header(target: KeyTarget) -> String {
    let what = match target {
        KeyTarget::Group(g) => format!("group key for {g:?}"),
        KeyTarget::Site => "site-wide key (readable by every user: obfuscation only)".to_string(),
    };
    format!(
        "# multitenant {what}\n# The first key seals new shares; every key opens. Rotate with --rotate; once no running share uses the old keys, drop them with --drop-old.\n"
    )
}

/// Creates `tmp` (never an existing file), gives it its owner and mode, then links it into place:
/// a new key file with link(2), which fails rather than overwrite; a rotated one with rename(2).
fn write_key_file(tmp: &Path, path: &Path, text: &[u8], uid: u32, gid: u32, mode: u32, replace: bool) -> Result<()> {
    let io = |e: std::io::Error| Error::key_file(path, format!("cannot write key file: {e}"));
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(tmp).map_err(io)?;
    let result = (|| {
        f.write_all(text).map_err(io)?;
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(|e| {
            Error::key_file(
                path,
                format!("cannot give the key file owner {}:{}: {e} (run as root)", user_label(uid), group_label(gid)),
            )
        })?;
        f.set_permissions(Permissions::from_mode(mode)).map_err(io)?;
        f.sync_all().map_err(io)?;
        if replace {
            fs::rename(tmp, path).map_err(io)
        } else {
            fs::hard_link(tmp, path).map_err(|e| match e.kind() {
                ErrorKind::AlreadyExists => {
                    Error::key_file(path, "already exists: to add a new key and keep the old ones, use --rotate")
                }
                _ => io(e),
            })
        }
    })();
    let _ = fs::remove_file(tmp);
    result?;
    if let Some(dir) = path.parent() {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}
