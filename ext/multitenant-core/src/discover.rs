//! Discovery: which running jobs are shares this viewer may open. Never fails as a whole: whatever
//! goes wrong is one line in `errors`, what could not be decided is in `unknown`, and the shares that
//! did open are returned.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use memchr::memmem::Finder;
use nix::unistd::{getgrouplist, Gid, Group, Uid, User};

use crate::envelope::{check_cluster, open, parse, Binding, Format, Share};
use crate::error::{Error, Result};
use crate::hostlist::{Domains, HostList};
use crate::keys::{Key, KeyDir};
use crate::legacy::open_legacy;
use crate::message::is_user_name;
use crate::slurm::Scheduler;

/// A running job as the scheduler reports it. Only `name` (and the WCKey it was found by) can be
/// chosen by the job's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub owner: String,
    pub cluster: String,
    pub name: String,
    /// How many times Slurm restarted the job (requeue): each run is a new run of the service.
    pub restarts: u32,
    /// The nodes of this run, as Slurm prints them (`squeue -O NodeList`: a compressed host list such
    /// as `node[01-02],gpu1`). A share's `host` must be one of them.
    pub nodes: String,
}

/// How running jobs with the WCKey are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// One `squeue` call over all running jobs, filtered on the WCKey column here.
    Squeue,
    /// `sacct` filtered on the WCKey by slurmdbd, then `squeue -j` for the full names of those jobs.
    SacctSqueue,
}

impl FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "squeue" => Ok(Strategy::Squeue),
            "sacct" | "sacct+squeue" => Ok(Strategy::SacctSqueue),
            _ => Err(Error::Invalid(format!("strategy must be \"squeue\" or \"sacct\", not {s:?}"))),
        }
    }
}

/// A random token for one query: a job name or WCKey may contain newlines and '|', so neither can be
/// trusted to separate fields or jobs, but no field can contain a token it could not predict.
fn token(tag: &str) -> Result<String> {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).map_err(|e| Error::Io(format!("no random numbers: {e}")))?;
    Ok(format!("@{tag}{}@", URL_SAFE_NO_PAD.encode(b)))
}

/// Splits `squeue -O A:<sep>,B:<sep>,…,Name:<term>` output into records of exactly `fields` fields.
/// `squeue -M` prints a `CLUSTER: <name>` line before the records when it prints a header (22.05 drops
/// both with `--noheader`; other versions may not); text before the first field
/// of a record up to a newline is such a header (a job id holds no newline) and is dropped.
fn records<'a, const N: usize>(out: &'a str, sep: &str, term: &str) -> Vec<[&'a str; N]> {
    // The tokens are ASCII, so every match starts and ends on a character boundary.
    let end = format!("{term}\n");
    let (ends, seps, terms) = (Finder::new(end.as_bytes()), Finder::new(sep.as_bytes()), Finder::new(term.as_bytes()));
    let mut records = Vec::new();
    let mut start = 0;
    'record: for at in ends.find_iter(out.as_bytes()) {
        let record = &out[start..at];
        start = at + end.len();
        let mut parts = [""; N];
        let (mut n, mut from) = (0, 0);
        for p in seps.find_iter(record.as_bytes()) {
            if n + 1 >= N {
                continue 'record;
            }
            parts[n] = &record[from..p];
            (n, from) = (n + 1, p + sep.len());
        }
        if n + 1 != N {
            continue;
        }
        parts[n] = &record[from..];
        if parts.iter().any(|p| terms.find(p.as_bytes()).is_some()) {
            continue;
        }
        parts[0] = parts[0].rsplit('\n').next().unwrap_or_default();
        records.push(parts);
    }
    records
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// What one cluster's scheduler said: the running jobs with the WCKey, and stderr warnings to log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listing {
    pub jobs: Vec<Job>,
    pub warnings: Vec<String>,
    /// Jobs listed but not decidable now, as (Slurm cluster name, job id): the controller could not
    /// resolve the owner accounting names (it printed a uid).
    pub undecided: Vec<(String, String)>,
}

/// `squeue -O` format for the `Squeue` strategy: every running job, the name last (ended by `term`).
pub fn squeue_format(sep: &str, term: &str) -> String {
    format!("JobID:{sep},UserName:{sep},WCKey:{sep},Cluster:{sep},RestartCnt:{sep},NodeList:{sep},Name:{term}")
}

