//! Discovery: which running jobs are shares this viewer may open. Never fails as a whole: whatever
//! goes wrong is one line in `errors`, and the shares that did open are returned.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use nix::unistd::{getgrouplist, Gid, Group, Uid, User};

use crate::envelope::{open, parse, Binding, Format, Share};
use crate::error::{Error, Result};
use crate::keys::{Key, KeyDir};
use crate::legacy::open_legacy;
use crate::slurm::Scheduler;

/// A running job as the scheduler reports it. Only `name` can be chosen by the job's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub owner: String,
    pub cluster: String,
    pub name: String,
    /// How many times Slurm restarted the job (requeue): each run is a new run of the service.
    pub restarts: u32,
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

/// A random record terminator for one query: a job name may contain newlines, so lines cannot be
/// trusted to separate jobs, but a name cannot contain a terminator it could not predict.
fn terminator() -> Result<String> {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).map_err(|e| Error::Io(format!("no random numbers: {e}")))?;
    Ok(format!("@mt{}@", URL_SAFE_NO_PAD.encode(b)))
}

/// Splits `squeue -O …,Name:<term>` output into records of `fields` '|'-separated fields, the last
/// being the name (which may itself hold '|' and newlines).
fn records<'a>(out: &'a str, term: &str, fields: usize) -> Vec<Vec<&'a str>> {
    let sep = format!("{term}\n");
    out.split_inclusive(sep.as_str())
        .filter_map(|r| r.strip_suffix(sep.as_str()))
        .filter_map(|r| {
            let parts: Vec<&str> = r.splitn(fields, '|').collect();
            (parts.len() == fields && !parts.last().unwrap().contains(term)).then_some(parts)
        })
        .collect()
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Running jobs that carry exactly `wckey` (a defaulted `*wckey` does not count).
pub fn running_jobs(sched: &Scheduler, strategy: Strategy, wckey: &str) -> Result<Vec<Job>> {
    let wckey = wckey.to_ascii_lowercase();
    let term = terminator()?;
    let mut seen = HashSet::new();
    let mut jobs = Vec::new();
    match strategy {
        Strategy::Squeue => {
            let format = format!("JobID:|,UserName:|,WCKey:|,Cluster:|,Name:{term}");
            let out = sched.run("squeue", &["--noheader", "--states=RUNNING", "-O", &format])?;
            for r in records(&out, &term, 5) {
                if r[2] == wckey && valid_id(r[0]) && seen.insert(r[0].to_string()) {
                    jobs.push(Job { id: r[0].into(), owner: r[1].into(), cluster: r[3].into(), name: r[4].into(), restarts: 0 });
                }
            }
        }
        Strategy::SacctSqueue => {
            let wckeys = format!("--wckeys={wckey}");
            let out = sched.run(
                "sacct",
                &[
                    "--allocations",
                    "--noheader",
                    "--parsable2",
                    "--allusers",
                    "--state=RUNNING",
                    &wckeys,
                    "--format=JobIDRaw,User,Cluster,WCKey",
                ],
            )?;
            let mut accounted = BTreeMap::new();
            for line in out.lines() {
                let f: Vec<&str> = line.split('|').collect();
                if let [id, owner, cluster, key] = f[..] {
                    if key == wckey && valid_id(id) {
                        accounted.insert(id.to_string(), (owner.to_string(), cluster.to_string()));
                    }
                }
            }
            if accounted.is_empty() {
                return Ok(jobs);
            }
            let ids = accounted.keys().cloned().collect::<Vec<_>>().join(",");
            let format = format!("JobID:|,UserName:|,Name:{term}");
            let out = sched.run("squeue", &["--noheader", "--states=RUNNING", "--jobs", &ids, "-O", &format])?;
            for r in records(&out, &term, 3) {
                // The owner must agree between accounting and the controller.
                if let Some((owner, cluster)) = accounted.get(r[0]).filter(|(o, _)| o == r[1]) {
                    if seen.insert(r[0].to_string()) {
                        jobs.push(Job {
                            id: r[0].into(),
                            owner: owner.clone(),
                            cluster: cluster.clone(),
                            name: r[2].into(),
                            restarts: 0,
                        });
                    }
                }
            }
        }
    }
    Ok(jobs)
}

/// Who is looking: the user and their groups as the group database says now (primary included),
/// not the possibly stale groups of this long-running process.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub name: String,
    pub uid: u32,
    pub gids: Vec<u32>,
}

impl Viewer {
    pub fn current() -> Result<Viewer> {
        Viewer::by_uid(Uid::current().as_raw())
    }

    pub fn by_uid(uid: u32) -> Result<Viewer> {
        let user = User::from_uid(Uid::from_raw(uid))
            .map_err(|e| Error::Io(format!("looking up uid {uid}: {e}")))?
            .ok_or_else(|| Error::Invalid(format!("uid {uid} has no passwd entry")))?;
        let cname =
            std::ffi::CString::new(user.name.clone()).map_err(|_| Error::Invalid("user name holds NUL".into()))?;
        let gids = getgrouplist(&cname, user.gid)
            .map_err(|e| Error::Io(format!("listing the groups of {}: {e}", user.name)))?
            .into_iter()
            .map(Gid::as_raw)
            .collect();
        Ok(Viewer { name: user.name, uid, gids })
    }
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
    /// The longest the whole run may take after the scheduler answered; jobs left are skipped.
    pub budget: Duration,
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
    /// False when the scheduler could not be asked: `found` then says nothing about which shares ended.
    pub complete: bool,
    /// Groups whose keys could not be loaded: their shares may still live.
    pub failed_groups: Vec<String>,
}

