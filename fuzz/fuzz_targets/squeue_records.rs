//! The scheduler-output record parsers: `discover::{parse_squeue, parse_sacct, parse_named}` and the
//! `squeue -O` formats they read (`squeue_format`, `named_format`).
//!
//! Input: one option byte (WCKey asked for, cluster asked for), 12 + 12 bytes that make the query's
//! two tokens as `token()` does (`@f<16 base64url>@`, `@mt<16 base64url>@`), then a template of three
//! sections split by 0x1D: the `squeue -O squeue_format` output, the `sacct --parsable2` output and
//! the `squeue -O named_format` output. In the template
//!   0x1F is the field separator token, 0x1E the terminator token + "\n",
//!   0x1C the terminator without "\n", 0x1B / 0x1A the separator / terminator without their last '@',
//!   0x19 the separator's first 9 characters, 0x18 the terminator's last 10;
//! every other character (newlines, '|', '@', …) is field content as a job name may hold it.
//!
//! Asserts, for any input: every job has a valid numeric id (1-20 digits), a valid owner and a valid
//! cluster (the one asked for, if any); no field of a job contains either token; job ids are unique;
//! there are never more jobs (and, for `parse_named`, jobs + undecided) than terminators; accounting's
//! jobs pass the same checks (no field holding the separator or a newline: sacct prints no
//! terminator); `parse_named` returns only jobs accounting named, with accounting's owner
//! and cluster. For a section whose content holds no '@' and no token fragment, the records are exactly
//! those the template spells out, filtered by the documented rules (a differential oracle).
#![no_main]

use std::collections::{BTreeMap, HashSet};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use multitenant_core::discover::{named_format, parse_named, parse_sacct, parse_squeue, squeue_format, Job};
use multitenant_core::envelope::check_cluster;
use multitenant_core::message::is_user_name;

const WCKEYS: &[&str] = &["mtshare", "", "a|b"];
const CLUSTERS: &[Option<&str>] = &[None, Some("alpha"), Some("beta")];
const SEP: char = '\u{1F}';
const END: char = '\u{1E}';