/// `squeue -O` format for the second call of the `SacctSqueue` strategy (the jobs accounting named).
pub fn named_format(sep: &str, term: &str) -> String {
    format!("JobID:{sep},UserName:{sep},RestartCnt:{sep},NodeList:{sep},Name:{term}")
}

/// The jobs in `squeue -O` [`squeue_format`] output that carry exactly `wckey` (lowercase, as Slurm
/// stores it) on a valid cluster (`cluster`, when the query named one with -M). Every field is
/// checked on its own; a record that fails any check is dropped; a job id counts once.
pub fn parse_squeue(out: &str, sep: &str, term: &str, wckey: &str, cluster: Option<&str>) -> Vec<Job> {
    let mut seen = HashSet::new();
    let mut jobs = Vec::new();
    for [id, owner, key, c, restarts, nodes, name] in records::<7>(out, sep, term) {
        let Ok(restarts) = restarts.parse::<u32>() else { continue };
        if key == wckey && valid_id(id) && is_user_name(owner) && cluster_ok(c, cluster) && seen.insert(id) {
            jobs.push(Job {
                id: id.into(),
                owner: owner.into(),
                cluster: c.into(),
                name: name.into(),
                restarts,
                nodes: nodes.into(),
            });
        }
    }
    jobs
}

/// What accounting said: job id → (owner, Slurm cluster name), for the jobs in `sacct --parsable2
/// --delimiter=<sep> --format=JobIDRaw,User,Cluster,WCKey` output that carry exactly `wckey`.
pub fn parse_sacct(out: &str, sep: &str, wckey: &str, cluster: Option<&str>) -> BTreeMap<String, (String, String)> {
    let mut accounted = BTreeMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split(sep).collect();
        if let [id, owner, c, key] = f[..] {
            if key == wckey && valid_id(id) && is_user_name(owner) && cluster_ok(c, cluster) {
                accounted.insert(id.to_string(), (owner.to_string(), c.to_string()));
            }
        }
    }
    accounted
}

/// The jobs of `accounted` in `squeue -O` [`named_format`] output, and those whose owner the
/// controller printed as a uid (its host could not resolve the name just now: undecided, not ended).
/// The owner must agree between accounting and the controller.
pub fn parse_named(
    out: &str,
    sep: &str,
    term: &str,
    accounted: &BTreeMap<String, (String, String)>,
) -> (Vec<Job>, Vec<(String, String)>) {
    let mut seen = HashSet::new();
    let (mut jobs, mut undecided) = (Vec::new(), Vec::new());
    for [id, owner, restarts, nodes, name] in records::<5>(out, sep, term) {
        let Ok(restarts) = restarts.parse::<u32>() else { continue };
        let Some((o, cluster)) = accounted.get(id) else { continue };
        if o != owner {
            if !owner.is_empty() && owner.bytes().all(|b| b.is_ascii_digit()) {
                undecided.push((cluster.clone(), id.to_string()));
            }
            continue;
        }
        if seen.insert(id) {
            jobs.push(Job {
                id: id.into(),
                owner: o.clone(),
                cluster: cluster.clone(),
                name: name.into(),
                restarts,
                nodes: nodes.into(),
            });
        }
    }
    (jobs, undecided)
}

fn cluster_ok(c: &str, asked: Option<&str>) -> bool {
    check_cluster(c).is_ok() && asked.is_none_or(|m| m == c)
}

