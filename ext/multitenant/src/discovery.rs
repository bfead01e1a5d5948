//! `MultiTenant::Discovery`: runs the core's discovery (and card reconciliation) for the current
//! user with the GVL released, so other Ruby threads run while the scheduler answers.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::path::PathBuf;
use std::time::Duration;

use magnus::{function, prelude::*, Error, RModule, Ruby, Value};
use multitenant_core::cards::{reconcile, CardOptions, CardReport};
use multitenant_core::discover::{discover, Discovery, Options, Strategy, Target, Viewer};
use multitenant_core::hostlist::Domains;
use multitenant_core::{KeyDir, Scheduler};
use serde::Deserialize;
use serde_json::json;

use crate::error::IntoRuby;

/// One Slurm cluster to search, as `MultiTenant::Clusters` read it from OOD's clusters.d.
#[derive(Deserialize)]
struct TargetConfig {
    name: Option<String>,
    bin: Option<String>,
    #[serde(default)]
    bin_overrides: BTreeMap<String, String>,
    conf: Option<String>,
    cluster: Option<String>,
    submit_host: Option<String>,
    #[serde(default = "yes")]
    strict_host_checking: bool,
    problem: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct Config {
    targets: Vec<TargetConfig>,
    ssh_port: String,
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
    deliveries: Vec<String>,
    now: Option<u64>,
    max_cards: usize,
    max_cards_per_owner: usize,
    /// `MULTITENANT_HOST_DOMAINS`, split; not given: /etc/resolv.conf's.
    #[serde(default)]
    host_domains: Option<Vec<String>>,
}

/// A timeout from Ruby: NaN and infinities would panic in `Duration`, so they become the default.
fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() { s.clamp(0.1, 300.0) } else { 5.0 })
}

struct Work {
    targets: Vec<Target>,
    opts: Options,
    cards: Option<CardOptions>,
    result: Option<multitenant_core::Result<(Viewer, Discovery, Option<CardReport>)>>,
}

fn run(work: &mut Work) {
    let result = Viewer::current().map(|viewer| {
        let d = discover(&work.targets, &viewer, &work.opts);
        // Without the scheduler's full answer nobody knows which shares ended: leave cards alone.
        let report = work
            .cards
            .as_ref()
            .filter(|_| !d.unknown.all)
            .map(|c| reconcile(c, viewer.uid, &viewer.name, &d.found, &d.unknown));
        (viewer, d, report)
    });
    work.result = Some(result);
}

