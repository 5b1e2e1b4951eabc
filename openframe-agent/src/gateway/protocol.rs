//! The JSON frames of the agent WebSocket (see the [module docs](super) for the protocol).
//!
//! Shared by the server ([`super::router`]) and the agent SDK, and public so agents written
//! in other languages have one reference.
//!
//! ```
//! use openframe_agent::bus::Headers;
//! use openframe_agent::gateway::protocol::{ClientFrame, WirePayload};
//!
//! let frame = ClientFrame::Pub {
//!     rid: Some(1),
//!     subject: "machine.m1.heartbeat".into(),
//!     payload: WirePayload::encode(b"{}"),
//!     headers: Default::default(),
//! };
//! let json = serde_json::to_string(&frame).unwrap();
//! assert_eq!(json, r#"{"op":"pub","rid":1,"subject":"machine.m1.heartbeat","payload":"{}"}"#);
//! let back: ClientFrame = serde_json::from_str(&json).unwrap();
//! assert_eq!(back, frame);
//! assert_eq!(WirePayload::encode(&[0xff, 0x00]).encoding.is_some(), true);
//! # let _ = Headers::new();
//! ```

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openframe_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::bus::Headers;

/// How a frame's `payload` string encodes the payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadEncoding {
    /// Standard base64 (with padding).
    Base64,
}

/// A payload on the wire: the UTF-8 text itself, or base64 when `encoding` says so.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WirePayload {
    /// The payload text, or its base64 form.
    #[serde(default)]
    pub payload: String,
    /// `Some(Base64)` when `payload` is base64; absent for UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<PayloadEncoding>,
}

impl std::fmt::Debug for WirePayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Payloads carry scripts and secrets: show the size only.
        f.debug_struct("WirePayload")
            .field("payload", &format_args!("<{} chars>", self.payload.len()))
            .field("encoding", &self.encoding)
            .finish()
    }
}

impl WirePayload {
    /// Encodes `bytes`: as text when they are UTF-8, as base64 otherwise.
    pub fn encode(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self {
                payload: text.to_owned(),
                encoding: None,
            },
            Err(_) => Self {
                payload: STANDARD.encode(bytes),
                encoding: Some(PayloadEncoding::Base64),
            },
        }
    }

    /// The payload bytes; `InvalidInput` on `payload` for bad base64.
    pub fn decode(&self) -> Result<Vec<u8>> {
        match self.encoding {
            None => Ok(self.payload.as_bytes().to_vec()),
            Some(PayloadEncoding::Base64) => STANDARD
                .decode(self.payload.as_bytes())
                .map_err(|_| Error::invalid("payload", "is not valid base64")),
        }
    }
}

/// The values of one header on the wire: one string, or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderValues {
    /// A single value.
    One(String),
    /// Several values, in order.
    Many(Vec<String>),
}

/// Headers on the wire: `{"name": "value"}` or `{"name": ["v1", "v2"]}`.
pub type WireHeaders = BTreeMap<String, HeaderValues>;

/// Converts wire headers to bus headers.
pub fn headers_from_wire(wire: &WireHeaders) -> Headers {
    let mut headers = Headers::new();
    for (name, values) in wire {
        match values {
            HeaderValues::One(v) => headers.append(name.clone(), v.clone()),
            HeaderValues::Many(vs) => {
                for v in vs {
                    headers.append(name.clone(), v.clone());
                }
            }
        }
    }
    headers
}

/// Converts bus headers to wire headers (one value as a string, several as a list).
pub fn headers_to_wire(headers: &Headers) -> WireHeaders {
    headers
        .entries()
        .map(|(name, values)| {
            let wire = match values.as_slice() {
                [one] => HeaderValues::One(one.clone()),
                many => HeaderValues::Many(many.to_vec()),
            };
            (name.clone(), wire)
        })
        .collect()
}

/// Where a new durable consumer starts, on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireDeliver {
    /// From the first stored message.
    All,
    /// Only messages published after the consumer was created.
    New,
}

