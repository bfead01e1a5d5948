//! Slurm's compressed host lists, as `squeue -O NodeList` prints them (`node[01-03,07],gpu[1-2],login1`,
//! `rack[1-2]-n[01-02]`), and the one question discovery asks of them: is this host one of the job's
//! nodes? Membership is decided on the compressed form, never by listing the names, and the work is
//! bounded by the lengths of the list and the host, so a list naming many nodes costs no more than a
//! short one. Anything that is not a list Slurm writes is refused with its reason, never guessed at.
//!
//! The grammar (Slurm's `hostlist_create`, src/common/hostlist.c): the list is names separated by
//! commas outside brackets; a name is literal text and bracket groups; a group is ranges separated by
//! commas, each `N` or `LO-HI` in decimal digits. A range keeps the zero padding of its low end: its
//! numbers are printed at least as wide as `LO` is written (`[01-10]` is 01 … 10, `[8-10]` is 8, 9, 10).

/// The most names one list may stand for (Slurm's own limit for a range, `MAX_RANGE`, is 64 Ki).
pub const MAX_NAMES: u64 = 65_536;
/// The longest list read: a list Slurm prints for the largest jobs is far shorter.
pub const MAX_LIST_CHARS: usize = 64 * 1024;
/// Digits in one number of a range: more would not fit the arithmetic (Slurm's are `unsigned long`).
const MAX_DIGITS: usize = 18;
/// The longest host name (RFC 1035).
const MAX_HOST_CHARS: usize = 253;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    lo: u64,
    hi: u64,
    /// The digits `LO` was written with: numbers are zero-padded to this width.
    width: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Literal text, ASCII letters lowercased (names compare ignoring ASCII case, as DNS does).
    Text(String),
    /// A bracket group: one number from any of its ranges.
    Number(Vec<Range>),
}

/// A parsed host list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostList {
    names: Vec<Vec<Piece>>,
    count: u64,
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn number(s: &str, list: &str) -> Result<(u64, usize), String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{} (a range holds {s:?}, not decimal digits)", shown(list)));
    }
    if s.len() > MAX_DIGITS {
        return Err(format!("{} (a number longer than {MAX_DIGITS} digits)", shown(list)));
    }
    Ok((s.parse().expect("at most 18 digits"), s.len()))
}

/// The list as it appears in a reason: quoted, escaped, and cut short.
fn shown(list: &str) -> String {
    let cut: String = list.chars().take(200).collect();
    if cut.len() < list.len() {
        format!("Slurm's node list {cut:?}… is not a host list")
    } else {
        format!("Slurm's node list {cut:?} is not a host list")
    }
}

fn group(body: &str, list: &str) -> Result<(Vec<Range>, u64), String> {
    let mut ranges = Vec::new();
    let mut count = 0u64;
    for r in body.split(',') {
        let (lo, hi) = r.split_once('-').unwrap_or((r, r));
        let (lo, width) = number(lo, list)?;
        let (hi, _) = number(hi, list)?;
        if lo > hi {
            return Err(format!("{} (range {r:?} runs backwards)", shown(list)));
        }
        count = count.saturating_add(hi - lo + 1);
        ranges.push(Range { lo, hi, width });
    }
    Ok((ranges, count))
}

impl HostList {
    /// Reads a list as Slurm prints it; the reason says what is wrong when it is not one.
    pub fn parse(list: &str) -> Result<HostList, String> {
        if list.len() > MAX_LIST_CHARS {
            return Err(format!("Slurm's node list is {} bytes, over {MAX_LIST_CHARS}", list.len()));
        }
        if list.is_empty() {
            return Err("Slurm's node list is empty".into());
        }
        let mut names = Vec::new();
        let mut count = 0u64;
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut product = 1u64;
        let mut rest = list;
        while let Some(c) = rest.chars().next() {
            rest = &rest[c.len_utf8()..];
            match c {
                '[' => {
                    let Some(end) = rest.find(']') else {
                        return Err(format!("{} (a \"[\" is not closed)", shown(list)));
                    };
                    let body = &rest[..end];
                    if body.contains('[') {
                        return Err(format!("{} (brackets inside brackets)", shown(list)));
                    }
                    let (ranges, n) = group(body, list)?;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Number(ranges));
                    product = product.saturating_mul(n);
                    rest = &rest[end + 1..];
                }
                ']' => return Err(format!("{} (a \"]\" without its \"[\")", shown(list))),
                ',' => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    if pieces.is_empty() {
                        return Err(format!("{} (an empty name)", shown(list)));
                    }
                    names.push(std::mem::take(&mut pieces));
                    count = count.saturating_add(product);
                    product = 1;
                }
                c if c.is_whitespace() || c.is_control() => {
                    return Err(format!("{} (U+{:04X} in a name)", shown(list), c as u32));
                }
                c => text.push(c.to_ascii_lowercase()),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if pieces.is_empty() {
            return Err(format!("{} (an empty name)", shown(list)));
        }
        names.push(pieces);
        count = count.saturating_add(product);
        if count > MAX_NAMES {
            return Err(format!("Slurm's node list names more than {MAX_NAMES} nodes"));
        }
        Ok(HostList { names, count })
    }