/// Running jobs that carry exactly `wckey` (a defaulted `*wckey` does not count), on the cluster
/// `sched` reaches. `--all`, as OOD's adapter passes it: jobs in hidden partitions, or partitions the
/// viewer may not use, are listed too.
pub fn running_jobs(sched: &Scheduler, strategy: Strategy, wckey: &str) -> Result<Listing> {
    let wckey = wckey.to_ascii_lowercase();
    let (sep, term) = (token("f")?, token("mt")?);
    // One deadline for the whole query, also when it takes two calls.
    let deadline = Instant::now() + sched.timeout();
    let mut listing = Listing::default();
    match strategy {
        Strategy::Squeue => {
            let format = squeue_format(&sep, &term);
            let out =
                sched.output_by("squeue", &["--all", "--noheader", "--states=RUNNING", "-O", &format], deadline)?;
            listing.warnings = out.warnings;
            listing.jobs = parse_squeue(&out.stdout, &sep, &term, &wckey, sched.cluster());
        }
        Strategy::SacctSqueue => {
            let wckeys = format!("--wckeys={wckey}");
            let delimiter = format!("--delimiter={sep}");
            let args = [
                "--allocations",
                "--noheader",
                "--parsable2",
                &delimiter,
                "--allusers",
                "--state=RUNNING",
                &wckeys,
                "--format=JobIDRaw,User,Cluster,WCKey",
            ];
            let out = sched.output_by("sacct", &args, deadline)?;
            listing.warnings = out.warnings;
            let accounted = parse_sacct(&out.stdout, &sep, &wckey, sched.cluster());
            if accounted.is_empty() {
                return Ok(listing);
            }
            let ids = accounted.keys().cloned().collect::<Vec<_>>().join(",");
            // The run's nodes come with its name and restart count, from the same answer: a requeue
            // between the two calls cannot pair one run's name with another run's nodes.
            let format = named_format(&sep, &term);
            let squeue = ["--all", "--noheader", "--states=RUNNING", "--jobs", &ids, "-O", &format];
            let out = match sched.output_by("squeue", &squeue, deadline) {
                Ok(out) => out,
                // Accounting can list as running a job the controller no longer knows (a runaway job);
                // asked for that one id alone, squeue fails with this line. The job has ended.
                Err(Error::Command { reason, .. })
                    if accounted.len() == 1 && reason.contains("Invalid job id specified") =>
                {
                    return Ok(listing)
                }
                Err(e) => return Err(e),
            };
            listing.warnings.extend(out.warnings);
            let (jobs, undecided) = parse_named(&out.stdout, &sep, &term, &accounted);
            listing.jobs = jobs;
            listing.undecided = undecided;
        }
    }
    Ok(listing)
}

/// Who is looking: the user and their groups as the group database says now (primary included),
/// not the possibly stale groups of this long-running process. Their names are resolved once, so
/// membership is decided from this list: no group lookup is ever driven by a name in a job name.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub name: String,
    pub uid: u32,
    pub gids: Vec<u32>,
    /// Group name → gid, for each of `gids` whose name could be looked up.
    pub groups: BTreeMap<String, u32>,
    /// Some gid's name could not be looked up (LDAP/SSSD hiccup): a group not in `groups` may still
    /// be one of the viewer's.
    pub unresolved: bool,
}

impl Viewer {
    pub fn current() -> Result<Viewer> {
        Viewer::by_uid(Uid::current().as_raw())
    }

    pub fn by_uid(uid: u32) -> Result<Viewer> {
        let user = User::from_uid(Uid::from_raw(uid))
            .map_err(|e| Error::Io(format!("looking up uid {uid}: {e}")))?
            .ok_or_else(|| Error::Invalid(format!("uid {uid} has no passwd entry")))?;
        let gids = member_gids(&user)?;
        let mut groups = BTreeMap::new();
        let mut unresolved = false;
        for &gid in &gids {
            match Group::from_gid(Gid::from_raw(gid)) {
                Ok(Some(g)) => {
                    groups.insert(g.name, gid);
                }
                _ => unresolved = true,
            }
        }
        Ok(Viewer { name: user.name, uid, gids, groups, unresolved })
    }
}

fn member_gids(user: &User) -> Result<Vec<u32>> {
    let cname = std::ffi::CString::new(user.name.clone()).map_err(|_| Error::Invalid("user name holds NUL".into()))?;
    Ok(getgrouplist(&cname, user.gid)
        .map_err(|e| Error::Io(format!("listing the groups of {}: {e}", user.name)))?
        .into_iter()
        .map(Gid::as_raw)
        .collect())
}

/// One Slurm cluster to search.
#[derive(Debug, Clone)]
pub struct Target {
    /// The Slurm cluster name (a `MULTITENANT_CLUSTERS` key), or `None` for the one cluster plain
    /// commands reach (no mapping set).
    pub name: Option<String>,
    /// How OOD reaches it (its clusters.d entry).
    pub sched: Scheduler,
    /// Why it cannot be searched (a setting to fix, said in one line): its shares are then unknown.
    pub problem: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub strategy: Strategy,
    pub wckey: String,
    pub key_dir: KeyDir,
    /// Also read the first implementation's insecure names.
    pub legacy: bool,
    /// Seconds since the epoch, for expiry; `None` means the clock.
    pub now: Option<u64>,
    /// The longest the whole run may take after the scheduler answered; jobs left are unknown.
    pub budget: Duration,
    /// The site's cluster domains a share's `host` may add to a node's name: `MULTITENANT_HOST_DOMAINS`
    /// ([`Domains::from_setting`]), else /etc/resolv.conf's ([`Domains::from_resolv_conf`]).
    pub host_domains: Domains,
}

