//! `MultiTenant::Envelope`: seal, open and parse job names. `lib/multitenant/envelope.rb` adds the
//! keyword arguments.

use magnus::{function, prelude::*, Error, RArray, RHash, RModule, Ruby, TryConvert, Value};
use multitenant_core::Binding;

use crate::convert::{MessageFields, ShareFields};
use crate::error::{to_ruby, IntoRuby};
use crate::key::Key;

fn input(e: impl std::fmt::Display) -> Error {
    to_ruby(multitenant_core::Error::Invalid(format!("message: {e}")))
}

/// The run a name is bound to, as Ruby passes it: `cluster` "" when not known (v1 and legacy names
/// do not need it).
struct Job {
    job_id: String,
    owner: String,
    cluster: String,
    restarts: u32,
}

impl Job {
    fn binding(&self) -> Binding<'_> {
        Binding { job_id: &self.job_id, owner: &self.owner, cluster: &self.cluster, restarts: self.restarts }
    }
}

#[allow(clippy::too_many_arguments)]
fn seal(
    message: Value,
    key: &Key,
    prefix: String,
    group: String,
    job_id: String,
    owner: String,
    cluster: String,
    restarts: u32,
) -> Result<String, Error> {
    let fields: MessageFields = serde_magnus::deserialize(&Ruby::get().expect("from Ruby"), message).map_err(input)?;
    let msg = fields.into_message().rb()?;
    let job = Job { job_id, owner, cluster, restarts };
    multitenant_core::seal(&msg, &key.0, &prefix, &group, job.binding()).rb()
}

fn open(
    name: String,
    keys: RArray,
    job_id: String,
    owner: String,
    cluster: String,
    restarts: u32,
) -> Result<Value, Error> {
    let keys = keys.into_iter().map(|v| <&Key>::try_convert(v).map(|k| k.0.clone())).collect::<Result<Vec<_>, _>>()?;
    let job = Job { job_id, owner, cluster, restarts };
    let share = multitenant_core::open(&name, job.binding(), &keys).rb()?;
    to_value(ShareFields::from(share))
}

fn open_legacy(name: String, job_id: String, owner: String) -> Result<Value, Error> {
    let job = Job { job_id, owner, cluster: String::new(), restarts: 0 };
    let share = multitenant_core::open_legacy(&name, job.binding()).rb()?;
    to_value(ShareFields::from(share))
}

fn parse(ruby: &Ruby, name: String) -> Result<RHash, Error> {
    let parsed = multitenant_core::parse(&name).rb()?;
    let hash = ruby.hash_new();
    hash.aset("prefix", parsed.prefix)?;
    hash.aset("group", parsed.group)?;
    hash.aset("version", parsed.format.version_str())?;
    hash.aset("key_id", parsed.format.key_id_hex())?;
    hash.aset("size", name.len())?;
    Ok(hash)
}

/// Through a JSON value so that Ruby gets String keys, as in `MultiTenant.specs`.
fn to_value(fields: ShareFields) -> Result<Value, Error> {
    let json = serde_json::to_value(fields).expect("share fields always serialize");
    serde_magnus::serialize(&Ruby::get().expect("from Ruby"), &json)
}

pub fn init(_ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let envelope = module.define_module("Envelope")?;
    envelope.const_set("NAME_LIMIT", multitenant_core::NAME_LIMIT)?;
    envelope.const_set("DEFAULT_PREFIX", multitenant_core::DEFAULT_PREFIX)?;
    envelope.define_singleton_method("_seal", function!(seal, 8))?;
    envelope.define_singleton_method("_open", function!(open, 6))?;
    envelope.define_singleton_method("_open_legacy", function!(open_legacy, 3))?;
    envelope.define_singleton_method("_parse", function!(parse, 1))?;
    Ok(())
}
