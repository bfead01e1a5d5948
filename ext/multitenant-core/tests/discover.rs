//! Discovery end to end against a fake `squeue`: flooding, owners that cannot be looked up, runs and
//! clusters bound by the seal. Runs as whoever runs the tests, sharing with their primary group.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::ollama;
use multitenant_core::discover::{discover, Options, Strategy, Target, Viewer};
use multitenant_core::envelope::seal_bytes;
use multitenant_core::hostlist::Domains;
use multitenant_core::{seal, Binding, KeyDir, KeyTarget, Message, Scheduler};
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
        self.name_of(&ollama(), group, job_id, owner, cluster, restarts)
    }

    fn name_of(&self, m: &Message, group: &str, job_id: &str, owner: &str, cluster: &str, restarts: u32) -> String {
        let (key, _) = self.keys.sealing_key(&self.group, false).unwrap();
        seal(m, &key, "mt", group, Binding { job_id, owner, cluster, restarts }).unwrap()
    }

    /// A name sealing `json` as it is (stored, flag 0), past the sealer's checks: what a hostile
    /// publisher with the key could make.
    fn hand_made(&self, json: &str, job_id: &str) -> String {
        let (key, _) = self.keys.sealing_key(&self.group, false).unwrap();
        let b = Binding { job_id, owner: &self.me, cluster: "mtcluster", restarts: 0 };
        seal_bytes(&[&[0u8][..], json.as_bytes()].concat(), &key, "mt", &self.group, b).unwrap()
    }

    /// A fake squeue printing these (id, owner, cluster, restarts, name) records as squeue would, each
    /// job running on `node[010-020]` (the test message's host is node017).
    fn squeue(&self, jobs: &[(String, String, &str, u32, String)]) -> Scheduler {
        self.squeue_on(jobs, "node[010-020]")
    }

    /// The same, each job running on `nodes`.
    fn squeue_on(&self, jobs: &[(String, String, &str, u32, String)], nodes: &str) -> Scheduler {
        let body: String = jobs
            .iter()
            .map(|(id, owner, cluster, r, name)| {
                format!("{id}<S>{owner}<S>multitenant<S>{cluster}<S>{r}<S>{nodes}<S>{name}<T>\n")
            })
            .collect();
        fs::write(self.dir.path().join("body"), body).unwrap();
        let script = format!(
            "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in *Name:*) term=\"${{a##*Name:}}\"; sep=\"${{a#JobID:}}\"; sep=\"${{sep%%,*}}\";; esac; done\nsed \"s/<T>/$term/g; s/<S>/$sep/g\" {}\n",
            self.dir.path().join("body").display()
        );
        let bin = self.dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        common::executable(&bin.join("squeue"), &script);
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
            host_domains: Domains::from_setting(&["cluster.example.edu", "ib.example.edu"]).unwrap(),
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

/// One share of `m` by job 6000 of the viewer, on a fake squeue whose job runs on `nodes`.
fn discover_one(f: &Fixture, m: &Message, nodes: &str) -> multitenant_core::discover::Discovery {
    discover_with(f, m, nodes, f.options())
}

/// The same, with these options.
fn discover_with(f: &Fixture, m: &Message, nodes: &str, opts: Options) -> multitenant_core::discover::Discovery {
    let name = f.name_of(m, &f.group, "6000", &f.me, "mtcluster", 0);
    let sched = f.squeue_on(&[("6000".into(), f.me.clone(), "mtcluster", 0, name)], nodes);
    discover(&target(sched), &Viewer::current().unwrap(), &opts)
}

fn with_host(host: &str) -> Message {
    let mut m = ollama();
    m.connection.insert("host".into(), host.into());
    m
}

#[test]
fn a_share_whose_host_is_not_one_of_its_jobs_nodes_is_refused() {
    let f = fixture();
    let d = discover_one(&f, &with_host("evil.example.com"), "node[01-02]");
    assert!(d.found.is_empty());
    assert_eq!(
        d.errors,
        [format!(
            "job 6000 ({}): host \"evil.example.com\" is not a node of job 6000 (Slurm: node[01-02]; domains: cluster.example.edu, ib.example.edu, from MULTITENANT_HOST_DOMAINS)",
            f.me
        )]
    );
    // Decided, not unknown: a card it had goes.
    assert_eq!(d.unknown, Default::default());
    // Another node of the cluster is another machine too.
    let d = discover_one(&f, &with_host("node03"), "node[01-02]");
    assert_eq!(
        d.errors,
        [format!("job 6000 ({}): host \"node03\" is not a node of job 6000 (Slurm: node[01-02])", f.me)]
    );
    // A hostile value is shown escaped and cut short in the one line.
    let d = discover_one(&f, &with_host(&format!("x\u{202E}\n{}", "y".repeat(900))), "node01");
    assert_eq!(d.errors.len(), 1);
    assert!(d.errors[0].contains("host \"x\\u{202e}\\n") && d.errors[0].len() < 200, "{:?}", d.errors);
}

#[test]
fn a_node_name_with_a_domain_not_the_sites_is_refused() {
    let f = fixture();
    // The node's name, then a domain the publisher controls: OOD's shell button would go there.
    let d = discover_one(&f, &with_host("node01.evil.example.com"), "node[01-02]");
    assert!(d.found.is_empty());
    assert_eq!(
        d.errors,
        [format!(
            "job 6000 ({}): host \"node01.evil.example.com\" is not a node of job 6000 (Slurm: node[01-02]; domains: cluster.example.edu, ib.example.edu, from MULTITENANT_HOST_DOMAINS)",
            f.me
        )]
    );
    assert_eq!(d.unknown, Default::default());
    for host in [
        "node01.xcluster.example.edu",
        "node01.cluster.example.edu.evil.example.com",
        "node01.example.edu",
        "node01.cluster.example.edu.",
        "NODE01.EVIL.example.com",
    ] {
        let d = discover_one(&f, &with_host(host), "node[01-02]");
        assert!(d.found.is_empty() && d.errors[0].contains("is not a node of job 6000"), "{host}: {:?}", d.errors);
    }
    // Without the setting the domains are the resolver's, and the line says so and names the setting.
    let resolver = Domains::from_resolv_conf_text("nameserver 10.0.0.1\nsearch cluster.example.edu\n");
    let d = discover_with(
        &f,
        &with_host("node01.evil.example.com"),
        "node[01-02]",
        Options { host_domains: resolver.clone(), ..f.options() },
    );
    assert_eq!(
        d.errors,
        [format!(
            "job 6000 ({}): host \"node01.evil.example.com\" is not a node of job 6000 (Slurm: node[01-02]; domains: cluster.example.edu, from /etc/resolv.conf; set MULTITENANT_HOST_DOMAINS)",
            f.me
        )]
    );
    let d = discover_with(
        &f,
        &with_host("node01.cluster.example.edu"),
        "node[01-02]",
        Options { host_domains: resolver, ..f.options() },
    );
    assert_eq!((d.found.len(), &d.errors), (1, &Vec::<String>::new()));
    let none = Domains::from_resolv_conf_text("nameserver 10.0.0.1\n");
    let d = discover_with(
        &f,
        &with_host("node01.cluster.example.edu"),
        "node[01-02]",
        Options { host_domains: none, ..f.options() },
    );
    assert_eq!(
        d.errors,
        [format!(
            "job 6000 ({}): host \"node01.cluster.example.edu\" is not a node of job 6000 (Slurm: node[01-02]; no domains in /etc/resolv.conf; set MULTITENANT_HOST_DOMAINS)",
            f.me
        )]
    );
}

#[test]
fn a_host_may_be_the_node_name_with_a_domain_in_any_case() {
    let f = fixture();
    for (host, nodes) in [
        ("node017", "node[010-020]"),
        ("node02", "node[01-03,07],gpu[1-2],login1"),
        ("NODE07.cluster.example.edu", "node[01-03,07],gpu[1-2]"),
        ("gpu2.IB.Example.EDU", "node[01-03,07],gpu[1-2]"),
        ("rack2-n01", "rack[1-2]-n[01-02]"),
        ("rack2-n01.cluster.example.edu", "rack[1-2]-n[01-02]"),
    ] {
        let d = discover_one(&f, &with_host(host), nodes);
        assert_eq!((d.found.len(), &d.errors), (1, &Vec::<String>::new()), "{host} on {nodes}");
    }
}

#[test]
fn a_node_list_that_cannot_be_read_refuses_a_share_with_a_host_and_no_other() {
    let f = fixture();
    let d = discover_one(&f, &ollama(), "node[01-");
    assert!(d.found.is_empty());
    assert_eq!(
        d.errors,
        [format!(
            "job 6000 ({}): host \"node017\" cannot be checked: Slurm's node list \"node[01-\" is not a host list (a \"[\" is not closed)",
            f.me
        )]
    );
    let mut no_host = ollama();
    no_host.connection.remove("host");
    let d = discover_one(&f, &no_host, "node[01-");
    assert_eq!((d.found.len(), &d.errors), (1, &Vec::<String>::new()));
}

#[test]
fn a_direction_override_in_the_app_name_is_refused_at_discovery() {
    let f = fixture();
    let name =
        f.hand_made(r#"{"i":"s","a":"Ab \u202eecilA","m":"card","d":"sys/multitenant-delivery_default"}"#, "6001");
    let sched = f.squeue(&[("6001".into(), f.me.clone(), "mtcluster", 0, name)]);
    let d = discover(&target(sched), &Viewer::current().unwrap(), &f.options());
    assert!(d.found.is_empty());
    assert_eq!(
        d.errors,
        [format!(
            "job 6001 ({}): malformed share: sealed content: app name must not contain invisible or direction-changing characters (U+202E at character 4)",
            f.me
        )]
    );
}

#[test]
fn many_shares_are_opened_on_several_threads_and_decided_in_the_schedulers_order() {
    // 600 jobs (past the serial limit): good shares, forged ones and expired ones interleaved. The
    // result is the one a single thread gives: same shares, same order, one line per bad job in order.
    let f = fixture();
    let mut expired = ollama();
    expired.expires_at = Some(1);
    let jobs: Vec<_> = (0..600)
        .map(|i| {
            let id = (10_000 + i).to_string();
            let name = match i % 3 {
                0 => f.name(&f.group, &id, &f.me, "mtcluster", 0),
                1 => f.name(&f.group, "999", &f.me, "mtcluster", 0),
                _ => f.name_of(&expired, &f.group, &id, &f.me, "mtcluster", 0),
            };
            (id, f.me.clone(), "mtcluster", 0, name)
        })
        .collect();
    let viewer = Viewer::current().unwrap();
    let d = discover(&target(f.squeue(&jobs)), &viewer, &f.options());
    let want: Vec<String> = (0..600).filter(|i| i % 3 == 0).map(|i| (10_000 + i).to_string()).collect();
    assert_eq!(d.found.iter().map(|x| x.job.id.clone()).collect::<Vec<_>>(), want);
    // At most MAX_ERRORS lines, the first ones in the scheduler's order.
    assert_eq!(d.errors.len(), multitenant_core::discover::MAX_ERRORS + 1);
    assert!(d.errors[0].starts_with("job 10001 ("), "{}", d.errors[0]);
    assert!(d.errors[1].starts_with("job 10004 ("), "{}", d.errors[1]);
}

#[test]
fn a_legacy_name_while_legacy_is_off_is_one_note_not_a_problem() {
    let f = fixture();
    let legacy = format!("sys/dashboard|{}|QUJDREVGR0g=", f.group);
    let jobs = vec![
        ("7001".to_string(), f.me.clone(), "mtcluster", 0, legacy.clone()),
        ("7002".to_string(), f.me.clone(), "mtcluster", 0, legacy),
        ("7003".to_string(), f.me.clone(), "mtcluster", 0, f.name(&f.group, "7003", &f.me, "mtcluster", 0)),
    ];
    let viewer = Viewer::current().unwrap();
    let d = discover(&target(f.squeue(&jobs)), &viewer, &f.options());
    assert_eq!(d.errors, Vec::<String>::new());
    assert_eq!(d.found.len(), 1);
    assert_eq!(
        d.notes,
        [format!(
            "2 running job(s) publish in the first implementation's format, which is not read here ({}: 2); MULTITENANT_LEGACY=true reads it while a site migrates",
            f.me
        )]
    );
}

#[test]
fn an_allow_list_without_the_owner_still_shows_the_owner_their_own_share() {
    let f = fixture();
    let mut m = ollama();
    m.allow = Some(vec!["someone-else".into()]);
    let own = discover_one(&f, &m, "node[010-020]");
    assert_eq!(own.found.len(), 1, "{:?}", own.errors);
    // Other members off the list still are not shown it: spec/integration/discovery_spec.rb
    // "honours the allow-list and expiry".
}
