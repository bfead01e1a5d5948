//! Discovery's own work at scale, on recorded scheduler output (no scheduler is run): squeue's answer
//! for N shares of one group, N jobs of another WCKey and M ordinary jobs is parsed, each share opened
//! and decided, the specs built, and the viewer's cards reconciled into an empty data root (first
//! start) and then again with every card present (later start). Caps are lifted: every share gets a
//! card. Run as any user (the owner of the jobs is the current user, the viewer another name).
//! `cargo run --release -p multitenant-core --example scale [N:M ...]` (default 2000:2000 10000:0 50000:0);
//! `LATER=n` times n later starts (default 5), for a profiler.
//! Results, with the machine and date, go in docs/benchmarks.md.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use multitenant_core::cards::{reconcile, CardOptions};
use multitenant_core::discover::{examine, parse_squeue, Discovery, Options, Strategy, Viewer};
use multitenant_core::hostlist::Domains;
use multitenant_core::{seal, Binding, KeyDir, KeyTarget};

const SEP: &str = "@fAbCdEfGhIjKlMnOp@";
const TERM: &str = "@mtAbCdEfGhIjKlMnOp@";

fn main() {
    let sizes: Vec<(usize, usize)> = match std::env::args().skip(1).collect::<Vec<_>>() {
        a if a.is_empty() => vec![(2000, 2000), (10_000, 0), (50_000, 0)],
        a => a
            .iter()
            .map(|s| {
                let (n, m) = s.split_once(':').expect("N:M");
                (n.parse().expect("N"), m.parse().expect("M"))
            })
            .collect(),
    };
    let me = nix::unistd::User::from_uid(nix::unistd::Uid::effective()).unwrap().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let keys = KeyDir::new(tmp.path().join("keys")).with_owner(me.uid.as_raw());
    keys.generate(KeyTarget::Group("mtclass"), false).unwrap();
    let (key, _) = keys.sealing_key("mtclass", false).unwrap();
    let gid = me.gid.as_raw();
    let viewer = Viewer {
        name: "viewer".into(),
        uid: me.uid.as_raw(),
        gids: vec![gid],
        groups: BTreeMap::from([("mtclass".to_string(), gid)]),
        unresolved: false,
    };
    let opts = Options {
        strategy: Strategy::Squeue,
        wckey: "multitenant".into(),
        key_dir: keys.clone(),
        legacy: false,
        now: Some(1_800_000_000),
        budget: Duration::from_secs(3600),
        host_domains: Domains::from_setting(&["cluster.example.edu"]).unwrap(),
    };
    println!("| shares N : other M (+ M plain jobs) | squeue answer | parse | open + decide | specs | cards, first start | cards, later start | per share, later start |");
    println!("|---|---|---|---|---|---|---|---|");
    for (n, m) in sizes {
        let out = answer(&me.name, &key, n, m);
        let t = Instant::now();
        let jobs = parse_squeue(&out, SEP, TERM, "multitenant", None);
        let parse = t.elapsed();
        assert_eq!(jobs.len(), n);
        let t = Instant::now();
        let mut d = Discovery::default();
        examine(&mut d, jobs, &viewer, &opts);
        let decide = t.elapsed();
        assert!(d.errors.is_empty() && d.found.len() == n, "{:?}", &d.errors[..d.errors.len().min(3)]);
        let root = tmp.path().join(format!("root{n}"));
        std::fs::create_dir_all(&root).unwrap();
        let cards = CardOptions {
            cluster_map: BTreeMap::from([("mtcluster".to_string(), "mtcluster-multitenant".to_string())]),
            now: 1_800_000_000,
            max_cards_per_owner: usize::MAX,
            max_cards: usize::MAX,
            write_budget: Duration::MAX,
            ..CardOptions::new(&root)
        };
        let t = Instant::now();
        let specs = multitenant_core::specs::specs(&d.found, Some(&cards), &viewer.name, false);
        let specs_t = t.elapsed();
        assert_eq!(specs.len(), n);
        let t = Instant::now();
        let r = reconcile(&cards, viewer.uid, &viewer.name, &d.found, &d.unknown);
        let first = t.elapsed();
        assert!(r.errors.is_empty() && r.created.len() == n, "{:?}", r.errors);
        let mut later: Vec<Duration> = (0..std::env::var("LATER").map_or(5, |v| v.parse().unwrap()))
            .map(|_| {
                let t = Instant::now();
                let r = reconcile(&cards, viewer.uid, &viewer.name, &d.found, &d.unknown);
                assert!(r.errors.is_empty() && r.unchanged.len() == n);
                t.elapsed()
            })
            .collect();
        later.sort();
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        let own = parse + decide + specs_t + later[2];
        println!(
            "| {n} : {m} | {:.1} MB | {} | {} | {} | {} ({:.2} ms/card) | {} | {:.1} µs |",
            out.len() as f64 / 1e6,
            ms(parse),
            ms(decide),
            ms(specs_t),
            ms(first),
            first.as_secs_f64() * 1e3 / n.max(1) as f64,
            ms(later[2]),
            own.as_secs_f64() * 1e6 / n.max(1) as f64,
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}

/// squeue's answer in the columns of `discover::squeue_format`, as the `Squeue` strategy asks for it: n shares, m jobs with another WCKey and m
/// plain jobs, interleaved.
fn answer(owner: &str, key: &multitenant_core::Key, n: usize, m: usize) -> String {
    let mut out = String::new();
    let mut id = 1_000_000u64;
    let row = |out: &mut String, id: u64, wckey: &str, node: &str, name: &str| {
        writeln!(out, "{id}{SEP}{owner}{SEP}{wckey}{SEP}mtcluster{SEP}0{SEP}{node}{SEP}{name}{TERM}").unwrap();
    };
    for i in 0..n.max(m) {
        if i < n {
            id += 1;
            let node = format!("node{:04}", i % 1000);
            let msg = common::message(
                &format!("Ollama_{i}"),
                &[("host", &node), ("port", "41234"), ("ollama_url", &format!("http://{node}:41234"))],
            );
            let binding = Binding { job_id: &id.to_string(), owner, cluster: "mtcluster", restarts: 0 };
            let name = seal(&msg, key, "mt", "mtclass", binding).unwrap();
            row(&mut out, id, "multitenant", &node, &name);
        }
        if i < m {
            id += 1;
            row(&mut out, id, "other", "node0001", "sys/dashboard/sys/bc_desktop");
            id += 1;
            row(&mut out, id, "*", "node[0002-0004]", "sleep");
        }
    }
    out
}
