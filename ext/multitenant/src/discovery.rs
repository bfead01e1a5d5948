//! `MultiTenant::Discovery`: runs the core's discovery (and card reconciliation) for the current
//! user with the GVL released, so other Ruby threads run while the scheduler answers.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::path::PathBuf;
use std::time::Duration;

use magnus::{function, prelude::*, Error, RModule, Ruby, Value};
use multitenant_core::cards::{reconcile, CardOptions, CardReport};
use multitenant_core::discover::{discover, Discovery, Options, Strategy, Viewer};
use multitenant_core::{KeyDir, Scheduler};
use serde::Deserialize;
use serde_json::json;

use crate::error::IntoRuby;

#[derive(Deserialize)]
struct Config {
    key_dir: String,
    key_owner_uid: u32,
    wckey: String,
    strategy: String,
    legacy: bool,
    timeout: f64,
    bin_dir: Option<String>,
    dataroot: Option<String>,
    per_cluster: bool,
    cluster_map: BTreeMap<String, String>,
    now: Option<u64>,
}

struct Work {
    sched: Scheduler,
    opts: Options,
    cards: Option<CardOptions>,
    result: Option<multitenant_core::Result<(Viewer, Discovery, Option<CardReport>)>>,
}

fn run(work: &mut Work) {
    let result = Viewer::current().map(|viewer| {
        let d = discover(&work.sched, &viewer, &work.opts);
        let report = work.cards.as_ref().map(|c| reconcile(c, viewer.uid, &viewer.name, &d.found));
        (viewer, d, report)
    });
    work.result = Some(result);
}

unsafe extern "C" fn trampoline(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `&mut Work` passed below, alive for the whole call; no Ruby API is used.
    let work = unsafe { &mut *(data as *mut Work) };
    // A panic must not unwind into Ruby's C frames.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(work)));
    std::ptr::null_mut()
}

fn run_discovery(ruby: &Ruby, config: Value) -> Result<Value, Error> {
    let c: Config = serde_magnus::deserialize(ruby, config)
        .map_err(|e| crate::error::to_ruby(multitenant_core::Error::Invalid(format!("discovery settings: {e}"))))?;
    let strategy: Strategy = c.strategy.parse().rb()?;
    let mut sched = Scheduler::default().with_timeout(Duration::from_secs_f64(c.timeout.clamp(0.1, 300.0)));
    if let Some(dir) = &c.bin_dir {
        sched = sched.with_bin_dir(dir);
    }
    let now = c.now.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    });
    let cards = c.dataroot.as_ref().map(|d| CardOptions {
        dataroot: PathBuf::from(d),
        per_cluster: c.per_cluster,
        cluster_map: c.cluster_map.clone(),
        now,
    });
    let opts = Options {
        strategy,
        wckey: c.wckey,
        key_dir: KeyDir::new(c.key_dir).with_owner(c.key_owner_uid),
        legacy: c.legacy,
        now: Some(now),
    };
    let mut work = Work { sched, opts, cards, result: None };
    // SAFETY: the trampoline only touches `work`, which outlives the call.
    unsafe {
        rb_sys::rb_thread_call_without_gvl(
            Some(trampoline),
            &mut work as *mut Work as *mut c_void,
            None,
            std::ptr::null_mut(),
        );
    }
    let result = work.result.unwrap_or_else(|| Err(multitenant_core::Error::Io("discovery panicked".into())));
    let (viewer, d, report) = result.rb()?;
    let specs = multitenant_core::specs::specs(&d.found, work.cards.as_ref(), &viewer.name);
    let cards = report.map(|r| {
        json!({"created": r.created, "updated": r.updated, "removed": r.removed, "dismissed": r.dismissed,
               "unchanged": r.unchanged, "errors": r.errors})
    });
    let out = json!({"viewer": viewer.name, "specs": specs, "errors": d.errors, "cards": cards});
    serde_magnus::serialize(ruby, &out)
}

pub fn init(_ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let discovery = module.define_module("Discovery")?;
    discovery.define_singleton_method("_run", function!(run_discovery, 1))?;
    Ok(())
}
