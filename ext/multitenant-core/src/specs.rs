//! `MultiTenant.specs`: the shape the first implementation's client apps iterate, keyed by job id.
//! Built straight from the shares found (borrowed, serialized once into Ruby objects by the
//! extension): a dashboard start with thousands of shares makes no intermediate copy.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::cards::{card_id, CardOptions};
use crate::discover::Found;
use crate::message::Method;

/// `{job id => {"info" => {…}, "accounting" => {"mtu","mti","mta","mtm","mtd"}, "connection" => {…}}}`.
/// The key is the bare job id, as in the first implementation, when one cluster is searched; with
/// several (`qualified`) it is `<job id>@<Slurm cluster>`, since each cluster numbers its own jobs.
pub struct Specs<'a> {
    entries: Vec<(String, Spec<'a>)>,
}

impl Specs<'_> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Serialize for Specs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Serialized as a map with string keys (serde's structs become symbol-keyed hashes in Ruby), each
/// field in declaration order.
macro_rules! serialize_as_map {
    ($t:ident { $($f:ident),* }) => {
        impl Serialize for $t<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(None)?;
                $(map.serialize_entry(stringify!($f), &self.$f)?;)*
                map.end()
            }
        }
    };
}

serialize_as_map!(Spec { info, accounting, connection });
serialize_as_map!(Info { user, cluster, ood_cluster, group, version, key_id, expires_at, card_id });
serialize_as_map!(Accounting { mtu, mti, mta, mtm, mtd });

struct Spec<'a> {
    info: Info<'a>,
    accounting: Accounting<'a>,
    connection: Connection<'a>,
}

/// Who shared it, where, and the viewer's card: what the dashboard and admin tools read.
struct Info<'a> {
    /// The job's owner, as Slurm reports it.
    user: &'a str,
    /// The Slurm cluster name.
    cluster: &'a str,
    /// The OOD cluster id the card names (`MULTITENANT_CLUSTERS`), else the Slurm name.
    ood_cluster: &'a str,
    group: &'a str,
    /// Envelope version: "1", "2" or "legacy".
    version: &'a str,
    key_id: Option<&'a str>,
    expires_at: Option<u64>,
    /// The viewer's card for this share: `null` when the viewer gets none (the owner's own share,
    /// a share that is not a card, or discovery run without a data root).
    card_id: Option<String>,
}

/// The first implementation's `accounting` keys.
struct Accounting<'a> {
    /// The allow-list as comma-separated names; "" when the share has none (the whole group sees it).
    mtu: String,
    mti: &'a str,
    mta: &'a str,
    mtm: &'a str,
    mtd: &'a str,
}

/// The connection values, and `jobid` and `mt_appname` as the first implementation added them.
struct Connection<'a> {
    values: &'a BTreeMap<String, String>,
    jobid: &'a str,
    app: &'a str,
}

impl Serialize for Connection<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.values.len() + 2))?;
        for (k, v) in self.values.iter().filter(|(k, _)| !matches!(k.as_str(), "jobid" | "mt_appname")) {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry("jobid", self.jobid)?;
        map.serialize_entry("mt_appname", self.app)?;
        map.end()
    }
}

/// The specs of the shares `found` for `viewer`; `cards` are the card options when discovery writes
/// cards (then a card's id is given).
pub fn specs<'a>(found: &'a [Found], cards: Option<&'a CardOptions>, viewer: &str, qualified: bool) -> Specs<'a> {
    let entries = found
        .iter()
        .map(|f| {
            let m = &f.share.message;
            let ood_cluster = cards.and_then(|c| c.cluster_map.get(&f.job.cluster)).unwrap_or(&f.job.cluster);
            let carded = cards.is_some() && m.method == Method::Card && f.job.owner != viewer;
            let key = if qualified { format!("{}@{}", f.job.id, f.job.cluster) } else { f.job.id.clone() };
            let spec = Spec {
                info: Info {
                    user: &f.job.owner,
                    cluster: &f.job.cluster,
                    ood_cluster,
                    group: &f.share.group,
                    version: &f.share.version,
                    key_id: f.share.key_id.as_deref(),
                    expires_at: m.expires_at,
                    card_id: carded.then(|| card_id(&f.job.cluster, &f.job.id, &f.job.owner)),
                },
                accounting: Accounting {
                    mtu: m.allow.as_ref().map(|a| a.join(",")).unwrap_or_default(),
                    mti: &m.session_id,
                    mta: &m.app,
                    mtm: m.method.as_str(),
                    mtd: &m.delivery,
                },
                connection: Connection { values: &m.connection, jobid: &f.job.id, app: &m.app },
            };
            (key, spec)
        })
        .collect();
    Specs { entries }
}