/// A share that opened for this viewer, with the job it came from.
#[derive(Debug, Clone)]
pub struct Found {
    pub job: Job,
    pub share: Share,
}

/// What one run could not decide. A card, dismissal or form choice it covers stays as the last run
/// left it: something skipped, capped or not looked up is unknown, never "ended".
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// Nothing could be decided (no scheduler answered).
    pub all: bool,
    /// Slurm cluster names whose scheduler did not answer in full.
    pub clusters: Vec<String>,
    /// Groups whose keys could not be loaded.
    pub groups: Vec<String>,
    /// Jobs seen but not decided, as (Slurm cluster name, job id).
    pub jobs: Vec<(String, String)>,
}

impl Unknown {
    /// Whether a share of `group` from job `job_id` on Slurm cluster `cluster` is undecided this run.
    pub fn covers(&self, cluster: &str, group: &str, job_id: &str) -> bool {
        self.all
            || self.clusters.iter().any(|c| c == cluster)
            || self.groups.iter().any(|g| g == group)
            || self.jobs.iter().any(|(c, j)| c == cluster && j == job_id)
    }
}

#[derive(Debug, Default)]
pub struct Discovery {
    pub found: Vec<Found>,
    /// One line per problem (deduplicated, at most [`MAX_ERRORS`]), for admin tools; discovery
    /// itself never fails.
    pub errors: Vec<String>,
    /// Stderr lines of successful scheduler calls (deduplicated, at most [`MAX_ERRORS`]), to log.
    pub warnings: Vec<String>,
    /// Information, not problems (jobs in the first implementation's format while it is not read).
    pub notes: Vec<String>,
    /// What this run could not decide: its cards, dismissals and form choices stay.
    pub unknown: Unknown,
}

pub const MAX_ERRORS: usize = 50;

impl Discovery {
    fn error(&mut self, line: String) {
        if self.errors.len() < MAX_ERRORS && !self.errors.contains(&line) {
            self.errors.push(line);
        } else if self.errors.len() == MAX_ERRORS {
            self.errors.push("… more problems not listed".into());
        }
    }
}

/// Memoizes per-run answers: each owner costs one lookup, each group one key load.
#[derive(Default)]
struct Cache {
    owner_gids: BTreeMap<String, std::result::Result<Vec<u32>, String>>,
    keys: BTreeMap<String, std::result::Result<Vec<Key>, String>>,
}

/// Whether the job's name opens as one sealed by one of the job's last few earlier runs (a requeue).
fn sealed_by_an_earlier_run(job: &Job, keys: &[Key]) -> bool {
    (job.restarts.saturating_sub(4)..job.restarts).any(|restarts| {
        let earlier = Binding { job_id: &job.id, owner: &job.owner, cluster: &job.cluster, restarts };
        open(&job.name, earlier, keys).is_ok()
    })
}

/// At most `max` characters of `value`, and "…" when it was longer.
fn cut(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &value[..at]),
        None => value.to_string(),
    }
}

/// A publisher's value as it appears in a reason: quoted, escaped, and cut short.
fn quoted(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((at, _)) => format!("{:?}…", &value[..at]),
        None => format!("{value:?}"),
    }
}

/// A share's `host` must be one of the job's nodes (as Slurm names it, or that name, "." and one of
/// the site's cluster `domains`): OOD's card turns `host` into a shell button, and the node proxy links
/// go to it, so a publisher cannot aim members at another machine. A share without `host` has nothing
/// to check. The refusal names the domains, and where they came from, when the host has a dot.
pub fn check_host(job: &Job, share: &Share, domains: &Domains) -> Result<()> {
    let Some(host) = share.message.connection.get("host") else { return Ok(()) };
    let nodes = HostList::parse(&job.nodes)
        .map_err(|why| Error::Invalid(format!("host {} cannot be checked: {why}", quoted(host, 64))))?;
    if nodes.names_node(host, domains) {
        return Ok(());
    }
    let domains = if host.contains('.') { format!("; {}", domains.describe()) } else { String::new() };
    Err(Error::Invalid(format!(
        "host {} is not a node of job {} (Slurm: {}{domains})",
        quoted(host, 64),
        job.id,
        cut(&job.nodes, 200)
    )))
}

