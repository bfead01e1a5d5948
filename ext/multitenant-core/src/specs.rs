//! `MultiTenant.specs`: the shape the first implementation's client apps iterate, keyed by job id.

use serde_json::{json, Map, Value};

use crate::cards::{card_id, db_file, output_dir, CardOptions};
use crate::discover::Found;
use crate::message::Method;

/// `{job id => {"info" => {…}, "accounting" => {"mtu","mti","mta","mtm","mtd"}, "connection" => {…}}}`.
/// The key is the bare job id, as in the first implementation, when one cluster is searched; with
/// several (`qualified`) it is `<job id>@<Slurm cluster>`, since each cluster numbers its own jobs.
pub fn specs(found: &[Found], cards: Option<&CardOptions>, viewer: &str, qualified: bool) -> Value {
    let mut out = Map::new();
    for f in found {
        let m = &f.share.message;
        let ood_cluster = cards.and_then(|c| c.cluster_map.get(&f.job.cluster)).unwrap_or(&f.job.cluster);
        let carded = cards.is_some() && m.method == Method::Card && f.job.owner != viewer;
        let id = card_id(&f.job.cluster, &f.job.id, &f.job.owner);
        let paths = carded.then(|| {
            let c = cards.expect("carded implies card options");
            let db = c.dataroot.join(db_file(&id)).display().to_string();
            let output = c.dataroot.join(output_dir(c.per_cluster, ood_cluster, &m.delivery, &id));
            (db, output.display().to_string())
        });
        let (db, output) = paths.unzip();
        let mut connection: Map<String, Value> = m.connection.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        connection.insert("jobid".into(), json!(f.job.id));
        connection.insert("mt_appname".into(), json!(m.app));
        let key = if qualified { format!("{}@{}", f.job.id, f.job.cluster) } else { f.job.id.clone() };
        out.insert(
            key,
            json!({
                "info": {
                    "user": f.job.owner, "cluster": f.job.cluster, "ood_cluster": ood_cluster, "group": f.share.group,
                    "version": f.share.version, "key_id": f.share.key_id, "message": f.job.name,
                    "message_size": f.share.size, "expires_at": m.expires_at, "card_id": carded.then_some(&id), "db": db, "output": output,
                },
                "accounting": {
                    "mtu": m.allow.as_ref().map(|a| a.join(",")).unwrap_or_default(),
                    "mti": m.session_id, "mta": m.app, "mtm": m.method.as_str(), "mtd": m.delivery,
                },
                "connection": connection,
            }),
        );
    }
    Value::Object(out)
}
