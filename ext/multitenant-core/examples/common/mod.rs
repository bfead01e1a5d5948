//! Shared by the example programs: a card message with the given app and connection values.

use std::collections::BTreeMap;

use multitenant_core::{Message, Method};

pub fn message(app: &str, conn: &[(&str, &str)]) -> Message {
    Message {
        session_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        app: app.into(),
        method: Method::Card,
        delivery: "sys/multitenant-delivery_default".into(),
        connection: conn.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        allow: None,
        expires_at: None,
    }
}