/// Asks every target without a problem, each on its own thread.
fn ask_at_once(targets: &[Target], opts: &Options) -> Vec<(Option<String>, Result<Listing>)> {
    std::thread::scope(|scope| {
        let asks: Vec<_> = targets
            .iter()
            .filter(|t| t.problem.is_none())
            .map(|t| (t.name.clone(), scope.spawn(|| running_jobs(&t.sched, opts.strategy, &opts.wckey))))
            .collect();
        asks.into_iter()
            .map(|(name, h)| (name, h.join().unwrap_or_else(|_| Err(Error::Io("the scheduler query panicked".into())))))
            .collect()
    })
}

pub fn discover(targets: &[Target], viewer: &Viewer, opts: &Options) -> Discovery {
    let mut d = Discovery::default();
    // Clusters are asked at once, so the run is bounded by one scheduler timeout, not their sum; the
    // common single cluster is asked on this thread.
    let ask = |t: &Target| running_jobs(&t.sched, opts.strategy, &opts.wckey);
    let answers: Vec<(Option<String>, Result<Listing>)> = match targets {
        [t] if t.problem.is_none() => vec![(t.name.clone(), ask(t))],
        _ => ask_at_once(targets, opts),
    };
    let unknown_cluster = |d: &mut Discovery, name: &Option<String>, line: String| {
        d.error(line);
        match name {
            Some(n) => d.unknown.clusters.push(n.clone()),
            None => d.unknown.all = true,
        }
    };
    for t in targets {
        if let Some(problem) = &t.problem {
            unknown_cluster(&mut d, &t.name, problem.clone());
        }
    }
    let mut jobs = Vec::new();
    let mut seen = HashSet::new();
    let answered = answers.iter().filter(|(_, a)| a.is_ok()).count();
    for (name, answer) in answers {
        match answer {
            Ok(listing) => {
                d.unknown.jobs.extend(listing.undecided);
                for w in listing.warnings {
                    let w = match &name {
                        Some(n) => format!("cluster {n}: {w}"),
                        None => w,
                    };
                    if d.warnings.len() < MAX_ERRORS && !d.warnings.contains(&w) {
                        d.warnings.push(w);
                    }
                }
                // A target reached without -M lists the cluster its configuration names: only its own
                // jobs count (another target, or a federation sibling, answers for the rest).
                let mine = |j: &Job| name.as_ref().is_none_or(|n| n == &j.cluster);
                jobs.extend(
                    listing.jobs.into_iter().filter(|j| mine(j) && seen.insert((j.cluster.clone(), j.id.clone()))),
                );
            }
            Err(e) => {
                let line = match &name {
                    Some(n) => format!("cluster {n}: {e}"),
                    None => e.to_string(),
                };
                unknown_cluster(&mut d, &name, line);
            }
        }
    }
    // No cluster answered: nothing at all could be decided.
    d.unknown.all |= answered == 0;
    examine(&mut d, jobs, viewer, opts);
    d
}

/// Shares opened on one thread at most; more are opened on up to [`MAX_THREADS`] threads.
const SERIAL_OPENS: usize = 128;
const MAX_THREADS: usize = 4;

/// A job whose name is to be opened: the lookups are done, what is left needs no lock and no I/O.
struct Sealed {
    job: Job,
    group: String,
    legacy: bool,
}