pub const MAX_ERRORS: usize = 50;
/// Distinct group names looked up per run; names come from job names, so their number is bounded.
const MAX_GROUPS: usize = 64;

impl Discovery {
    fn error(&mut self, line: String) {
        if self.errors.len() < MAX_ERRORS && !self.errors.contains(&line) {
            self.errors.push(line);
        } else if self.errors.len() == MAX_ERRORS {
            self.errors.push("… more problems not listed".into());
        }
    }
}

/// Memoizes per-group answers so each group costs one lookup and one key load per run.
#[derive(Default)]
struct GroupCache {
    member: BTreeMap<String, Option<u32>>,
    owner_gids: BTreeMap<String, Vec<u32>>,
    keys: BTreeMap<String, std::result::Result<Vec<Key>, String>>,
}

pub fn discover(sched: &Scheduler, viewer: &Viewer, opts: &Options) -> Discovery {
    let mut d = Discovery::default();
    let jobs = match running_jobs(sched, opts.strategy, &opts.wckey) {
        Ok(jobs) => jobs,
        Err(e) => {
            d.error(e.to_string());
            return d;
        }
    };
    d.complete = true;
    let start = Instant::now();
    let now = opts.now.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |t| t.as_secs()));
    let mut cache = GroupCache::default();
    let total = jobs.len();
    for (n, job) in jobs.into_iter().enumerate() {
        if start.elapsed() > opts.budget {
            d.error(format!(
                "discovery stopped after {:.1} s: {} job(s) not examined",
                opts.budget.as_secs_f32(),
                total - n
            ));
            d.complete = false;
            break;
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
        if !cache.member.contains_key(&group) && cache.member.len() >= MAX_GROUPS {
            d.error(format!("job {} ({}): more than {MAX_GROUPS} groups named in one run; skipped", job.id, job.owner));
            continue;
        }
        let gid = *cache.member.entry(group.clone()).or_insert_with(|| match Group::from_name(&group) {
            Ok(Some(g)) if viewer.gids.contains(&g.gid.as_raw()) => Some(g.gid.as_raw()),
            _ => None,
        });
        let Some(gid) = gid else { continue };
        // The publisher must be a member too: a share cannot speak for a group its owner is not in.
        let owner_gids = cache.owner_gids.entry(job.owner.clone()).or_insert_with(|| {
            User::from_name(&job.owner)
                .ok()
                .flatten()
                .and_then(|u| Viewer::by_uid(u.uid.as_raw()).ok())
                .map_or_else(Vec::new, |v| v.gids)
        });
        if !owner_gids.contains(&gid) {
            d.error(format!("job {} ({}): the owner is not a member of group {group}", job.id, job.owner));
            continue;
        }
        let binding = Binding { job_id: &job.id, owner: &job.owner };
        let opened = match parsed.format {
            Format::Legacy if opts.legacy => open_legacy(&job.name, binding),
            Format::Legacy => Err(Error::LegacyDisabled),
            Format::V1 { .. } => {
                let keys = cache
                    .keys
                    .entry(group.clone())
                    .or_insert_with(|| opts.key_dir.opening_keys(&group).map_err(|e| e.to_string()));
                match keys {
                    Ok(keys) => open(&job.name, binding, keys),
                    Err(e) => {
                        d.error(format!("group {group}: {e}"));
                        if !d.failed_groups.contains(&group) {
                            d.failed_groups.push(group.clone());
                        }
                        continue;
                    }
                }
            }
        };
        match opened {
            Ok(share) if share.message.is_expired(now) => {}
            Ok(share) if !share.message.allows(&viewer.name, viewer.uid) => {}
            Ok(share) => d.found.push(Found { job, share }),
            Err(e) => d.error(format!("job {} ({}): {e}", job.id, job.owner)),
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_in_a_name_cannot_forge_a_record() {
        let term = "@mtXYZ@";
        // Recorded from squeue: job 3's owner put "\n4|mtowner|multitenant|mtcluster|fake" in its name.
        let out = "1|mtowner|multitenant|mtcluster|mt|g|1.abc|x y@mtXYZ@\n3|mtmember|*personal|mtcluster|a\n4|mtowner|multitenant|mtcluster|fake@mtXYZ@\n";
        let r = records(out, term, 5);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0], ["1", "mtowner", "multitenant", "mtcluster", "mt|g|1.abc|x y"]);
        assert_eq!(r[1][0], "3");
        assert_eq!(r[1][4], "a\n4|mtowner|multitenant|mtcluster|fake");
    }

    #[test]
    fn records_without_all_fields_or_terminator_are_dropped() {
        let r = records("1|a|b@T@\n2|only@T@\ntrailing|x|y", "@T@", 3);
        assert_eq!(r, vec![vec!["1", "a", "b"]]);
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
