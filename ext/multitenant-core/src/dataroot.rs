//! Safe work under one user's OOD data root, on directory file descriptors.
//!
//! The root is opened once (OOD's configured path, which may be or contain a symlink) and must be a
//! directory the viewer owns that others cannot write (unless it is sticky). Everything below it is
//! reached one component at a time with `openat(O_NOFOLLOW)` from the directory above, so a path is
//! never re-resolved by name and a symlink swapped in between two steps cannot redirect anything:
//! - a directory below the root must be owned by the viewer and not writable by others unless sticky
//!   (group-writable is fine: OOD run with umask 0007 makes its directories 0770);
//! - a symlink is followed only if the viewer owns it; the kernel never follows it: its target is read
//!   (`readlinkat`) and walked one component at a time the same way (`O_NOFOLLOW`, from `/` when
//!   absolute, else from the link's directory), at most [`MAX_LINKS`] symlinks in all, and
//!   - every directory a name is looked up in on the way (`/`, `/proj`, `/proj/lab`, …) must be one
//!     only root and the viewer can change: owned by root or the viewer; not world-writable unless
//!     sticky; not group-writable unless sticky or the viewer's own (see below);
//!   - a symlink met on the way is followed only if root or the viewer owns it;
//!   - the directory reached must be the viewer's, as any directory below the root (0770 is fine);
//!
//!   so a project-space move (`batch_connect -> /proj/lab/bob/bc`) works when `/proj/lab` is sticky
//!   (3770) or not group-writable, and is refused when it is the lab's and not sticky (2770): a lab
//!   member could rename `bob` aside and plant a path of their choice. Why a group-writable directory is fine when the viewer owns it but not when root
//!   does: every entry met is checked, so what members of the group can do there is rename entries
//!   root or the viewer owns, never plant one of theirs. The viewer chose to give their group that
//!   power over their own directories (umask 0007: the data root and everything OOD makes in it are
//!   already so, and so is a project-space directory the user made under that umask, as
//!   `mkdir -p ~/project/ood` does); nobody asked them about a shared directory of root's, whose
//!   group may be a whole lab or site. A directory of any other uid is never trusted: its owner
//!   can change it whatever its mode;
//! - files are opened `O_NOFOLLOW`, read only when regular and small, written under a fresh `.…bak`
//!   name (`O_EXCL`, mode 0600, fsynced) and renamed into place in the same directory, so OOD reads
//!   the old file or the new one, never half of one; directories are removed only when empty.
//!
//! Opened directories are remembered per relative path for the life of a `DataRoot` (one reconcile or
//! one settle), so a run over many cards walks each directory once (up to [`MAX_REMEMBERED`] open at
//! a time).

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{open, openat, readlinkat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{fsync, unlinkat, UnlinkatFlags};

use crate::error::{Error, Result};
use crate::manifest::Stamp;

/// What is at a path, without following a symlink there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileState {
    Missing,
    /// A regular file.
    File,
    /// Anything else (symlink, directory, FIFO…): never ours to touch.
    Other,
}

/// An opened, checked data root and the checked directories below it opened so far.
pub(crate) struct DataRoot {
    path: PathBuf,
    uid: u32,
    root: Rc<OwnedFd>,
    dirs: RefCell<BTreeMap<PathBuf, Rc<OwnedFd>>>,
}

/// Directory descriptors kept open at most by one `DataRoot`.
const MAX_REMEMBERED: usize = 256;

/// Symlinks followed at most to reach one directory (the user's own link included): stops loops.
const MAX_LINKS: usize = 8;

/// One step of a symlink's target path.
enum Step {
    Root,
    Up,
    Name(OsString),
}

/// How a directory was reached, for the message that refuses it.
#[derive(Clone, Copy)]
enum Reached {
    Root,
    Below,
    Symlink,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY).union(OFlag::O_CLOEXEC);

fn refuse(what: impl std::fmt::Display) -> Error {
    Error::Io(format!("refusing {what}"))
}