/// Decides, for each running job with the WCKey, whether it is a share `viewer` may open: the
/// shares that opened go to `d.found`, one line per problem to `d.errors`, what could not be decided
/// to `d.unknown`. Spawns no process: the scheduler has answered already. The lookups (owners,
/// keys) are made in order, once each; the names are then opened on up to [`MAX_THREADS`] threads
/// when there are many (they need nothing but the keys), and decided in the scheduler's order.
pub fn examine(d: &mut Discovery, jobs: Vec<Job>, viewer: &Viewer, opts: &Options) {
    let start = Instant::now();
    let now = opts.now.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |t| t.as_secs()));
    let mut cache = Cache::default();
    let total = jobs.len();
    let mut sealed = Vec::new();
    let mut legacy_ignored: BTreeMap<String, usize> = BTreeMap::new();
    for (n, job) in jobs.into_iter().enumerate() {
        if start.elapsed() > opts.budget {
            d.error(format!(
                "discovery stopped after {:.1} s: {} job(s) not examined; their shares stay as they were",
                opts.budget.as_secs_f32(),
                total - n
            ));
            d.unknown.jobs.push((job.cluster.clone(), job.id.clone()));
            continue;
        }
        // A job not yet renamed by its publisher has an ordinary name: not an error.
        if !job.name.contains('|') {
            continue;
        }
        let parsed = match parse(&job.name) {
            Ok(p) => p,
            Err(e) => {
                d.error(format!("job {} ({}): {e}", job.id, job.owner));
                continue;
            }
        };
        let group = parsed.group.to_string();
        let Some(&gid) = viewer.groups.get(&group) else {
            if viewer.unresolved {
                d.unknown.jobs.push((job.cluster.clone(), job.id.clone()));
            }
            continue;
        };
        let legacy = parsed.format == Format::Legacy;
        if legacy && !opts.legacy {
            // Read only while a site migrates: by default it is information, not a problem.
            *legacy_ignored.entry(job.owner.clone()).or_default() += 1;
            continue;
        }
        // The publisher must be a member too: a share cannot speak for a group its owner is not in.
        let owner_gids =
            cache.owner_gids.entry(job.owner.clone()).or_insert_with(|| match User::from_name(&job.owner) {
                Ok(Some(u)) => member_gids(&u).map_err(|e| e.to_string()),
                Ok(None) => Err(format!("owner {} has no passwd entry here", job.owner)),
                Err(e) => Err(format!("looking up owner {}: {e}", job.owner)),
            });
        match owner_gids {
            Ok(gids) if gids.contains(&gid) => {}
            Ok(_) => {
                d.error(format!("job {} ({}): the owner is not a member of group {group}", job.id, job.owner));
                continue;
            }
            // Not knowing is not "ended": the share stays as the last run left it.
            Err(e) => {
                let line = format!("job {} ({}): {e}; its share stays as it was", job.id, job.owner);
                d.error(line);
                d.unknown.jobs.push((job.cluster.clone(), job.id.clone()));
                continue;
            }
        }
        if !legacy {
            let keys = cache
                .keys
                .entry(group.clone())
                .or_insert_with(|| opts.key_dir.opening_keys(&group).map_err(|e| e.to_string()));
            if let Err(e) = keys {
                d.error(format!("group {group}: {e}"));
                if !d.unknown.groups.contains(&group) {
                    d.unknown.groups.push(group.clone());
                }
                continue;
            }
        }
        sealed.push(Sealed { job, group, legacy });
    }
    if !legacy_ignored.is_empty() {
        d.notes.push(legacy_note(&legacy_ignored));
    }

    let open_one = |s: &Sealed| -> Option<Result<Share>> {
        let job = &s.job;
        let binding = Binding { job_id: &job.id, owner: &job.owner, cluster: &job.cluster, restarts: job.restarts };
        if s.legacy {
            return Some(open_legacy(&job.name, binding));
        }
        let Some(Ok(keys)) = cache.keys.get(&s.group) else { return None };
        match open(&job.name, binding, keys) {
            // After a requeue the name is the previous run's until the new run publishes: not shared
            // yet, not a problem to report at every dashboard start.
            Err(Error::BadSeal) if sealed_by_an_earlier_run(job, keys) => None,
            opened => Some(opened),
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS);
    let opened: Vec<Option<Result<Share>>> = if sealed.len() <= SERIAL_OPENS || threads < 2 {
        sealed.iter().map(open_one).collect()
    } else {
        let chunk = sealed.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = sealed
                .chunks(chunk)
                .map(|part| (part.len(), scope.spawn(|| part.iter().map(open_one).collect::<Vec<_>>())))
                .collect();
            // A part that panicked is an error for each of its jobs: results stay paired with jobs.
            parts
                .into_iter()
                .flat_map(|(len, h)| {
                    h.join().unwrap_or_else(|_| {
                        (0..len).map(|_| Some(Err(Error::Io("opening the share panicked".into())))).collect()
                    })
                })
                .collect()
        })
    };

    for (s, opened) in sealed.into_iter().zip(opened) {
        let job = s.job;
        match opened {
            None => {}
            Some(Ok(share)) if share.message.is_expired(now) => {}
            // The allow-list chooses which members are shown the share; its owner always is (their
            // own card says what they share, and their own forms may use it).
            Some(Ok(share)) if !share.message.allows(&viewer.name, viewer.uid) && job.owner != viewer.name => {}
            Some(Ok(share)) => match check_host(&job, &share, &opts.host_domains) {
                Ok(()) => d.found.push(Found { job, share }),
                Err(e) => d.error(format!("job {} ({}): {e}", job.id, job.owner)),
            },
            Some(Err(e)) => d.error(format!("job {} ({}): {e}", job.id, job.owner)),
        }
    }
}

