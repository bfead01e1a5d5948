//! What runs before every dashboard request: settling the cards OOD marked completed
//! (`multitenant_core::cards::settle_completed`). Usually nothing is marked, so this is the cost of
//! reading the manifest and each card's session file. Also the steady-state reconcile that follows a
//! discovery which changed nothing (each card's files checked, nothing written).
//! `cargo run --release -p multitenant-core --example settle`
//! Results, with the machine and date, go in docs/benchmarks.md.

#[path = "common/mod.rs"]
mod common;
use common::message;
use std::collections::BTreeMap;
use std::time::Instant;

use multitenant_core::cards::{reconcile, settle_completed, CardOptions};
use multitenant_core::discover::{Found, Job, Unknown};
use multitenant_core::Share;

fn found(i: usize) -> Found {
    let job = Job {
        id: (100_000 + i).to_string(),
        owner: "alice".into(),
        cluster: "mtcluster".into(),
        name: String::new(),
        restarts: 0,
        nodes: "node017".into(),
    };
    let msg = message("Ollama_API", &[("host", "node017"), ("port", "41234"), ("ollama_url", "http://node017:41234")]);
    Found {
        job,
        share: Share {
            prefix: "mt".into(),
            group: "class101".into(),
            version: "1".into(),
            key_id: None,
            message: msg,
            size: 300,
        },
    }
}

fn main() {
    let uid = nix::unistd::Uid::effective().as_raw();
    println!(
        "| cards | settle, nothing marked (median of 201) | p90 | reconcile, nothing changed (median of 201) | p90 |"
    );
    println!("|---|---|---|---|---|");
    for n in [0usize, 1, 10, 100, 1000] {
        let tmp = tempfile::tempdir().unwrap();
        let dataroot = tmp.path().join("ondemand/data/sys/dashboard");
        std::fs::create_dir_all(&dataroot).unwrap();
        // No caps or budget here: this measures settling n delivered cards.
        let opts = CardOptions {
            cluster_map: BTreeMap::from([("mtcluster".to_string(), "hpc-multitenant".to_string())]),
            now: 1_700_000_000,
            max_cards_per_owner: usize::MAX,
            max_cards: usize::MAX,
            write_budget: std::time::Duration::MAX,
            ..CardOptions::new(&dataroot)
        };
        let shares: Vec<Found> = (0..n).map(found).collect();
        let r = reconcile(&opts, uid, "bob", &shares, &Unknown::default());
        assert!(r.errors.is_empty() && r.created.len() == n, "{:?}", r.errors);
        let mut times: Vec<f64> = (0..201)
            .map(|_| {
                let t = Instant::now();
                let r = settle_completed(&dataroot, uid);
                assert!(r.dismissed.is_empty());
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let mut steady: Vec<f64> = (0..201)
            .map(|_| {
                let t = Instant::now();
                let r = reconcile(&opts, uid, "bob", &shares, &Unknown::default());
                assert!(r.created.is_empty() && r.updated.is_empty() && r.errors.is_empty(), "{r:?}");
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        steady.sort_by(f64::total_cmp);
        println!(
            "| {n} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs |",
            times[100], times[180], steady[100], steady[180]
        );
    }
}
