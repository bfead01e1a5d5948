//! `MultiTenant.specs`: the shape the first implementation's client apps iterate, keyed by job id.
//! Built straight from the shares found, borrowing their strings: the extension turns each field
//! list into a Ruby hash once, sharing one frozen string for every value many shares repeat (owner,
//! cluster, group…), so a dashboard holding thousands of shares keeps little per share.

use std::borrow::Cow;

use crate::cards::{card_id, CardOptions};
use crate::discover::Found;
use crate::form_safe::{form_safe_name, form_safe_value};
use crate::message::Method;

/// One value of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field<'a> {
    /// A value particular to this share (its session id, app name, connection values).
    Own(&'a str),
    /// A value many shares repeat (owner, cluster, group, format, delivery app): shared between them.
    Common(&'a str),
    /// A value made for this spec (the card id, the allow-list).
    Made(String),
    Int(u64),
    Null,
}

impl<'a> Field<'a> {
    /// A value of this share: borrowed when it is the published text, made when it was rewritten.
    fn own(value: Cow<'a, str>) -> Self {
        match value {
            Cow::Borrowed(s) => Field::Own(s),
            Cow::Owned(s) => Field::Made(s),
        }
    }
}

/// One share's spec: `{"info" => {…}, "accounting" => {…}, "connection" => {…}}`, each a list of
/// (key, value) in the order Ruby sees them.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// The bare job id, or `<job id>@<Slurm cluster>` when several clusters are searched: digits, and a
    /// cluster name of letters, digits, `_ - .` (both checked by discovery), so safe in any form line.
    pub key: String,
    /// user (the job's owner, as Slurm reports it), app (the app name as published: for titles),
    /// cluster (Slurm's name), ood_cluster (the OOD
    /// cluster id a card names, `MULTITENANT_CLUSTERS`, else the Slurm name), group, version ("1", "2"
    /// or "legacy"), key_id, expires_at (epoch seconds or null), card_id (the viewer's card, or null
    /// when the viewer gets none: the owner's own share, a share that is not a card, a delivery app
    /// or cluster the site does not card, or discovery run without a data root).
    pub info: Vec<(&'static str, Field<'a>)>,
    /// The first implementation's keys: mtu (the allow-list, comma-separated; "" when the whole group
    /// sees the share), mti (session id), mta (the app name made safe for the first implementation's
    /// forms, [`form_safe_name`]), mtm (method), mtd (delivery app).
    pub accounting: Vec<(&'static str, Field<'a>)>,
    /// The connection values (an http(s) URL percent-encoded where a form could read syntax,
    /// [`form_safe_value`]; any other value as published), then `jobid` and `mt_appname` (as `mta`) as
    /// the first implementation added them.
    pub connection: Vec<(&'a str, Field<'a>)>,
}

/// The specs of the shares `found` for `viewer`, in the order found; `cards` are the card options when
/// discovery writes cards (then a card's id is given). With several clusters (`qualified`) keys carry
/// the cluster, since each cluster numbers its own jobs.
pub fn specs<'a>(found: &'a [Found], cards: Option<&'a CardOptions>, viewer: &str, qualified: bool) -> Vec<Spec<'a>> {
    found
        .iter()
        .map(|f| {
            let m = &f.share.message;
            let ood_cluster = cards.and_then(|c| c.cluster_map.get(&f.job.cluster)).unwrap_or(&f.job.cluster);
            // A card only where reconciliation would write one (a delivery app the site allows, a
            // mapped cluster): else the id would name a card that never exists.
            let carded = cards
                .is_some_and(|c| c.deliveries.contains(&m.delivery) && c.cluster_map.contains_key(&f.job.cluster))
                && m.method == Method::Card
                && f.job.owner != viewer;
            let opt = |v: Option<&'a str>| v.map_or(Field::Null, Field::Common);
            // What the first implementation's forms write unescaped into YAML is made safe there; the
            // name as published is info's "app".
            let app = form_safe_name(&m.app);
            let mut connection: Vec<(&str, Field)> = m
                .connection
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "jobid" | "mt_appname"))
                .map(|(k, v)| (k.as_str(), Field::own(form_safe_value(v))))
                .collect();
            connection.extend([("jobid", Field::Own(&f.job.id)), ("mt_appname", Field::own(app.clone()))]);
            Spec {
                key: if qualified { format!("{}@{}", f.job.id, f.job.cluster) } else { f.job.id.clone() },
                info: vec![
                    ("user", Field::Common(&f.job.owner)),
                    ("app", Field::Own(&m.app)),
                    ("cluster", Field::Common(&f.job.cluster)),
                    ("ood_cluster", Field::Common(ood_cluster)),
                    ("group", Field::Common(&f.share.group)),
                    ("version", Field::Common(&f.share.version)),
                    ("key_id", opt(f.share.key_id.as_deref())),
                    ("expires_at", m.expires_at.map_or(Field::Null, Field::Int)),
                    (
                        "card_id",
                        if carded {
                            Field::Made(card_id(&f.job.cluster, &f.job.id, &f.job.owner))
                        } else {
                            Field::Null
                        },
                    ),
                ],
                accounting: vec![
                    ("mtu", m.allow.as_ref().map_or(Field::Common(""), |a| Field::Made(a.join(",")))),
                    ("mti", Field::Own(&m.session_id)),
                    ("mta", Field::own(app)),
                    ("mtm", Field::Common(m.method.as_str())),
                    ("mtd", Field::Common(&m.delivery)),
                ],
                connection,
            }
        })
        .collect()
}