fn valid_id(id: &str) -> bool {
    (1..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

fn cluster_ok(c: &str, asked: Option<&str>) -> bool {
    check_cluster(c).is_ok() && asked.is_none_or(|a| a == c)
}

/// The text a template section stands for.
fn expand(t: &str, sep: &str, term: &str) -> String {
    let mut out = String::with_capacity(t.len() * 2);
    for c in t.chars() {
        match c {
            SEP => out.push_str(sep),
            END => (out.push_str(term), out.push('\n')).1,
            '\u{1C}' => out.push_str(term),
            '\u{1B}' => out.push_str(&sep[..sep.len() - 1]),
            '\u{1A}' => out.push_str(&term[..term.len() - 1]),
            '\u{19}' => out.push_str(&sep[..9]),
            '\u{18}' => out.push_str(&term[term.len() - 10..]),
            c => out.push(c),
        }
    }
    out
}

/// Content with no '@' and no token fragment: the tokens are exactly where the template puts them.
fn clean(t: &str) -> bool {
    !t.chars().any(|c| c == '@' || ('\u{18}'..='\u{1C}').contains(&c))
}

/// The records a clean section spells out: each ended by END, its fields split by SEP; the first
/// field's last line is the job id (what precedes it up to a newline is a header).
fn spelled(t: &str, fields: usize) -> Vec<Vec<&str>> {
    let mut pieces: Vec<&str> = t.split(END).collect();
    pieces.pop(); // after the last terminator: no record
    pieces
        .into_iter()
        .map(|r| r.split(SEP).collect::<Vec<_>>())
        .filter(|f| f.len() == fields)
        .map(|mut f| {
            f[0] = f[0].rsplit('\n').next().unwrap_or_default();
            f
        })
        .collect()
}

fn no_token(s: &str, sep: &str, term: &str) {
    assert!(!s.contains(sep) && !s.contains(term), "{s:?} holds a token");
}

fn check_jobs(jobs: &[Job], sep: &str, term: &str, terminators: usize) {
    assert!(jobs.len() <= terminators, "{} jobs from {terminators} terminators", jobs.len());
    let mut ids = HashSet::new();
    for j in jobs {
        assert!(valid_id(&j.id), "job id {:?}", j.id);
        assert!(ids.insert(j.id.as_str()), "job {} twice", j.id);
        assert!(is_user_name(&j.owner), "owner {:?}", j.owner);
        assert!(check_cluster(&j.cluster).is_ok(), "cluster {:?}", j.cluster);
        for f in [&j.id, &j.owner, &j.cluster, &j.nodes, &j.name] {
            no_token(f, sep, term);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 25 {
        return;
    }
    let (h, rest) = data.split_at(25);
    let wckey = WCKEYS[usize::from(h[0] & 0x0F) % WCKEYS.len()];
    let asked = CLUSTERS[usize::from(h[0] >> 4) % CLUSTERS.len()];
    let sep = format!("@f{}@", URL_SAFE_NO_PAD.encode(&h[1..13]));
    let term = format!("@mt{}@", URL_SAFE_NO_PAD.encode(&h[13..25]));
    let template = String::from_utf8_lossy(rest);
    let mut sections = template.splitn(3, '\u{1D}');
    let (tq, ta, tn) = (sections.next().unwrap_or(""), sections.next().unwrap_or(""), sections.next().unwrap_or(""));
    let (squeue_out, sacct_out, named_out) =
        (expand(tq, &sep, &term), expand(ta, &sep, &term), expand(tn, &sep, &term));
    let end = format!("{term}\n");

    // The formats: every column but the name ended by the separator, the name by the terminator.
    let f = squeue_format(&sep, &term);
    assert!(f.starts_with("JobID:") && f.ends_with(&format!(",Name:{term}")) && f.matches(&sep).count() == 6);
    let f = named_format(&sep, &term);
    assert!(f.starts_with("JobID:") && f.ends_with(&format!(",Name:{term}")) && f.matches(&sep).count() == 4);

    // squeue, the Squeue strategy.
    let jobs = parse_squeue(&squeue_out, &sep, &term, wckey, asked);
    check_jobs(&jobs, &sep, &term, squeue_out.matches(&end).count());
    for j in &jobs {
        assert!(asked.is_none_or(|a| a == j.cluster));
    }
    if clean(tq) {
        let mut seen = HashSet::new();
        let want: Vec<Job> = spelled(tq, 7)
            .into_iter()
            .filter_map(|r| {
                let restarts = r[4].parse::<u32>().ok()?;
                let ok = r[2] == wckey && valid_id(r[0]) && is_user_name(r[1]) && cluster_ok(r[3], asked);
                (ok && seen.insert(r[0])).then(|| Job {
                    id: r[0].into(),
                    owner: r[1].into(),
                    cluster: r[3].into(),
                    name: r[6].into(),
                    restarts,
                    nodes: r[5].into(),
                })
            })
            .collect();
        assert_eq!(jobs, want);
    }

    // sacct, then squeue -j: the SacctSqueue strategy.
    let accounted = parse_sacct(&sacct_out, &sep, wckey, asked);
    assert!(accounted.len() <= sacct_out.lines().count());
    for (id, (owner, c)) in &accounted {
        assert!(valid_id(id) && is_user_name(owner) && cluster_ok(c, asked), "{id:?} {owner:?} {c:?}");
        // sacct prints no terminator: its fields are delimited by the separator and newlines only.
        for f in [id, owner, c] {
            assert!(!f.contains(&sep) && !f.contains('\n'), "{f:?}");
        }
    }
    if clean(ta) && !ta.contains(['\r', END]) {
        let mut want = BTreeMap::new();
        for line in ta.lines() {
            if let [id, owner, c, key] = line.split(SEP).collect::<Vec<_>>()[..] {
                if key == wckey && valid_id(id) && is_user_name(owner) && cluster_ok(c, asked) {
                    want.insert(id.to_string(), (owner.to_string(), c.to_string()));
                }
            }
        }
        assert_eq!(accounted, want);
    }

    let (jobs, undecided) = parse_named(&named_out, &sep, &term, &accounted);
    let terminators = named_out.matches(&end).count();
    check_jobs(&jobs, &sep, &term, terminators);
    assert!(jobs.len() + undecided.len() <= terminators);
    for j in &jobs {
        let (owner, c) = &accounted[&j.id];
        assert_eq!((&j.owner, &j.cluster), (owner, c));
    }
    for (c, id) in &undecided {
        assert_eq!(&accounted[id].1, c);
    }
    if clean(tn) {
        let mut seen = HashSet::new();
        let (mut want, mut want_undecided) = (Vec::new(), Vec::new());
        for r in spelled(tn, 5) {
            let Ok(restarts) = r[2].parse::<u32>() else { continue };
            let Some((o, c)) = accounted.get(r[0]) else { continue };
            if o != r[1] {
                if !r[1].is_empty() && r[1].bytes().all(|b| b.is_ascii_digit()) {
                    want_undecided.push((c.clone(), r[0].to_string()));
                }
            } else if seen.insert(r[0]) {
                want.push(Job {
                    id: r[0].into(),
                    owner: o.clone(),
                    cluster: c.clone(),
                    name: r[4].into(),
                    restarts,
                    nodes: r[3].into(),
                });
            }
        }
        assert_eq!((jobs, undecided), (want, want_undecided));
    }
});
