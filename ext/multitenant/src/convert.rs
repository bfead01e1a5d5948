//! Ruby-side field names for a message and a share (the wire uses one-letter names), and the specs
//! as Ruby objects.

use std::collections::{BTreeMap, HashMap};

use magnus::prelude::*;
use magnus::{Error, RArray, RHash, RString, Ruby, Value};
use multitenant_core::specs::{Field, Spec};
use multitenant_core::{Message, Method, Share};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct MessageFields {
    pub session_id: String,
    pub app: String,
    pub method: String,
    pub delivery: String,
    #[serde(default)]
    pub connection: BTreeMap<String, String>,
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    #[serde(default)]
    pub expires_at: Option<u64>,
}

impl MessageFields {
    pub fn into_message(self) -> multitenant_core::Result<Message> {
        Ok(Message {
            session_id: self.session_id,
            app: self.app,
            method: Method::parse(&self.method)?,
            delivery: self.delivery,
            connection: self.connection,
            allow: self.allow,
            expires_at: self.expires_at,
        })
    }
}

impl From<Message> for MessageFields {
    fn from(m: Message) -> Self {
        MessageFields {
            session_id: m.session_id,
            app: m.app,
            method: m.method.as_str().to_string(),
            delivery: m.delivery,
            connection: m.connection,
            allow: m.allow,
            expires_at: m.expires_at,
        }
    }
}

#[derive(Serialize)]
pub struct ShareFields {
    pub prefix: String,
    pub group: String,
    pub version: String,
    pub key_id: Option<String>,
    pub size: usize,
    pub message: MessageFields,
}

impl From<Share> for ShareFields {
    fn from(s: Share) -> Self {
        ShareFields {
            prefix: s.prefix,
            group: s.group,
            version: s.version,
            key_id: s.key_id,
            size: s.size,
            message: s.message.into(),
        }
    }
}

/// `MultiTenant.specs` as Ruby objects: `{key => {"info" => {…}, "accounting" => {…}, "connection" =>
/// {…}}}`. Hash keys are interned strings; a value many shares repeat (`Field::Common`: owner,
/// cluster, group…) is one frozen string shared by all of them, so thousands of shares cost a few
/// objects each.
pub fn specs_to_ruby(ruby: &Ruby, specs: &[Spec]) -> Result<RHash, Error> {
    let mut shared = Shared { keep: ruby.ary_new(), strings: HashMap::new() };
    let out = ruby.hash_new();
    for spec in specs {
        let one = ruby.hash_new();
        out.aset(spec.key.as_str(), one)?;
        let info = ruby.hash_new();
        one.aset(shared.get(ruby, "info")?, info)?;
        for (k, v) in &spec.info {
            info.aset(shared.get(ruby, k)?, shared.value(ruby, v)?)?;
        }
        let accounting = ruby.hash_new();
        one.aset(shared.get(ruby, "accounting")?, accounting)?;
        for (k, v) in &spec.accounting {
            accounting.aset(shared.get(ruby, k)?, shared.value(ruby, v)?)?;
        }
        let connection = ruby.hash_new();
        one.aset(shared.get(ruby, "connection")?, connection)?;
        for (k, v) in &spec.connection {
            connection.aset(shared.get(ruby, k)?, shared.value(ruby, v)?)?;
        }
    }
    Ok(out)
}

/// Frozen strings made once per call. Each is also kept in a Ruby array (held on this stack, so the
/// GC marks it) until the result holds it: a string held only in a Rust map would not be marked.
struct Shared<'a> {
    keep: RArray,
    strings: HashMap<&'a str, RString>,
}

impl<'a> Shared<'a> {
    fn get(&mut self, ruby: &Ruby, s: &'a str) -> Result<RString, Error> {
        if let Some(v) = self.strings.get(s) {
            return Ok(*v);
        }
        let v = ruby.str_new(s).to_interned_str();
        self.keep.push(v)?;
        self.strings.insert(s, v);
        Ok(v)
    }

    fn value(&mut self, ruby: &Ruby, f: &'a Field) -> Result<Value, Error> {
        Ok(match f {
            Field::Own(s) => ruby.str_new(s).as_value(),
            Field::Common(s) => self.get(ruby, s)?.as_value(),
            Field::Made(s) => ruby.str_new(s).as_value(),
            Field::Int(n) => ruby.integer_from_u64(*n).as_value(),
            Field::Null => ruby.qnil().as_value(),
        })
    }
}
