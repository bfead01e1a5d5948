//! Key files on the real filesystem: generation, rotation, dropping old keys and every permission check.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{ollama, JOB};
use multitenant_core::{open, seal, Key, KeyDir, KeyTarget};
use nix::unistd::{Gid, Group, Uid};

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: KeyDir,
    group: String,
}

/// A key dir owned by whoever runs the tests, with keys for their primary group.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("keys");
    let dir = KeyDir::new(&path).with_owner(Uid::effective().as_raw());
    let group = Group::from_gid(Gid::effective()).unwrap().unwrap().name;
    Fixture { _tmp: tmp, dir, group }
}

fn err_text(f: &Fixture) -> String {
    f.dir.load_group(&f.group).unwrap_err().to_string()
}

#[test]
fn keygen_writes_owner_group_and_mode_and_never_overwrites() {
    let f = fixture();
    let made = f.dir.generate(KeyTarget::Group(&f.group), false).unwrap();
    let meta = fs::metadata(&made.path).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o440);
    assert_eq!(meta.uid(), Uid::effective().as_raw());
    assert_eq!(meta.gid(), Gid::effective().as_raw());
    assert_eq!(fs::metadata(f.dir.path()).unwrap().mode() & 0o777, 0o755);
    let before = fs::read(&made.path).unwrap();
    let e = f.dir.generate(KeyTarget::Group(&f.group), false).unwrap_err();
    assert!(e.to_string().contains("already exists: to add a new key and keep the old ones, use --rotate"), "{e}");
    assert_eq!(fs::read(&made.path).unwrap(), before);
    let names: Vec<_> = fs::read_dir(f.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temp file is left behind: {names:?}");
    assert_eq!(f.dir.load_group(&f.group).unwrap().keys, made.keys);
}

#[test]
fn rotation_seals_with_the_new_key_and_still_opens_old_shares() {
    let f = fixture();
    let old = f.dir.generate(KeyTarget::Group(&f.group), false).unwrap().keys[0].clone();
    let old_share = seal(&ollama(), &old, "mt", &f.group, JOB).unwrap();
    let rotated = f.dir.generate(KeyTarget::Group(&f.group), true).unwrap();
    assert_eq!(rotated.keys.len(), 2);
    assert_eq!(rotated.keys[1], old);
    let (sealing, _) = f.dir.sealing_key(&f.group, false).unwrap();
    assert_eq!(sealing, rotated.keys[0]);
    let keys = f.dir.opening_keys(&f.group).unwrap();
    open(&old_share, JOB, &keys).unwrap();
    open(&seal(&ollama(), &sealing, "mt", &f.group, JOB).unwrap(), JOB, &keys).unwrap();
    assert_eq!(fs::metadata(&rotated.path).unwrap().mode() & 0o7777, 0o440);
}

#[test]
fn unsafe_modes_are_named_with_their_fix() {
    let f = fixture();
    let path = f.dir.generate(KeyTarget::Group(&f.group), false).unwrap().path;
    let shown = path.display().to_string();
    for (mode, want) in [
        (0o444, format!("is world-readable: chmod 0440 {shown}")),
        (0o441, format!("is accessible to others: chmod 0440 {shown}")),
        (0o460, format!("is writable by group or others: chmod 0440 {shown}")),
    ] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let text = err_text(&f);
        assert!(text.starts_with(&shown) && text.ends_with(&want), "{mode:o}: {text}");
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    f.dir.load_group(&f.group).unwrap();
}