/// Gives back to the system the heap a discovery freed (the scheduler's answer, the manifest): the
/// dashboard keeps running for hours with only the specs in use, and glibc would keep the rest.
fn give_back_freed_memory() {
    // SAFETY: malloc_trim only returns free heap pages; it takes glibc's own locks.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

unsafe extern "C" fn trampoline(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `&mut Work` passed below, alive for the whole call; no Ruby API is used.
    let work = unsafe { &mut *(data as *mut Work) };
    // A panic must not unwind into Ruby's C frames.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(work)));
    std::ptr::null_mut()
}

fn run_discovery(ruby: &Ruby, config: Value) -> Result<Value, Error> {
    let (out, shares) = discovery_outcome(ruby, config)?;
    // A few shares free little; trimming walks the whole heap of a big dashboard process.
    if shares >= TRIM_FROM {
        give_back_freed_memory();
    }
    Ok(out)
}

/// Discoveries that found at least this many shares give the memory they freed back.
const TRIM_FROM: usize = 200;

/// The Ruby result of one discovery, and how many shares it found.
fn discovery_outcome(ruby: &Ruby, config: Value) -> Result<(Value, usize), Error> {
    let c: Config = serde_magnus::deserialize(ruby, config)
        .map_err(|e| crate::error::to_ruby(multitenant_core::Error::Invalid(format!("discovery settings: {e}"))))?;
    let strategy: Strategy = c.strategy.parse().rb()?;
    let host_domains = match &c.host_domains {
        Some(list) => Domains::from_setting(list).rb()?,
        None => Domains::from_resolv_conf(),
    };
    let targets = c.targets.iter().map(|t| target(t, c.timeout, c.bin_dir.as_deref(), &c.ssh_port)).collect();
    let now = c.now.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    });
    let cards = c.dataroot.as_ref().map(|d| CardOptions {
        per_cluster: c.per_cluster,
        cluster_map: c.cluster_map.clone(),
        deliveries: c.deliveries.clone(),
        now,
        max_cards: c.max_cards,
        max_cards_per_owner: c.max_cards_per_owner,
        ..CardOptions::new(d)
    });
    let opts = Options {
        strategy,
        wckey: c.wckey,
        key_dir: KeyDir::new(c.key_dir).with_owner(c.key_owner_uid),
        legacy: c.legacy,
        now: Some(now),
        budget: seconds(c.timeout) * 2,
        host_domains,
    };
    let qualified = c.targets.len() > 1;
    let mut work = Work { targets, opts, cards, result: None };
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
    let specs = multitenant_core::specs::specs(&d.found, work.cards.as_ref(), &viewer.name, qualified);
    let u = &d.unknown;
    let unknown = json!({"all": u.all, "clusters": u.clusters, "groups": u.groups, "jobs": u.jobs});
    // What reconciliation did: the ids created, updated, removed, dismissed and held back, and how
    // many cards were already up to date.
    let cards = report.as_ref().map(|r| {
        json!({"created": r.created, "updated": r.updated, "removed": r.removed, "dismissed": r.dismissed,
               "unchanged": r.unchanged.len(), "held_back": r.held_back, "errors": r.errors})
    });
    // Straight into Ruby objects (string keys), the specs without an intermediate copy.
    let out = ruby.hash_new();
    out.aset("viewer", viewer.name.as_str())?;
    out.aset("specs", crate::convert::specs_to_ruby(ruby, &specs)?)?;
    out.aset("errors", serde_magnus::serialize::<_, Value>(ruby, &d.errors)?)?;
    out.aset("warnings", serde_magnus::serialize::<_, Value>(ruby, &d.warnings)?)?;
    out.aset("notes", serde_magnus::serialize::<_, Value>(ruby, &d.notes)?)?;
    out.aset("unknown", serde_magnus::serialize::<_, Value>(ruby, &unknown)?)?;
    out.aset("cards", serde_magnus::serialize::<_, Value>(ruby, &cards)?)?;
    Ok((out.as_value(), d.found.len()))
}

/// The scheduler for one target: its clusters.d entry's `job` settings; `MULTITENANT_SLURM_BIN` is
/// the `bin` of entries that name none.
fn target(t: &TargetConfig, timeout: f64, bin_dir: Option<&str>, ssh_port: &str) -> Target {
    let mut sched = Scheduler::default().with_timeout(seconds(timeout));
    if let Some(dir) = t.bin.as_deref().or(bin_dir) {
        sched = sched.with_bin_dir(dir);
    }
    sched = sched.with_bin_overrides(t.bin_overrides.iter().map(|(k, v)| (k.clone(), PathBuf::from(v))).collect());
    if let Some(conf) = &t.conf {
        sched = sched.with_conf(conf);
    }
    if let Some(cluster) = &t.cluster {
        sched = sched.with_cluster(cluster);
    }
    if let Some(host) = &t.submit_host {
        sched = sched.with_submit_host(host, t.strict_host_checking, ssh_port);
    }
    Target { name: t.name.clone(), sched, problem: t.problem.clone() }
}