    /// How many names the list stands for (a name listed twice counts twice).
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether `name` is one of the list's names exactly, ignoring ASCII case.
    pub fn contains(&self, name: &str) -> bool {
        if name.is_empty() || name.len() > MAX_HOST_CHARS {
            return false;
        }
        let name = name.to_ascii_lowercase();
        self.names.iter().any(|pieces| matches(pieces, name.as_bytes()))
    }

    /// Whether `host` (a connection value) names one of the list's nodes: a node's name exactly, or a
    /// node's name followed by "." and one of the site's cluster `domains`
    /// (`node01.cluster.example.edu`), ignoring ASCII case. A domain matches whole labels only:
    /// `node01.xcluster.example.edu` is not node01 in `cluster.example.edu`, and any other domain
    /// (`node01.evil.example.com`) names another machine.
    pub fn names_node(&self, host: &str, domains: &Domains) -> bool {
        if host.is_empty() || host.len() > MAX_HOST_CHARS {
            return false;
        }
        if self.contains(host) {
            return true;
        }
        let host = host.to_ascii_lowercase();
        domains
            .names
            .iter()
            .any(|d| host.strip_suffix(d.as_str()).and_then(|n| n.strip_suffix('.')).is_some_and(|n| self.contains(n)))
    }
}

/// Where the cluster domains come from, as a refusal says it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Setting,
    ResolvConf,
    /// /etc/resolv.conf could not be read: why.
    Unreadable(String),
}

/// The site's cluster domains: the one thing a share's `host` may add to a node's name. They come
/// from the setting `MULTITENANT_HOST_DOMAINS`, else from the `search` and `domain` entries of
/// /etc/resolv.conf (read once per process). Held lowercase, each a DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domains {
    names: Vec<String>,
    source: Source,
}

/// The resolver's configuration, where the domains come from when the setting is not given.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// What a domain must be, as a refusal says it (the Ruby settings say the same).
pub const DOMAIN_RULE: &str =
    "each domain must be a DNS name: labels of letters, digits and '-' separated by '.' (cluster.example.edu)";