/// One line for the running jobs that publish in the first implementation's format while it is not
/// read: how many, whose, and the setting that reads them.
fn legacy_note(by_owner: &BTreeMap<String, usize>) -> String {
    let n: usize = by_owner.values().sum();
    let mut owners: Vec<String> = by_owner.iter().take(5).map(|(o, k)| format!("{o}: {k}")).collect();
    if by_owner.len() > 5 {
        owners.push("…".into());
    }
    format!(
        "{n} running job(s) publish in the first implementation's format, which is not read here ({}); MULTITENANT_LEGACY=true reads it while a site migrates",
        owners.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_field_a_user_chooses_can_shift_another() {
        let (sep, term) = ("@fXYZ@", "@mtXYZ@");
        // Job 3's owner put a newline and a forged record in its name; job 5's in its WCKey ('|' too).
        let out = "CLUSTER: beta\n1@fXYZ@mtowner@fXYZ@multitenant@fXYZ@beta@fXYZ@0@fXYZ@mt|g|1.abc|x y@mtXYZ@\n\
                   3@fXYZ@mtmember@fXYZ@*personal@fXYZ@beta@fXYZ@0@fXYZ@a\n4|mtowner|multitenant|beta|0|fake@mtXYZ@\n\
                   5@fXYZ@eve@fXYZ@multi|tenant\n6|x@fXYZ@beta@fXYZ@0@fXYZ@n@mtXYZ@\n\
                   7@fXYZ@eve@fXYZ@multitenant@fXYZ@beta@fXYZ@0@fXYZ@guessed@fXYZ@x@mtXYZ@\n";
        let r = records::<6>(out, sep, term);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0], ["1", "mtowner", "multitenant", "beta", "0", "mt|g|1.abc|x y"]);
        assert_eq!(r[1][0], "3");
        assert_eq!(r[1][5], "a\n4|mtowner|multitenant|beta|0|fake");
        assert_eq!(r[2][2], "multi|tenant\n6|x");
        // A name holding the separator itself (it cannot be predicted) is dropped, never shifted.
        assert!(r.iter().all(|f| f[0] != "7"));
    }

    #[test]
    fn records_without_all_fields_or_terminator_are_dropped() {
        let r = records::<3>("1;a;b@T@\n2;only@T@\n3;a;b;c@T@\ntrailing;x;y", ";", "@T@");
        assert_eq!(r, vec![["1", "a", "b"]]);
    }

    #[test]
    fn only_a_uid_for_the_owner_leaves_a_job_undecided() {
        let accounted = BTreeMap::from([
            ("7".to_string(), ("alice".to_string(), "hpc".to_string())),
            ("8".to_string(), ("alice".to_string(), "hpc".to_string())),
            ("9".to_string(), ("alice".to_string(), "hpc".to_string())),
        ]);
        let out = "7;1001;0;n1;a@T@\n8;;0;n1;b@T@\n9;mallory;0;n1;c@T@\n";
        let (jobs, undecided) = parse_named(out, ";", "@T@", &accounted);
        assert!(jobs.is_empty());
        // Job 7's controller printed a uid: not known now. An empty owner or another name is no answer.
        assert_eq!(undecided, vec![("hpc".to_string(), "7".to_string())]);
    }

    #[test]
    fn strategies_parse() {
        assert_eq!("squeue".parse::<Strategy>().unwrap(), Strategy::Squeue);
        assert_eq!("sacct".parse::<Strategy>().unwrap(), Strategy::SacctSqueue);
        assert!("rest".parse::<Strategy>().is_err());
    }

    #[test]
    fn the_current_viewer_has_its_primary_group() {
        let v = Viewer::current().unwrap();
        assert!(v.gids.contains(&User::from_uid(Uid::current()).unwrap().unwrap().gid.as_raw()));
    }
}