fn is_type(st: &FileStat, t: SFlag) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == t.bits()
}

/// The temporary name a file is written under before it is renamed into place.
fn temp_name(name: &str) -> String {
    format!(".{name}.multitenant.bak")
}

fn stamp_of(dir: &OwnedFd, rest: &Path) -> Option<Stamp> {
    let st = fstatat(dir.as_fd(), rest, AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
    is_type(&st, SFlag::S_IFREG).then_some(Stamp::new([
        st.st_dev,
        st.st_ino,
        st.st_size as u64,
        st.st_mtime as u64,
        st.st_mtime_nsec as u64,
        st.st_ctime as u64,
        st.st_ctime_nsec as u64,
    ]))
}

impl DataRoot {
    /// Opens the data root (following any symlink in OOD's configured path) and checks it.
    pub(crate) fn open(dataroot: &Path, uid: u32) -> Result<DataRoot> {
        let fd = open(dataroot, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
            Errno::ENOTDIR => Error::Io(format!(
                "data root {} is not a directory owned by uid {uid} (you): it is not a directory; point OOD's data root at a directory of yours",
                dataroot.display()
            )),
            e => Error::Io(format!("data root {}: {}", dataroot.display(), e.desc())),
        })?;
        let root = DataRoot { path: dataroot.to_path_buf(), uid, root: Rc::new(fd), dirs: RefCell::default() };
        root.check_dir(&root.root, dataroot, Reached::Root)?;
        Ok(root)
    }

    /// The path shown in messages for `rel`.
    pub(crate) fn show(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    /// Forgets the directories opened so far (after waiting for the lock: another run may have
    /// removed some meanwhile).
    pub(crate) fn forget(&self) {
        self.dirs.borrow_mut().clear();
    }

    /// A directory the viewer owns that nobody else can change (group members aside); `how` says
    /// how it was reached, for the message.
    fn check_dir(&self, fd: &OwnedFd, shown: &Path, how: Reached) -> Result<()> {
        let st = fstat(fd.as_fd()).map_err(|e| Error::Io(format!("{}: {}", shown.display(), e.desc())))?;
        let (p, uid) = (shown.display(), self.uid);
        let bad = if !is_type(&st, SFlag::S_IFDIR) {
            "is not a directory".to_string()
        } else if st.st_uid != uid {
            format!("is owned by uid {}, not by you (uid {uid})", st.st_uid)
        } else if st.st_mode & 0o002 != 0 && st.st_mode & 0o1000 == 0 {
            format!("is writable by others (mode {:o})", st.st_mode & 0o7777)
        } else {
            return Ok(());
        };
        let fix = if bad.starts_with("is writable") {
            format!("chmod o-w {p}")
        } else {
            match how {
                Reached::Root => "point OOD's data root at a directory of yours".into(),
                Reached::Below => "make it yours, or move it aside".into(),
                Reached::Symlink => "point the symlink at a directory of yours".into(),
            }
        };
        Err(Error::Io(match how {
            // Said as it always was (admin tools match it): the data root comes first.
            Reached::Root if st.st_uid != uid || !is_type(&st, SFlag::S_IFDIR) => {
                format!("data root {p} is not a directory owned by uid {uid} (you): it {bad}; {fix}")
            }
            Reached::Root => format!("data root {p} {bad}: {fix}"),
            Reached::Below => format!("refusing {p}: it {bad}: {fix}"),
            Reached::Symlink => format!("refusing {p}: your symlink leads to a directory that {bad}: {fix}"),
        }))
    }

    /// Opens the directory `name` in `parent` as described in the module docs; `None` when missing
    /// and not asked to create it.
    fn open_step(&self, parent: &OwnedFd, name: &OsStr, shown: &Path, create: bool) -> Result<Option<OwnedFd>> {
        let io = |e: Errno| Error::Io(format!("{}: {}", shown.display(), e.desc()));
        let mut made = false;
        loop {
            match openat(parent.as_fd(), name, DIR_FLAGS | OFlag::O_NOFOLLOW, Mode::empty()) {
                Ok(fd) => {
                    self.check_dir(&fd, shown, Reached::Below)?;
                    return Ok(Some(fd));
                }
                Err(Errno::ENOENT) if create && !made => {
                    // Another run of this user may make it first: then it is opened and checked as any other.
                    match mkdirat(parent.as_fd(), name, Mode::S_IRWXU) {
                        Ok(()) | Err(Errno::EEXIST) => made = true,
                        Err(e) => return Err(Error::Io(format!("creating {}: {}", shown.display(), e.desc()))),
                    }
                }
                Err(Errno::ENOENT) => return Ok(None),
                // O_NOFOLLOW met a symlink (ELOOP, or ENOTDIR with O_DIRECTORY), or this is not a directory.
                Err(Errno::ELOOP | Errno::ENOTDIR) => return self.follow(parent, name, shown).map(Some),
                Err(e) => return Err(io(e)),
            }
        }
    }

    /// `name` in `parent` is not a directory: follows it only if it is a symlink the viewer owns whose
    /// target is walked safely (see the module docs) to a directory the viewer owns.
    fn follow(&self, parent: &OwnedFd, name: &OsStr, shown: &Path) -> Result<OwnedFd> {
        let link = fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| Error::Io(format!("{}: {}", shown.display(), e.desc())))?;
        if !is_type(&link, SFlag::S_IFLNK) {
            return Err(refuse(format_args!("{}: not a directory (move it aside)", shown.display())));
        }
        if link.st_uid != self.uid {
            return Err(refuse(format_args!(
                "{}: a symlink owned by uid {}, not by you (uid {}): only your own symlinks are followed (remove it)",
                shown.display(),
                link.st_uid,
                self.uid
            )));
        }
        let start = parent.try_clone().map_err(|e| Error::Io(format!("{}: {e}", shown.display())))?;
        let at = shown.parent().unwrap_or(Path::new("")).to_path_buf();
        let fd = self.walk_link(start, at, name, shown)?;
        self.check_dir(&fd, shown, Reached::Symlink)?;
        Ok(fd)
    }

    /// Resolves the symlink `name` in `dir` (shown as `at`) one component at a time, never letting the
    /// kernel follow a link: every directory a name is looked up in must pass [`Self::check_on_way`],
    /// every symlink met must be root's or the viewer's, at most [`MAX_LINKS`] in all (the first one
    /// included). Returns the directory reached, not yet checked as the destination.
    fn walk_link(&self, mut dir: OwnedFd, mut at: PathBuf, name: &OsStr, shown: &Path) -> Result<OwnedFd> {
        let p = shown.display();
        let fix = "point the symlink along a path only you and root can change";
        let read = |dir: &OwnedFd, name: &OsStr, at: &Path| {
            readlinkat(dir.as_fd(), name).map_err(|e| Error::Io(format!("{}: {}", at.join(name).display(), e.desc())))
        };
        let mut todo: VecDeque<Step> = VecDeque::new();
        let mut links = 1;
        let mut target = read(&dir, name, &at)?;
        // Whether `dir` was checked: the link's own directory was, on the way to the link.
        let mut checked = true;
        loop {
            // The target's steps go first, before what was left of the path that led to it.
            for c in Path::new(&target).components().rev() {
                match c {
                    Component::RootDir => todo.push_front(Step::Root),
                    Component::ParentDir => todo.push_front(Step::Up),
                    Component::Normal(n) => todo.push_front(Step::Name(n.to_os_string())),
                    Component::CurDir | Component::Prefix(_) => {}
                }
            }
            // Walks on until a step is not a directory (`Some(name)`), or to the end.
            let link = loop {
                let step = match todo.pop_front() {
                    None => return Ok(dir),
                    Some(Step::Root) => {
                        dir = open("/", DIR_FLAGS, Mode::empty()).map_err(|e| Error::Io(format!("/: {}", e.desc())))?;
                        at = PathBuf::from("/");
                        checked = false;
                        continue;
                    }
                    Some(Step::Up) => OsString::from(".."),
                    Some(Step::Name(n)) => n,
                };
                // A name is looked up in `dir`: whoever can change `dir` chooses what it leads to.
                if !checked {
                    self.check_on_way(&dir).map_err(|why| {
                        refuse(format_args!("{p}: its target passes through {}, {why}: {fix}", at.display()))
                    })?;
                    checked = true;
                }
                match openat(dir.as_fd(), step.as_os_str(), DIR_FLAGS | OFlag::O_NOFOLLOW, Mode::empty()) {
                    Ok(fd) => {
                        dir = fd;
                        // `..` of a directory reached by name is its parent, also as shown.
                        if step != ".." || matches!(at.components().next_back(), Some(Component::ParentDir) | None)
                        {
                            at.push(&step);
                        } else if at.parent().is_some() {
                            at.pop();
                        }
                        checked = false;
                    }
                    Err(Errno::ELOOP | Errno::ENOTDIR) => break step,
                    Err(Errno::ENOENT) => {
                        return Err(refuse(format_args!(
                            "{p}: your symlink leads nowhere ({} does not exist): create the directory it names, or remove it",
                            at.join(&step).display()
                        )))
                    }
                    Err(e) => return Err(Error::Io(format!("{}: {}", at.join(&step).display(), e.desc()))),
                }
            };
            // `link` in `dir` is not a directory: only a symlink of root's or the viewer's is followed.
            let here = at.join(&link);
            let st = fstatat(dir.as_fd(), link.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(|e| Error::Io(format!("{}: {}", here.display(), e.desc())))?;
            if !is_type(&st, SFlag::S_IFLNK) {
                return Err(refuse(format_args!(
                    "{p}: your symlink does not lead to a directory ({} is not one)",
                    here.display()
                )));
            }
            if st.st_uid != 0 && st.st_uid != self.uid {
                return Err(refuse(format_args!(
                    "{p}: its target passes through {}, a symlink owned by uid {}, not by you (uid {}) or root: {fix}",
                    here.display(),
                    st.st_uid,
                    self.uid
                )));
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(refuse(format_args!(
                    "{p}: its target goes through more than {MAX_LINKS} symlinks (a loop?): point the symlink straight at a directory of yours"
                )));
            }
            target = read(&dir, &link, &at)?;
        }
    }

    /// The rule for a directory a symlink's target passes through (module docs); `Err` says why not.
    fn check_on_way(&self, fd: &OwnedFd) -> std::result::Result<(), String> {
        let st = fstat(fd.as_fd()).map_err(|e| format!("which cannot be examined ({})", e.desc()))?;
        let (mode, owner) = (st.st_mode & 0o7777, st.st_uid);
        if owner != 0 && owner != self.uid {
            Err(format!("owned by uid {owner} (mode {mode:o}), not by you (uid {}) or root", self.uid))
        } else if mode & 0o1000 == 0 && (mode & 0o002 != 0 || (mode & 0o020 != 0 && owner != self.uid)) {
            Err(format!("which others can write (mode {mode:o}, owner uid {owner})"))
        } else {
            Ok(())
        }
    }

    /// The checked directory at `rel` below the root; missing directories are created (mode 0700)
    /// when `create`, else `None`.
    pub(crate) fn dir(&self, rel: &Path, create: bool) -> Result<Option<Rc<OwnedFd>>> {
        // The directories cards share are asked for once per card: found whole, not step by step.
        if let Some(fd) = self.dirs.borrow().get(rel) {
            return Ok(Some(fd.clone()));
        }
        let mut cur = self.root.clone();
        let mut at = PathBuf::new();
        for c in rel.components() {
            let Component::Normal(part) = c else {
                return Err(refuse(format_args!("path {} (not a plain relative path)", rel.display())));
            };
            at.push(part);
            if let Some(fd) = self.dirs.borrow().get(&at) {
                cur = fd.clone();
                continue;
            }
            let Some(fd) = self.open_step(&cur, part, &self.path.join(&at), create)? else { return Ok(None) };
            cur = Rc::new(fd);
            let mut dirs = self.dirs.borrow_mut();
            // Each card has an output directory of its own: a run over very many must not run out of
            // descriptors. Starting over costs a few re-walks of the shared directories.
            if dirs.len() >= MAX_REMEMBERED {
                dirs.clear();
            }
            dirs.insert(at.clone(), cur.clone());
        }
        Ok(Some(cur))
    }

    fn split(rel: &Path) -> Result<(&Path, &OsStr)> {
        match (rel.parent(), rel.file_name()) {
            (Some(dir), Some(name)) => Ok((dir, name)),
            _ => Err(refuse(format_args!("path {} (no file name)", rel.display()))),
        }
    }

    /// What is at `rel` (a symlink counts as `Other`: not ours to touch).
    pub(crate) fn file_state(&self, rel: &Path) -> Result<FileState> {
        let (dir, name) = Self::split(rel)?;
        let Some(dir) = self.dir(dir, false)? else { return Ok(FileState::Missing) };
        Ok(match fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if is_type(&st, SFlag::S_IFREG) => FileState::File,
            Ok(_) => FileState::Other,
            Err(Errno::ENOENT) => FileState::Missing,
            Err(e) => return Err(Error::Io(format!("{}: {}", self.show(rel).display(), e.desc()))),
        })
    }

    /// At most `cap` bytes of the regular file at `rel`: never blocks on a FIFO, never follows a link.
    /// `Ok(None)` when it does not exist. With `owned`, the file must also be the viewer's.
    pub(crate) fn read(&self, rel: &Path, cap: u64, owned: bool) -> Result<Option<Vec<u8>>> {
        let shown = self.show(rel);
        let err = |why: String| Error::Io(format!("{}: {why}", shown.display()));
        let (dir, name) = Self::split(rel)?;
        let Some(dir) = self.dir(dir, false)? else { return Ok(None) };
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match openat(dir.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => return Err(refuse(format_args!("{}: it is a symlink", shown.display()))),
            Err(e) => return Err(err(e.desc().into())),
        };
        let st = fstat(fd.as_fd()).map_err(|e| err(e.desc().into()))?;
        if !is_type(&st, SFlag::S_IFREG) {
            return Err(refuse(format_args!("{}: not a regular file", shown.display())));
        }
        if owned && st.st_uid != self.uid {
            return Err(refuse(format_args!(
                "{}: owned by uid {}, not by you (uid {}): move it aside",
                shown.display(),
                st.st_uid,
                self.uid
            )));
        }
        if st.st_size as u64 > cap {
            return Err(err(format!("larger than {cap} bytes")));
        }
        let mut buf = Vec::new();
        File::from(fd).take(cap).read_to_end(&mut buf).map_err(|e| err(e.to_string()))?;
        Ok(Some(buf))
    }

    /// The stamp of the regular file `rest` below the checked directory `dir`, in one `fstatat` from
    /// that directory (opened once per run). `rest` may have several parts, and the kernel follows a
    /// symlink among them: this is only for comparing with a stamp taken by [`Self::checked_stamp`]
    /// (the same device and inode is the same file, however reached). `None`: missing, or not a file.
    pub(crate) fn stamp(&self, dir: &Path, rest: &Path) -> Option<Stamp> {
        let dir = self.dir(dir, false).ok()??;
        stamp_of(&dir, rest)
    }

    /// The stamp of the regular file at `rel`, reached through checked directories only (a symlink on
    /// the way is refused as everywhere else): the stamp a card is recorded with.
    pub(crate) fn checked_stamp(&self, rel: &Path) -> Option<Stamp> {
        let (dir, name) = Self::split(rel).ok()?;
        let dir = self.dir(dir, false).ok()??;
        stamp_of(&dir, Path::new(name))
    }

    /// Replaces (or creates) the file at `rel` with `contents`, creating missing directories: written
    /// under `.<name>.multitenant.bak` (OOD skips those; one run at a time per user, so the name is this
    /// run's, and a killed run's leftover is replaced) and renamed into place, so a reader sees the old
    /// file or the new one, never part of one. `durable` fsyncs the file before the rename and the
    /// directory after: for the manifest, not for cards (derived data: see `cards.rs`).
    pub(crate) fn write(&self, rel: &Path, contents: &[u8], durable: bool) -> Result<()> {
        let (dir, name) = Self::split(rel)?;
        let name = name.to_str().ok_or_else(|| refuse(format_args!("path {} (not UTF-8)", rel.display())))?;
        let dir = self.dir(dir, true)?.expect("created");
        let tmp = temp_name(name);
        let _ = unlinkat(dir.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(dir.as_fd(), tmp.as_str(), flags, Mode::S_IRUSR | Mode::S_IWUSR)
            .map_err(|e| Error::Io(format!("writing {}: {}", self.show(rel).display(), e.desc())))?;
        let result = (|| {
            let mut f = File::from(fd);
            f.write_all(contents)?;
            if durable {
                f.sync_all()?;
            }
            renameat(dir.as_fd(), tmp.as_str(), dir.as_fd(), name).map_err(std::io::Error::from)?;
            if durable {
                fsync(dir.as_fd()).map_err(std::io::Error::from)?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = unlinkat(dir.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        result.map_err(|e: std::io::Error| Error::Io(format!("writing {}: {e}", self.show(rel).display())))
    }

    /// Opens (creating, mode 0600) the file at `rel` for writing without truncating it: the lock file.
    pub(crate) fn open_lock_file(&self, rel: &Path) -> Result<File> {
        let (dir, name) = Self::split(rel)?;
        let dir = self.dir(dir, true)?.expect("created");
        // Non-blocking: a FIFO planted there fails at once instead of waiting for a reader.
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let err = |why: &str| Error::Io(format!("lock file {}: {why}", self.show(rel).display()));
        let fd = openat(dir.as_fd(), name, flags, Mode::S_IRUSR | Mode::S_IWUSR).map_err(|e| err(e.desc()))?;
        match fstat(fd.as_fd()) {
            Ok(st) if is_type(&st, SFlag::S_IFREG) => Ok(File::from(fd)),
            Ok(_) => Err(err("not a regular file (move it aside)")),
            Err(e) => Err(err(e.desc())),
        }
    }

    /// Removes the file (or symlink, never what it leads to) at `rel`; a missing one is fine.
    pub(crate) fn remove(&self, rel: &Path) -> Result<()> {
        let (dir, name) = Self::split(rel)?;
        let Some(dir) = self.dir(dir, false)? else { return Ok(()) };
        // A run killed while writing it left its temporary file: ours too.
        if let Some(name) = name.to_str() {
            let _ = unlinkat(dir.as_fd(), temp_name(name).as_str(), UnlinkatFlags::NoRemoveDir);
        }
        match unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(Error::Io(format!("removing {}: {}", self.show(rel).display(), e.desc()))),
        }
    }

    /// Removes the directory at `rel` only if it is empty: anything else in it is not ours.
    pub(crate) fn remove_empty_dir(&self, rel: &Path) {
        let Ok((dir, name)) = Self::split(rel) else { return };
        if let Ok(Some(dir)) = self.dir(dir, false) {
            let _ = unlinkat(dir.as_fd(), name, UnlinkatFlags::RemoveDir);
        }
        // Whatever happened, what was remembered at or below `rel` may be gone.
        self.dirs.borrow_mut().retain(|k, _| !k.starts_with(rel));
    }
}