/// Whether `s` is a DNS name: dot-separated labels of 1 to 63 ASCII letters, digits and '-', at most
/// 253 characters in all.
pub fn is_domain_name(s: &str) -> bool {
    (1..=MAX_HOST_CHARS).contains(&s.len())
        && s.split('.')
            .all(|l| (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

impl Domains {
    /// The domains of `MULTITENANT_HOST_DOMAINS` (already split at commas, spaces around trimmed);
    /// one that is not a DNS name is refused in one line naming the setting.
    pub fn from_setting<S: AsRef<str>>(list: &[S]) -> crate::error::Result<Domains> {
        let mut names: Vec<String> = Vec::new();
        for d in list {
            let d = d.as_ref().trim();
            if !is_domain_name(d) {
                let shown: String = d.chars().take(100).collect();
                return Err(crate::error::Error::Invalid(format!(
                    "MULTITENANT_HOST_DOMAINS: {DOMAIN_RULE}, not {shown:?}"
                )));
            }
            let d = d.to_ascii_lowercase();
            if !names.contains(&d) {
                names.push(d);
            }
        }
        Ok(Domains { names, source: Source::Setting })
    }

    /// The `search` and `domain` entries of a resolv.conf's text, in order, each once; an entry that is
    /// not a DNS name (a search list's root ".") is skipped, a trailing "." dropped.
    pub fn from_resolv_conf_text(text: &str) -> Domains {
        let mut names: Vec<String> = Vec::new();
        // As the resolver reads it (resolv.conf(5)): `search` and `domain` exclude each other and the
        // last such line wins, so a stale earlier line names no domain.
        let last = text.lines().rev().find(|line| matches!(line.split_whitespace().next(), Some("search" | "domain")));
        if let Some(line) = last {
            let words = line.split_whitespace().skip(1);
            for w in words.take_while(|w| !w.starts_with(['#', ';'])) {
                let w = w.strip_suffix('.').unwrap_or(w).to_ascii_lowercase();
                if is_domain_name(&w) && !names.contains(&w) {
                    names.push(w);
                }
            }
        }
        Domains { names, source: Source::ResolvConf }
    }

    /// The domains of /etc/resolv.conf, read the first time they are asked for in this process.
    pub fn from_resolv_conf() -> Domains {
        static READ: std::sync::OnceLock<Domains> = std::sync::OnceLock::new();
        READ.get_or_init(|| match std::fs::read_to_string(RESOLV_CONF) {
            Ok(text) => Domains::from_resolv_conf_text(&text),
            Err(e) => Domains { names: Vec::new(), source: Source::Unreadable(e.to_string()) },
        })
        .clone()
    }

    /// The domains, lowercase.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// What a refusal says about them: the domains and where they came from, and the setting to
    /// give when they came from the resolver
    /// (`domains: cluster.example.edu, from /etc/resolv.conf; set MULTITENANT_HOST_DOMAINS`).
    pub fn describe(&self) -> String {
        let mut listed = self.names.join(", ");
        if let Some((at, _)) = listed.char_indices().nth(200) {
            listed = format!("{}…", &listed[..at]);
        }
        match (&self.source, self.names.is_empty()) {
            (Source::Setting, true) => "no domains (MULTITENANT_HOST_DOMAINS)".into(),
            (Source::Setting, false) => format!("domains: {listed}, from MULTITENANT_HOST_DOMAINS"),
            (Source::ResolvConf, true) => {
                format!("no domains in {RESOLV_CONF}; set MULTITENANT_HOST_DOMAINS")
            }
            (Source::ResolvConf, false) => {
                format!("domains: {listed}, from {RESOLV_CONF}; set MULTITENANT_HOST_DOMAINS")
            }
            (Source::Unreadable(why), _) => {
                format!("no domains: {RESOLV_CONF} cannot be read ({why}); set MULTITENANT_HOST_DOMAINS")
            }
        }
    }
}

/// Whether `pieces` match all of `name`: the positions each piece can end at, piece by piece (no
/// recursion, and at most pieces × name length × 18 steps).
fn matches(pieces: &[Piece], name: &[u8]) -> bool {
    let mut reach = vec![false; name.len() + 1];
    reach[0] = true;
    for piece in pieces {
        let mut next = vec![false; name.len() + 1];
        for at in (0..=name.len()).filter(|&at| reach[at]) {
            match piece {
                Piece::Text(t) => {
                    if name[at..].starts_with(t.as_bytes()) {
                        next[at + t.len()] = true;
                    }
                }
                Piece::Number(ranges) => {
                    let run = name[at..].iter().take(MAX_DIGITS).take_while(|b| b.is_ascii_digit()).count();
                    for len in 1..=run {
                        let n: u64 = std::str::from_utf8(&name[at..at + len])
                            .expect("digits")
                            .parse()
                            .expect("at most 18 digits");
                        // Written as Slurm writes it: zero-padded to the range's width, no wider.
                        if ranges.iter().any(|r| (r.lo..=r.hi).contains(&n) && len == r.width.max(digits(n))) {
                            next[at + len] = true;
                        }
                    }
                }
            }
        }
        if !next.contains(&true) {
            return false;
        }
        reach = next;
    }
    reach[name.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn list(s: &str) -> HostList {
        HostList::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    /// Every name of the list, for checking `contains` against (tests only: real lists are never expanded).
    fn expand(l: &HostList) -> Vec<String> {
        let mut all = Vec::new();
        for pieces in &l.names {
            let mut names = vec![String::new()];
            for p in pieces {
                names = match p {
                    Piece::Text(t) => names.into_iter().map(|n| n + t).collect(),
                    Piece::Number(ranges) => names
                        .iter()
                        .flat_map(|n| {
                            ranges
                                .iter()
                                .flat_map(move |r| (r.lo..=r.hi).map(move |k| format!("{n}{k:0w$}", w = r.width)))
                        })
                        .collect(),
                };
            }
            all.extend(names);
        }
        all
    }

    #[test]
    fn slurm_lists_and_their_names() {
        let l = list("node[01-03,07],gpu[1-2],login1");
        assert_eq!(expand(&l), ["node01", "node02", "node03", "node07", "gpu1", "gpu2", "login1"]);
        assert_eq!(l.len(), 7);
        for name in ["node01", "NODE03", "node07", "gpu2", "login1", "Login1"] {
            assert!(l.contains(name), "{name}");
        }
        for name in
            ["node1", "node04", "node007", "gpu01", "gpu3", "login", "login10", "node", "", "node01 ", " node01"]
        {
            assert!(!l.contains(name), "{name:?}");
        }
        let racks = list("rack[1-2]-n[01-02]");
        assert_eq!(expand(&racks), ["rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"]);
        assert!(racks.contains("rack2-n02") && !racks.contains("rack3-n01") && !racks.contains("rack1-n1"));
        // Widths grow past the padding: [8-10] is 8, 9, 10; [098-101] is 098 … 101.
        assert_eq!(expand(&list("n[8-10]")), ["n8", "n9", "n10"]);
        assert_eq!(expand(&list("n[098-101]")), ["n098", "n099", "n100", "n101"]);
        assert!(!list("n[098-101]").contains("n98"));
        assert_eq!(expand(&list("a[1-2]b,c")), ["a1b", "a2b", "c"]);
        assert!(list("n[1-2]0").contains("n20") && !list("n[1-2]0").contains("n2"));
        // Digits next to a group in the literal text, and a number that could be split two ways.
        assert!(list("n1[0-1]").contains("n11"));
        assert!(list("n[1-12][1-2]").contains("n121") && list("n[1-12][1-2]").contains("n122"));
        assert!(!list("n[1-12][1-2]").contains("n123"));
        assert!(list("mtnode1").contains("MTnode1"));
        // Only ASCII letters fold: U+212A KELVIN SIGN is not "k".
        assert!(!list("knode1").contains("\u{212A}node1") && !list("\u{212A}node1").contains("knode1"));
        assert!(list("ünode1").contains("ünode1") && !list("ünode1").contains("Ünode1"));
    }

    fn domains(list: &[&str]) -> Domains {
        Domains::from_setting(list).unwrap()
    }

    #[test]
    fn a_host_may_add_only_a_cluster_domain_to_a_node_name() {
        let l = list("node[01-02],a.b");
        let site = domains(&["cluster.example.edu", "IB.Example.edu"]);
        for host in [
            "node01",
            "NODE02",
            "node01.cluster.example.edu",
            "NODE02.Cluster.EXAMPLE.edu",
            "node01.ib.example.edu",
            "a.b",
            "a.b.cluster.example.edu",
        ] {
            assert!(l.names_node(host, &site), "{host}");
        }
        for host in [
            // Any other domain is another machine, one the publisher may control.
            "node01.evil.example.com",
            "node01.cluster.example.edu.evil.example.com",
            "node01.example.edu",
            "node01.edu",
            // Whole labels only.
            "node01.xcluster.example.edu",
            "node01-cluster.example.edu",
            "node01cluster.example.edu",
            "node01.sub.cluster.example.edu",
            "node01.cluster.example.edu.",
            "node01.",
            "node01..cluster.example.edu",
            ".cluster.example.edu",
            "cluster.example.edu",
            "node03.cluster.example.edu",
            "evil.example.com",
            "node01:22",
            "node01.cluster.example.edu/x",
            "node01.cluster.example.edu:22",
            ".node01",
            "a",
            "xnode01",
            "",
        ] {
            assert!(!l.names_node(host, &site), "{host:?}");
        }
        assert!(!l.names_node(&format!("node01.{}", "a".repeat(260)), &site));
        // No domains: node names only.
        let none = domains(&[]);
        assert!(l.names_node("Node01", &none) && !l.names_node("node01.cluster.example.edu", &none));
        // Only ASCII letters fold: U+212A KELVIN SIGN is not "k".
        let k = domains(&["k.example.edu"]);
        assert!(l.names_node("node01.K.example.edu", &k) && !l.names_node("node01.\u{212A}.example.edu", &k));
    }

    #[test]
    fn domains_are_dns_names_from_the_setting_or_the_resolver() {
        assert_eq!(
            domains(&[" Cluster.Example.EDU ", "ib.example.edu", "cluster.example.edu"]).names(),
            ["cluster.example.edu", "ib.example.edu"]
        );
        for bad in ["", " ", "a..b", ".a", "a.", "a_b.edu", "a b", "node01.evil/x", "é.edu", &"a".repeat(64), "*.edu"]
        {
            let e = Domains::from_setting(&[bad]).unwrap_err().to_string();
            assert_eq!(e, format!("MULTITENANT_HOST_DOMAINS: {DOMAIN_RULE}, not {:?}", bad.trim()), "{bad:?}");
        }
        assert!(Domains::from_setting(&[&format!("{}.edu", "a".repeat(63))]).is_ok());
        // The last search/domain line wins, as in the resolver: the stale `domain example.edu` names nothing.
        let conf = "# search commented.example.org\n; domain also.commented\nnameserver 10.0.0.1\n\
                    domain example.edu\noptions ndots:2\nsearchx not.this\n\
                    search Cluster.Example.edu ib.example.edu. . bad_label.org cluster.example.edu # a comment\n";
        let r = Domains::from_resolv_conf_text(conf);
        assert_eq!(r.names(), ["cluster.example.edu", "ib.example.edu"]);
        assert_eq!(
            r.describe(),
            "domains: cluster.example.edu, ib.example.edu, from /etc/resolv.conf; set MULTITENANT_HOST_DOMAINS"
        );
        assert_eq!(
            Domains::from_resolv_conf_text("search a.example.org\ndomain b.example.org\n").names(),
            ["b.example.org"]
        );
        assert_eq!(
            Domains::from_resolv_conf_text("nameserver 10.0.0.1\n").describe(),
            "no domains in /etc/resolv.conf; set MULTITENANT_HOST_DOMAINS"
        );
        assert_eq!(
            domains(&["cluster.example.edu"]).describe(),
            "domains: cluster.example.edu, from MULTITENANT_HOST_DOMAINS"
        );
        // Read once: the same answer each time.
        assert_eq!(Domains::from_resolv_conf(), Domains::from_resolv_conf());
    }

    #[test]
    fn what_slurm_does_not_write_is_refused_with_its_reason() {
        for (bad, why) in [
            ("", "is empty"),
            ("node[1-2", "a \"[\" is not closed"),
            ("node1-2]", "a \"]\" without its \"[\""),
            ("node[[1-2]]", "brackets inside brackets"),
            ("node[]", "not decimal digits"),
            ("node[a-b]", "not decimal digits"),
            ("node[1-]", "not decimal digits"),
            ("node[-1]", "not decimal digits"),
            ("node[1-2-3]", "not decimal digits"),
            ("node[1,,2]", "not decimal digits"),
            ("node[5-1]", "runs backwards"),
            ("node[1234567890123456789]", "longer than 18 digits"),
            ("a,,b", "an empty name"),
            ("a,", "an empty name"),
            (",a", "an empty name"),
            ("a b", "U+0020 in a name"),
            ("a\nb", "U+000A in a name"),
            ("n[0-65536]", "more than 65536 nodes"),
            ("n[1-256]x[1-257]", "more than 65536 nodes"),
        ] {
            let e = HostList::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert_eq!(list("n[1-256]x[1-256]").len(), 65_536);
        assert_eq!(list("n[0-65535]").len(), 65_536);
        let huge = format!("n[{}]", vec!["1"; 40_000].join(","));
        assert!(HostList::parse(&huge).unwrap_err().contains("over 65536"));
        let e = HostList::parse(&format!("{}[", "n".repeat(300))).unwrap_err();
        assert!(e.contains("…") && e.len() < 300, "{e}");
    }

    /// A small deterministic generator (SplitMix64): the same cases every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len() as u64) as usize]
        }
    }

    /// A random list of the shapes Slurm prints: texts, bracket groups of ranges and single numbers
    /// with and without padding, several groups in a name, several names.
    fn random_list(rng: &mut Rng) -> String {
        let names = 1 + rng.below(4);
        (0..names)
            .map(|_| {
                let mut s = String::new();
                for _ in 0..1 + rng.below(3) {
                    s += rng.pick(&["n", "node", "gpu", "r-", "a.b", "x1", "", "N"]);
                    if rng.below(4) > 0 {
                        let width = rng.below(4) as usize;
                        let ranges: Vec<String> = (0..1 + rng.below(3))
                            .map(|_| {
                                let lo = rng.below(120);
                                let lo_s = format!("{lo:0width$}");
                                if rng.below(2) == 0 {
                                    lo_s
                                } else {
                                    format!("{lo_s}-{}", lo + rng.below(15))
                                }
                            })
                            .collect();
                        s += &format!("[{}]", ranges.join(","));
                    }
                }
                if s.is_empty() {
                    s = "solo".into();
                }
                s
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn membership_agrees_with_the_expanded_names() {
        let mut rng = Rng(20_261_130);
        let site = domains(&["cluster.example.edu"]);
        for _ in 0..400 {
            let text = random_list(&mut rng);
            let Ok(l) = HostList::parse(&text) else { continue };
            let all = expand(&l);
            assert_eq!(l.len(), all.len() as u64, "{text}");
            let names: BTreeSet<String> = all.into_iter().collect();
            // Every name of a short list, a sample of a long one.
            let step = names.len() / 500 + 1;
            for n in names.iter().step_by(step) {
                assert!(l.contains(n), "{text}: {n}");
                assert!(l.names_node(&format!("{n}.CLUSTER.example.edu"), &site), "{text}: {n}");
                assert!(!l.names_node(&format!("{n}.evil.example.com"), &site), "{text}: {n}");
                assert!(l.contains(&n.to_uppercase()), "{text}: {n}");
            }
            // Near misses: one character more, one fewer, one changed, a digit added or dropped.
            for n in names.iter().take(20) {
                let mut misses = vec![format!("{n}0"), format!("0{n}"), format!("{n}x"), n[..n.len() - 1].to_string()];
                if let Some(p) = n.find(|c: char| c.is_ascii_digit()) {
                    misses.push(format!("{}0{}", &n[..p], &n[p..]));
                    misses.push(format!("{}{}", &n[..p], &n[p + 1..]));
                    let d = n.as_bytes()[p] - b'0';
                    misses.push(format!("{}{}{}", &n[..p], (d + 1) % 10, &n[p + 1..]));
                }
                for m in misses {
                    assert_eq!(l.contains(&m), names.contains(&m), "{text}: {m}");
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics_and_never_matches_what_it_does_not_name() {
        let mut rng = Rng(7);
        let alphabet =
            ["[", "]", ",", "-", "0", "1", "9", "n", "0-", "[1", "]-", ",,", "é", "N", ".", "99999999999999999999"];
        for _ in 0..20_000 {
            let text: String = (0..rng.below(14)).map(|_| rng.pick(&alphabet)).collect();
            if let Ok(l) = HostList::parse(&text) {
                let names: BTreeSet<String> = expand(&l).into_iter().collect();
                for probe in ["n1", "n0", "1", "n", "n10", "n01", "é", "n-1"] {
                    assert_eq!(l.contains(probe), names.contains(probe), "{text:?}: {probe}");
                }
            }
        }
    }

    #[test]
    fn a_long_list_costs_no_more_than_its_length() {
        // 5 000 names written out, and a host that almost matches each.
        let text = (0..5000).map(|i| format!("node{i:05}")).collect::<Vec<_>>().join(",");
        let l = list(&text);
        let t = std::time::Instant::now();
        assert!(l.contains("node04999") && !l.contains("node05000"));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        // Many groups in one name, and a host of digits: piece by piece, no recursion.
        let groups = list(&"[0-9]".repeat(4));
        assert!(groups.contains("0123") && !groups.contains("01234"));
        let ones = list(&format!("n{}", "[1]".repeat(20_000)));
        assert!(!ones.contains(&format!("n{}", "1".repeat(200))));
        let ones = list(&format!("n{}", "[1]".repeat(200)));
        assert!(ones.contains(&format!("n{}", "1".repeat(200))));
        assert!(!ones.contains(&format!("n{}", "1".repeat(199))));
        let deep = format!("n{}", "[0-9]".repeat(60));
        assert!(HostList::parse(&deep).unwrap_err().contains("more than 65536"));
    }
}