#[test]
fn the_key_directory_itself_is_checked() {
    let f = fixture();
    f.dir.generate(KeyTarget::Group(&f.group), false).unwrap();
    fs::set_permissions(f.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    assert!(err_text(&f).contains("key directory is writable by others: chmod go-w"), "{}", err_text(&f));
    let missing = KeyDir::new("/nonexistent/multitenant-keys");
    let e = missing.load_group("g").unwrap_err().to_string();
    assert!(e.contains("key directory does not exist"), "{e}");
}

#[test]
fn symlinks_damaged_lines_and_missing_files_are_refused() {
    let f = fixture();
    let path = f.dir.generate(KeyTarget::Group(&f.group), false).unwrap().path;
    let real = path.with_extension("real");
    fs::rename(&path, &real).unwrap();
    std::os::unix::fs::symlink(&real, &path).unwrap();
    assert!(err_text(&f).ends_with("is a symlink: key files must be regular files"), "{}", err_text(&f));
    fs::remove_file(&path).unwrap();
    assert!(err_text(&f)
        .contains(&format!("no key for group {0}: an admin creates it with `mtshare keygen --group {0}`", f.group)));

    let good = Key::generate().unwrap().to_line();
    for (text, want) in [
        (format!("# c\n\n{good}\nmtk1:deadbeef:AAAA\n"), "line 4: the secret is not 32 bytes of base64url"),
        (format!("mtk1:00000000:{}\n", &good[14..]), "line 1: key id 00000000 does not match its secret"),
        ("# only a comment\n".to_string(), "holds no key"),
        ("hello\n".to_string(), "line 1: not a multitenant key"),
    ] {
        fs::write(&real, &text).unwrap();
        fs::rename(&real, &path).unwrap();
        assert!(err_text(&f).contains(want), "{text:?}: {}", err_text(&f));
        fs::rename(&path, &real).unwrap();
    }
}

#[test]
fn the_site_key_is_a_fallback_for_groups_without_their_own() {
    let f = fixture();
    assert!(f.dir.load_site().is_err(), "no key directory yet");
    let site = f.dir.generate(KeyTarget::Site, false).unwrap();
    assert!(site.path.ends_with("@site.key"));
    assert_eq!(fs::metadata(&site.path).unwrap().mode() & 0o7777, 0o444);
    let e = f.dir.sealing_key(&f.group, false).unwrap_err().to_string();
    assert!(e.contains(&format!("no key for group {}", f.group)), "the site key needs an explicit opt-in: {e}");
    let (sealing, from) = f.dir.sealing_key(&f.group, true).unwrap();
    assert_eq!((sealing, from), (site.keys[0].clone(), site.path.clone()));
    assert_eq!(f.dir.opening_keys(&f.group).unwrap(), site.keys);
    let group_key = f.dir.generate(KeyTarget::Group(&f.group), false).unwrap();
    assert_eq!(f.dir.sealing_key(&f.group, true).unwrap().0, group_key.keys[0]);
    // Readable by all, the site key must not vouch for a group that has its own key.
    assert_eq!(f.dir.opening_keys(&f.group).unwrap(), group_key.keys);
    let forged = seal(&ollama(), &site.keys[0], "mt", &f.group, JOB).unwrap();
    assert_eq!(open(&forged, JOB, &f.dir.opening_keys(&f.group).unwrap()).unwrap_err().kind(), "unknown_key");
    assert!(f.dir.sealing_key("no-such-group-xyz", true).is_err(), "a group that does not exist is refused");
    fs::set_permissions(&site.path, fs::Permissions::from_mode(0o666)).unwrap();
    let text = f.dir.load_site().unwrap_err().to_string();
    assert!(text.ends_with(&format!("is writable by group or others: chmod 0444 {}", site.path.display())), "{text}");
}

#[test]
fn wrong_owner_or_group_is_named_with_the_chown_that_fixes_it() {
    if !Uid::effective().is_root() {
        assert!(std::env::var("CI").is_err(), "CI runs as root: this test must not be skipped there");
        eprintln!("skipped: chown to another user needs root");
        return;
    }
    let f = fixture();
    let path = f.dir.generate(KeyTarget::Group(&f.group), false).unwrap().path;
    std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
    let text = err_text(&f);
    assert!(text.contains("is owned by nobody, not root: chown root:root"), "{text}");
    std::os::unix::fs::chown(&path, Some(0), Some(65534)).unwrap();
    let text = err_text(&f);
    assert!(text.contains("belongs to group nogroup, not root: chown root:root"), "{text}");
}

#[test]
fn unknown_groups_are_refused_before_any_file_is_written() {
    let f = fixture();
    let e = f.dir.generate(KeyTarget::Group("no-such-group-xyz"), false).unwrap_err();
    assert_eq!(e.to_string(), "no such group \"no-such-group-xyz\" on this host");
    assert!(!f.dir.path().exists());
    assert_eq!(f.dir.generate(KeyTarget::Group("../etc"), false).unwrap_err().kind(), "invalid");
}

#[test]
fn drop_old_keeps_only_the_newest_key_and_old_shares_stop_opening() {
    let f = fixture();
    let target = KeyTarget::Group(&f.group);
    let old = f.dir.generate(target, false).unwrap().keys[0].clone();
    let old_share = seal(&ollama(), &old, "mt", &f.group, JOB).unwrap();
    f.dir.generate(target, true).unwrap();
    let rotated = f.dir.generate(target, true).unwrap();
    assert_eq!(rotated.keys.len(), 3);
    let newest = rotated.keys[0].clone();
    let new_share = seal(&ollama(), &newest, "mt", &f.group, JOB).unwrap();
    open(&old_share, JOB, &f.dir.opening_keys(&f.group).unwrap()).unwrap();

    let (kept, dropped) = f.dir.drop_old(target).unwrap();
    assert_eq!(dropped, 2);
    assert_eq!(kept.path, rotated.path);
    assert_eq!(kept.keys, vec![newest.clone()]);
    assert_eq!(f.dir.load_group(&f.group).unwrap().keys, kept.keys);
    assert_eq!(f.dir.sealing_key(&f.group, false).unwrap().0, newest);
    let meta = fs::metadata(&kept.path).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o440);
    assert_eq!((meta.uid(), meta.gid()), (Uid::effective().as_raw(), Gid::effective().as_raw()));
    let text = fs::read_to_string(&kept.path).unwrap();
    assert!(text.starts_with(&format!("# multitenant group key for {:?}\n# The first key seals", f.group)), "{text}");
    assert!(text.ends_with(&format!("\n{}\n", newest.to_line())), "{text}");
    let names: Vec<_> = fs::read_dir(f.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temp file is left behind: {names:?}");

    let keys = f.dir.opening_keys(&f.group).unwrap();
    assert_eq!(open(&old_share, JOB, &keys).unwrap_err().kind(), "unknown_key", "a share sealed with a dropped key");
    open(&new_share, JOB, &keys).unwrap();
    // Someone who kept a copy of the old key cannot open what the newest key seals.
    assert_eq!(open(&new_share, JOB, std::slice::from_ref(&old)).unwrap_err().kind(), "unknown_key");
}

#[test]
fn drop_old_refuses_a_missing_file_a_single_key_and_an_unsafe_file() {
    let f = fixture();
    let target = KeyTarget::Group(&f.group);
    fs::create_dir(f.dir.path()).unwrap();
    let e = f.dir.drop_old(target).unwrap_err();
    assert_eq!(e.kind(), "key_file");
    let path = f.dir.file_path(target).unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: does not exist, so there are no old keys to drop (create it with `mtshare keygen --group {}`)",
            path.display(),
            f.group
        )
    );
    assert!(!path.exists());

    f.dir.generate(target, false).unwrap();
    let before = fs::read(&path).unwrap();
    let e = f.dir.drop_old(target).unwrap_err();
    assert_eq!((e.kind(), e.to_string()), ("invalid", format!("nothing to drop: {} holds one key", path.display())));
    assert_eq!(fs::read(&path).unwrap(), before);

    f.dir.generate(target, true).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    let before = fs::read(&path).unwrap();
    let e = f.dir.drop_old(target).unwrap_err().to_string();
    assert!(e.ends_with(&format!("is world-readable: chmod 0440 {}", path.display())), "{e}");
    assert_eq!(fs::read(&path).unwrap(), before, "an unsafe file is left for the admin to fix");
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o444);

    assert_eq!(f.dir.drop_old(KeyTarget::Group("../etc")).unwrap_err().kind(), "invalid");
    let e = f.dir.drop_old(KeyTarget::Group("no-such-group-xyz")).unwrap_err();
    assert_eq!(e.to_string(), "no such group \"no-such-group-xyz\" on this host");
}

