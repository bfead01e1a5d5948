//! Discovery end to end against a fake `squeue`: flooding, owners that cannot be looked up, runs and
//! clusters bound by the seal. Runs as whoever runs the tests, sharing with their primary group.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::ollama;
use multitenant_core::discover::{discover, Options, Strategy, Target, Viewer};
use multitenant_core::{seal, Binding, KeyDir, KeyTarget, Scheduler};
use nix::unistd::{Gid, Group, Uid, User};

struct Fixture {
    dir: tempfile::TempDir,
    keys: KeyDir,
    group: String,
    me: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let keys = KeyDir::new(dir.path().join("keys")).with_owner(Uid::effective().as_raw());
    let group = Group::from_gid(Gid::effective()).unwrap().unwrap().name;
    keys.generate(KeyTarget::Group(&group), false).unwrap();
    let me = User::from_uid(Uid::effective()).unwrap().unwrap().name;
    Fixture { dir, keys, group, me }
}

impl Fixture {
    fn name(&self, group: &str, job_id: &str, owner: &str, cluster: &str, restarts: u32) -> String {
        let (key, _) = self.keys.sealing_key(&self.group, false).unwrap();
        seal(&ollama(), &key, "mt", group, Binding { job_id, owner, cluster, restarts }).unwrap()
    }

    /// A fake squeue printing these (id, owner, cluster, restarts, name) records as squeue would.
    fn squeue(&self, jobs: &[(String, String, &str, u32, String)]) -> Scheduler {
        let body: String = jobs
            .iter()
            .map(|(id, owner, cluster, r, name)| {
                format!("{id}<S>{owner}<S>multitenant<S>{cluster}<S>{r}<S>{name}<T>\n")
            })
            .collect();
        fs::write(self.dir.path().join("body"), body).unwrap();
        let script = format!(
            "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in *Name:*) term=\"${{a##*Name:}}\"; sep=\"${{a#JobID:}}\"; sep=\"${{sep%%,*}}\";; esac; done\nsed \"s/<T>/$term/g; s/<S>/$sep/g\" {}\n",
            self.dir.path().join("body").display()
        );
        let bin = self.dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join("squeue"), script).unwrap();
        fs::set_permissions(bin.join("squeue"), fs::Permissions::from_mode(0o755)).unwrap();
        Scheduler::default().with_bin_dir(Path::new(&bin))
    }

    fn options(&self) -> Options {
        Options {
            strategy: Strategy::Squeue,
            wckey: "multitenant".into(),
            key_dir: self.keys.clone(),
            legacy: false,
            now: None,
            budget: Duration::from_secs(10),
        }
    }
}

fn target(sched: Scheduler) -> Vec<Target> {
    vec![Target { name: Some("mtcluster".into()), sched, problem: None }]
}

#[test]
fn names_of_groups_nobody_here_is_in_cannot_hide_a_share() {
    let f = fixture();
    let mut jobs: Vec<_> = (0..200)
        .map(|i| {
            let id = (1000 + i).to_string();
            let name = f.name(&format!("bogus{i}"), &id, &f.me, "mtcluster", 0);
            (id, f.me.clone(), "mtcluster", 0, name)
        })
        .collect();
    let real = f.name(&f.group, "5000", &f.me, "mtcluster", 0);
    jobs.push(("5000".into(), f.me.clone(), "mtcluster", 0, real));
    let viewer = Viewer::current().unwrap();
    let d = discover(&target(f.squeue(&jobs)), &viewer, &f.options());
    assert_eq!(d.found.iter().map(|x| x.job.id.as_str()).collect::<Vec<_>>(), ["5000"], "{:?}", d.errors);
    assert_eq!(d.errors, Vec::<String>::new());
    assert_eq!(d.unknown, Default::default());
}

#[test]
fn an_owner_that_cannot_be_looked_up_is_unknown_not_ended() {
    let f = fixture();
    let ghost = "mt-no-such-user-here";
    let name = f.name(&f.group, "77", ghost, "mtcluster", 0);
    let viewer = Viewer::current().unwrap();
    let d = discover(&target(f.squeue(&[("77".into(), ghost.into(), "mtcluster", 0, name)])), &viewer, &f.options());
    assert!(d.found.is_empty());
    assert_eq!(d.unknown.jobs, vec![("mtcluster".to_string(), "77".to_string())]);
    assert_eq!(
        d.errors,
        vec![format!("job 77 ({ghost}): owner {ghost} has no passwd entry here; its share stays as it was")]
    );
}

#[test]
fn a_share_does_not_outlive_its_run_or_move_to_another_cluster() {
    let f = fixture();
    let sealed = f.name(&f.group, "88", &f.me, "mtcluster", 0);
    let viewer = Viewer::current().unwrap();
    // The job was requeued: restart count 1, the name still the first run's. Not shared (yet), and
    // not a problem either: the new run publishes again once its service answers.
    let requeued = f.squeue(&[("88".into(), f.me.clone(), "mtcluster", 1, sealed.clone())]);
    let d = discover(&target(requeued), &viewer, &f.options());
    assert!(d.found.is_empty());
    assert_eq!(d.errors, Vec::<String>::new());
    // The same job id on another cluster: another job, whose name this is not.
    let beta = vec![Target {
        name: Some("mtbeta".into()),
        sched: f.squeue(&[("88".into(), f.me.clone(), "mtbeta", 0, sealed)]),
        problem: None,
    }];
    let d = discover(&beta, &viewer, &f.options());
    assert!(d.found.is_empty());
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    assert!(d.errors[0].contains("seal does not verify"), "{:?}", d.errors);
}

#[test]
fn a_cluster_that_cannot_be_asked_is_unknown_and_the_others_still_count() {
    let f = fixture();
    let name = f.name(&f.group, "5", &f.me, "mtcluster", 0);
    let mut targets = target(f.squeue(&[("5".into(), f.me.clone(), "mtcluster", 0, name)]));
    targets.push(Target {
        name: Some("down".into()),
        sched: Scheduler::default().with_bin_dir("/nonexistent"),
        problem: None,
    });
    targets.push(Target { name: Some("unmapped".into()), sched: Scheduler::default(), problem: Some("fix it".into()) });
    let d = discover(&targets, &Viewer::current().unwrap(), &f.options());
    assert_eq!(d.found.len(), 1);
    assert_eq!(d.unknown.clusters, ["unmapped", "down"]);
    assert!(!d.unknown.all);
    assert_eq!(d.errors[0], "fix it");
    assert!(d.errors[1].starts_with("cluster down: squeue: cannot run /nonexistent/squeue"), "{:?}", d.errors);
}
