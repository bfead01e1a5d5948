//! Ruby-side field names for a message and a share (the wire uses one-letter names).

use std::collections::BTreeMap;

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