/// Every running job with the WCKey on every target, as the schedulers report them (admin
/// `list`/`decode`): `{"jobs" => [...], "errors" => ["cluster beta: …", …]}`; a cluster that cannot be
/// asked is one error line and the others are still listed.
fn jobs(ruby: &Ruby, config: Value) -> Result<Value, Error> {
    let c: Config = serde_magnus::deserialize(ruby, config)
        .map_err(|e| crate::error::to_ruby(multitenant_core::Error::Invalid(format!("discovery settings: {e}"))))?;
    let strategy: Strategy = c.strategy.parse().rb()?;
    let mut list = Vec::new();
    let mut errors = Vec::new();
    for t in &c.targets {
        let prefix = t.name.as_ref().map(|n| format!("cluster {n}: ")).unwrap_or_default();
        if let Some(problem) = &t.problem {
            errors.push(problem.clone());
            continue;
        }
        let sched = target(t, c.timeout, c.bin_dir.as_deref(), &c.ssh_port).sched;
        match multitenant_core::discover::running_jobs(&sched, strategy, &c.wckey) {
            Ok(listing) => list.extend(listing.jobs.into_iter().map(
                |j| json!({"id": j.id, "owner": j.owner, "cluster": j.cluster, "name": j.name, "restarts": j.restarts}),
            )),
            Err(e) => errors.push(format!("{prefix}{e}")),
        }
    }
    serde_magnus::serialize(ruby, &json!({"jobs": list, "errors": errors}))
}

/// A scheduler command through the core's one call site (timeout, stderr read as OOD reads it, valid
/// UTF-8), run as discovery runs it for the settings' first target (its clusters.d `job` entry).
fn run_command(ruby: &Ruby, program: String, args: Vec<String>, config: Value) -> Result<String, Error> {
    let c: Config = serde_magnus::deserialize(ruby, config)
        .map_err(|e| crate::error::to_ruby(multitenant_core::Error::Invalid(format!("discovery settings: {e}"))))?;
    let sched = match c.targets.first() {
        Some(t) => target(t, c.timeout, c.bin_dir.as_deref(), &c.ssh_port).sched,
        None => Scheduler::default().with_timeout(seconds(c.timeout)),
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sched.run(&program, &args).rb()
}

/// Removes every card the gem wrote under `dataroot` for the user `uid`.
fn purge(ruby: &Ruby, dataroot: String, uid: u32, user: String) -> Result<Value, Error> {
    let opts = CardOptions::new(dataroot);
    let r = multitenant_core::cards::purge(&opts, uid, &user);
    serde_magnus::serialize(ruby, &json!({"removed": r.removed, "errors": r.errors}))
}

/// Takes away the user's delivered cards that OOD marked completed since; returns the ids.
fn settle_completed(dataroot: String, uid: u32) -> Vec<String> {
    multitenant_core::cards::settle_completed(&PathBuf::from(dataroot), uid).dismissed
}

/// A spec value as the first implementation's forms get it (for the specs of the legacy shape):
/// `"name"` an app name as `accounting.mta` gives it, `"value"` a connection value.
fn form_safe(kind: String, text: String) -> Result<String, Error> {
    use multitenant_core::form_safe::{form_safe_name, form_safe_value};
    match kind.as_str() {
        "name" => Ok(form_safe_name(&text).into_owned()),
        "value" => Ok(form_safe_value(&text).into_owned()),
        _ => Err(crate::error::to_ruby(multitenant_core::Error::Invalid(format!(
            "form_safe: kind {kind:?} is not name or value"
        )))),
    }
}

pub fn init(_ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let discovery = module.define_module("Discovery")?;
    discovery.define_singleton_method("_run", function!(run_discovery, 1))?;
    discovery.define_singleton_method("_jobs", function!(jobs, 1))?;
    discovery.define_singleton_method("_purge", function!(purge, 3))?;
    discovery.define_singleton_method("_command", function!(run_command, 3))?;
    discovery.define_singleton_method("_settle_completed", function!(settle_completed, 2))?;
    discovery.define_singleton_method("_form_safe", function!(form_safe, 2))?;
    Ok(())
}