/// A frame the agent sends. Every frame is answered by exactly one `ok` or `err` frame that
/// echoes its `rid` (request id), if it had one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ClientFrame {
    /// Publish (ephemerally) on a subject of the agent's own machine.
    Pub {
        /// Request id, echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// The concrete subject.
        subject: String,
        /// The payload.
        #[serde(flatten)]
        payload: WirePayload,
        /// Headers (a `tenant` header is replaced by the server's).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: WireHeaders,
    },
    /// Subscribe to a subject or pattern; messages arrive as `msg` frames with this `sid`.
    Sub {
        /// Request id, echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// The subscription id chosen by the agent (unique on the connection).
        sid: String,
        /// The subject or pattern.
        subject: String,
    },
    /// End a subscription or a consumer binding.
    Unsub {
        /// Request id, echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// The subscription id.
        sid: String,
    },
    /// Bind a durable consumer; deliveries arrive as `delivery` frames with this `sid`.
    Consume {
        /// Request id, echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// The subscription id chosen by the agent (unique on the connection).
        sid: String,
        /// The stream.
        stream: String,
        /// The durable name: must start with `machine_{machineId}_`.
        durable: String,
        /// The filter subject (required: it confines the consumer to the machine).
        filter: String,
        /// Where a new consumer starts (default `all`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deliver: Option<WireDeliver>,
        /// Redelivery delay of unacknowledged deliveries, ms (default 120 000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ack_wait_ms: Option<u64>,
        /// Most deliveries of one message (default 10).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_deliver: Option<u32>,
    },
    /// Acknowledge a delivery: processed.
    Ack {
        /// Request id, echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// The delivery id.
        id: u64,
    },
    /// Refuse a delivery: redeliver it (after `delay_ms`, or at once).
    Nak {
        /// Request id, echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// The delivery id.
        id: u64,
        /// Redelivery delay, ms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay_ms: Option<u64>,
    },
    /// Terminate a delivery: never redeliver it although it was not processed.
    Term {
        /// Request id, echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// The delivery id.
        id: u64,
    },
    /// Still working on a delivery: restart its ack timer (it stays pending).
    Progress {
        /// Request id, echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// The delivery id.
        id: u64,
    },
}

impl ClientFrame {
    /// The request id.
    pub fn rid(&self) -> Option<u64> {
        match self {
            Self::Pub { rid, .. }
            | Self::Sub { rid, .. }
            | Self::Unsub { rid, .. }
            | Self::Consume { rid, .. }
            | Self::Ack { rid, .. }
            | Self::Nak { rid, .. }
            | Self::Term { rid, .. }
            | Self::Progress { rid, .. } => *rid,
        }
    }
}

/// A frame the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ServerFrame {
    /// A message of a subscription.
    Msg {
        /// The subscription id.
        sid: String,
        /// The subject it was published on.
        subject: String,
        /// The payload.
        #[serde(flatten)]
        payload: WirePayload,
        /// Its headers.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: WireHeaders,
    },
    /// A delivery of a durable consumer; settle it with `ack`, `nak` or `term` and its `id`.
    Delivery {
        /// The subscription id of the `consume`.
        sid: String,
        /// The delivery id (unique on the connection).
        id: u64,
        /// The subject it was published on.
        subject: String,
        /// The payload.
        #[serde(flatten)]
        payload: WirePayload,
        /// Its headers.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: WireHeaders,
        /// Which delivery of the message this is (1 on the first).
        delivered: u32,
        /// The consumer's `max_deliver`.
        max_deliver: u32,
    },
    /// A request failed (the connection stays open).
    Err {
        /// The request id of the failed frame, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        /// The subscription concerned, for failures of a subscription after it started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sid: Option<String>,
        /// A stable code: `FORBIDDEN`, `VALIDATION_ERROR`, `NOT_FOUND`, `CONFLICT`,
        /// `RATE_LIMITED`, `UNAVAILABLE`, `DATABASE_ERROR`, `INTERNAL_ERROR`.
        code: String,
        /// A secret-free description.
        message: String,
    },
    /// A request succeeded.
    Ok {
        /// The request id of the frame, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
    },
}

impl ServerFrame {
    /// The `err` frame for `error` (with its public message).
    pub fn error(rid: Option<u64>, sid: Option<String>, error: &Error) -> Self {
        Self::Err {
            rid,
            sid,
            code: error.code().as_str().to_owned(),
            message: error.public_message(),
        }
    }
}