#[test]
fn drop_old_keeps_the_admins_header_comments_and_works_on_the_site_key() {
    let f = fixture();
    let target = KeyTarget::Group(&f.group);
    let path = f.dir.generate(target, false).unwrap().path;
    let (new, old) = (Key::generate().unwrap(), Key::generate().unwrap());
    let text = format!(
        "# multitenant group key for class101\n# rotated 2025-01-10: bob left\n\n{}\n# the key before\n{}\n",
        new.to_line(),
        old.to_line()
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o440)).unwrap();
    let (kept, dropped) = f.dir.drop_old(target).unwrap();
    assert_eq!((kept.keys, dropped), (vec![new.clone()], 1));
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!("# multitenant group key for class101\n# rotated 2025-01-10: bob left\n{}\n", new.to_line())
    );

    let site = f.dir.generate(KeyTarget::Site, false).unwrap();
    let rotated = f.dir.generate(KeyTarget::Site, true).unwrap();
    let (kept, dropped) = f.dir.drop_old(KeyTarget::Site).unwrap();
    assert_eq!((kept.keys, dropped), (vec![rotated.keys[0].clone()], 1));
    assert_ne!(rotated.keys[0], site.keys[0]);
    assert_eq!(fs::metadata(&site.path).unwrap().mode() & 0o7777, 0o444);
    assert_eq!(f.dir.load_site().unwrap().unwrap().keys, vec![rotated.keys[0].clone()]);
}

#[test]
fn drop_old_waits_for_the_key_directory_lock_that_generate_takes() {
    use nix::fcntl::{Flock, FlockArg};
    use std::sync::mpsc;
    use std::time::Duration;

    let f = fixture();
    let target = KeyTarget::Group(&f.group);
    f.dir.generate(target, false).unwrap();
    f.dir.generate(target, true).unwrap();
    let held = Flock::lock(fs::File::open(f.dir.path()).unwrap(), FlockArg::LockExclusive).unwrap();
    let (tx, rx) = mpsc::channel();
    let (dir, group) = (f.dir.clone(), f.group.clone());
    let worker = std::thread::spawn(move || {
        tx.send(dir.drop_old(KeyTarget::Group(&group)).map(|(_, n)| n)).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "drop_old must wait while another writer holds the lock"
    );
    assert_eq!(f.dir.load_group(&f.group).unwrap().keys.len(), 2);
    drop(held);
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap(), 1);
    worker.join().unwrap();
    assert_eq!(f.dir.load_group(&f.group).unwrap().keys.len(), 1);
}
