//! The WebSocket relay: upstream `INFO`, the rewritten `CONNECT`, then frames both ways.

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Upstream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::inbox::{ClientRewriter, Inbox, Refused, ServerRewriter};
use super::{Shared, UserCredentials, error};
use crate::sessions::{Session, SessionEnd, session_end};

/// Longest `INFO` or `CONNECT` line read before relaying (NATS' own limit is 4 KiB of control
/// line; `CONNECT` may carry a JWT).
const MAX_LINE: usize = 64 << 10;

/// The `CONNECT` fields that carry credentials; all are dropped from the client's.
const CREDENTIAL_FIELDS: [&str; 6] = ["user", "pass", "auth_token", "jwt", "sig", "nkey"];

type UpstreamSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The upstream connection after its `INFO`.
struct Prepared {
    socket: UpstreamSocket,
    /// Everything read so far (the `INFO` line and whatever followed), to pass on.
    greeting: Bytes,
    nonce: String,
}

/// What one proxied session is confined to.
#[derive(Debug)]
pub(super) struct Scope {
    /// Its inbox namespace.
    pub(super) inbox: Inbox,
    /// `machine.<id>.`: where its JetStream consumers may deliver besides the inbox.
    pub(super) own_subjects: Option<String>,
    /// The agent session (ends the relay on token expiry, uninstall, disabling).
    pub(super) session: Option<Session>,
}

#[derive(Debug)]
enum Failure {
    Upstream(&'static str),
    Client(&'static str),
}

/// Connects upstream and reads `INFO`, then upgrades the client and relays.
pub(super) async fn open(
    config: Shared,
    ws: WebSocketUpgrade,
    creds: UserCredentials,
    scope: Scope,
    label: String,
) -> Response {
    let prepared = match tokio::time::timeout(config.handshake_timeout, connect(&config)).await {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(Failure::Upstream(reason) | Failure::Client(reason))) => {
            tracing::warn!(reason, "NATS upstream unavailable");
            return unavailable();
        }
        Err(_) => {
            tracing::warn!("NATS upstream handshake timed out");
            return unavailable();
        }
    };
    let limit = config.max_client_message_bytes;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |client| async move {
            match relay(&config, client, prepared, &creds, scope).await {
                Ok(()) => tracing::debug!(session = %label, "NATS session ended"),
                Err(Failure::Client(reason)) => {
                    tracing::info!(session = %label, reason, "NATS session refused");
                }
                Err(Failure::Upstream(reason)) => {
                    tracing::warn!(session = %label, reason, "NATS session failed upstream");
                }
            }
        })
}

fn unavailable() -> Response {
    error(
        StatusCode::BAD_GATEWAY,
        "BAD_GATEWAY",
        "the message broker is unavailable",
    )
}

async fn connect(config: &Shared) -> Result<Prepared, Failure> {
    let limit = config.max_upstream_message_bytes;
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(
        config.upstream.as_str(),
        Some(ws_config),
        true,
    )
    .await
    .map_err(|_| Failure::Upstream("could not connect"))?;
    let mut buffer = Vec::new();
    let line_end = loop {
        if let Some(end) = find_crlf(&buffer) {
            break end;
        }
        if buffer.len() > MAX_LINE {
            return Err(Failure::Upstream("INFO too long"));
        }
        match socket.next().await {
            Some(Ok(Upstream::Binary(b))) => buffer.extend_from_slice(&b),
            Some(Ok(Upstream::Text(t))) => buffer.extend_from_slice(t.as_bytes()),
            Some(Ok(Upstream::Ping(_) | Upstream::Pong(_) | Upstream::Frame(_))) => {}
            Some(Ok(Upstream::Close(_))) | None | Some(Err(_)) => {
                return Err(Failure::Upstream("closed before INFO"));
            }
        }
    };
    let info = parse_op(&buffer[..line_end], "INFO").ok_or(Failure::Upstream("no INFO"))?;
    let nonce = info
        .get("nonce")
        .and_then(Value::as_str)
        .ok_or(Failure::Upstream(
            "INFO without nonce (not in operator mode?)",
        ))?
        .to_owned();
    Ok(Prepared {
        socket,
        greeting: Bytes::from(buffer),
        nonce,
    })
}

/// Index of the first `\r\n`.
fn find_crlf(buffer: &[u8]) -> Option<usize> {
    buffer.windows(2).position(|w| w == b"\r\n")
}

/// Parses `OP {json}` (operation name case-insensitive) into its JSON object.
fn parse_op(line: &[u8], op: &str) -> Option<serde_json::Map<String, Value>> {
    let line = std::str::from_utf8(line).ok()?.trim();
    let (name, rest) = line.split_once([' ', '\t'])?;
    if !name.eq_ignore_ascii_case(op) {
        return None;
    }
    match serde_json::from_str(rest.trim()).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The client's `CONNECT` with its credentials replaced by `creds` and the signed nonce.
fn rewrite_connect(line: &[u8], creds: &UserCredentials, nonce: &str) -> Result<Vec<u8>, Failure> {
    let mut connect =
        parse_op(line, "CONNECT").ok_or(Failure::Client("first op is not CONNECT"))?;
    for field in CREDENTIAL_FIELDS {
        connect.remove(field);
    }
    let sig = creds
        .sign_nonce(nonce)
        .map_err(|_| Failure::Upstream("could not sign the nonce"))?;
    connect.insert("jwt".to_owned(), Value::String(creds.jwt().to_owned()));
    connect.insert("sig".to_owned(), Value::String(sig));
    let json = serde_json::to_vec(&connect).map_err(|_| Failure::Upstream("could not encode"))?;
    let mut out = Vec::with_capacity(json.len() + 10);
    out.extend_from_slice(b"CONNECT ");
    out.extend_from_slice(&json);
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

async fn relay(
    config: &Shared,
    mut client: WebSocket,
    prepared: Prepared,
    creds: &UserCredentials,
    scope: Scope,
) -> Result<(), Failure> {
    let Prepared {
        socket: mut upstream,
        greeting,
        nonce,
    } = prepared;
    let Scope {
        inbox,
        own_subjects,
        session,
    } = scope;
    let mut down = ServerRewriter::new(inbox.clone());
    let mut up = ClientRewriter::new(inbox, own_subjects);
    let mut greeting_out = Vec::with_capacity(greeting.len());
    down.feed(&greeting, &mut greeting_out)
        .map_err(|_| Failure::Upstream("garbled INFO"))?;
    client
        .send(Message::Binary(Bytes::from(greeting_out)))
        .await
        .map_err(|_| Failure::Client("client gone"))?;
    let first = tokio::time::timeout(config.handshake_timeout, read_line(&mut client))
        .await
        .map_err(|_| Failure::Client("no CONNECT in time"))??;
    let (line, rest) = first;
    let mut connect = match rewrite_connect(&line, creds, &nonce) {
        Ok(connect) => connect,
        Err(e) => {
            let _ = client
                .send(Message::Binary(Bytes::from_static(
                    b"-ERR 'Authorization Violation'\r\n",
                )))
                .await;
            let _ = client.close().await;
            return Err(e);
        }
    };
    if let Err(Refused(reason)) = up.feed(&rest, &mut connect) {
        refuse(&mut client, reason).await;
        return Err(Failure::Client(reason));
    }
    upstream
        .send(Upstream::Binary(Bytes::from(connect)))
        .await
        .map_err(|_| Failure::Upstream("could not send CONNECT"))?;
    pump(client, upstream, up, down, session).await
}

/// Sends `-ERR '<reason>'` and closes the client.
async fn refuse(client: &mut WebSocket, reason: &str) {
    let _ = client
        .send(Message::Binary(Bytes::from(format!("-ERR '{reason}'\r\n"))))
        .await;
    let _ = client.close().await;
}

/// The `-ERR` text for a session that ended.
fn end_notice(end: SessionEnd) -> &'static str {
    match end {
        SessionEnd::TokenExpired => "User Authentication Expired",
        SessionEnd::Uninstalled | SessionEnd::Disabled => "Authorization Violation",
    }
}

/// Reads client frames until a whole line: `(line without CRLF, bytes after CRLF)`.
async fn read_line(client: &mut WebSocket) -> Result<(Vec<u8>, Vec<u8>), Failure> {
    let mut buffer = Vec::new();
    loop {
        if let Some(end) = find_crlf(&buffer) {
            let rest = buffer.split_off(end + 2);
            buffer.truncate(end);
            return Ok((buffer, rest));
        }
        if buffer.len() > MAX_LINE {
            return Err(Failure::Client("CONNECT too long"));
        }
        match client.recv().await {
            Some(Ok(Message::Binary(b))) => buffer.extend_from_slice(&b),
            Some(Ok(Message::Text(t))) => buffer.extend_from_slice(t.as_str().as_bytes()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                return Err(Failure::Client("closed before CONNECT"));
            }
        }
    }
}

/// How a relay ended.
enum Outcome {
    /// A side closed or failed.
    Closed,
    /// The client sent something it may not.
    Refused(&'static str),
    /// nats-server sent something that is not NATS.
    Garbled,
    /// The agent's session ended.
    Ended(SessionEnd),
}

/// Relays frames both ways, rewriting inboxes, until either side closes or fails, the client
/// breaks a rule, or the session ends; then closes both (telling the client why with `-ERR`).
async fn pump(
    client: WebSocket,
    upstream: UpstreamSocket,
    mut up: ClientRewriter,
    mut down: ServerRewriter,
    mut session: Option<Session>,
) -> Result<(), Failure> {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    let to_upstream = async {
        let mut out = Vec::new();
        while let Some(Ok(message)) = client_rx.next().await {
            let data = match message {
                Message::Binary(b) => b,
                Message::Text(t) => Bytes::copy_from_slice(t.as_str().as_bytes()),
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Close(_) => break,
            };
            if let Err(Refused(reason)) = up.feed(&data, &mut out) {
                return Outcome::Refused(reason);
            }
            if out.is_empty() {
                continue;
            }
            let chunk = Bytes::from(std::mem::take(&mut out));
            if upstream_tx.send(Upstream::Binary(chunk)).await.is_err() {
                break;
            }
        }
        Outcome::Closed
    };
    let to_client = async {
        let mut out = Vec::new();
        while let Some(Ok(message)) = upstream_rx.next().await {
            let data = match message {
                Upstream::Binary(b) => b,
                Upstream::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
                Upstream::Ping(_) | Upstream::Pong(_) | Upstream::Frame(_) => continue,
                Upstream::Close(_) => break,
            };
            if down.feed(&data, &mut out).is_err() {
                return Outcome::Garbled;
            }
            if out.is_empty() {
                continue;
            }
            let chunk = Bytes::from(std::mem::take(&mut out));
            if client_tx.send(Message::Binary(chunk)).await.is_err() {
                break;
            }
        }
        Outcome::Closed
    };
    let outcome = tokio::select! {
        outcome = to_upstream => outcome,
        outcome = to_client => outcome,
        end = session_end(session.as_mut()) => Outcome::Ended(end),
    };
    let notice = match outcome {
        Outcome::Closed | Outcome::Garbled => None,
        Outcome::Refused(reason) => Some(reason),
        Outcome::Ended(end) => Some(end_notice(end)),
    };
    if let Some(notice) = notice {
        let _ = client_tx
            .send(Message::Binary(Bytes::from(format!("-ERR '{notice}'\r\n"))))
            .await;
    }
    let _ = client_tx.close().await;
    let _ = upstream_tx.close().await;
    match outcome {
        Outcome::Closed => Ok(()),
        Outcome::Refused(reason) => Err(Failure::Client(reason)),
        Outcome::Garbled => Err(Failure::Upstream("not the NATS protocol")),
        Outcome::Ended(end) => {
            tracing::info!(reason = end.as_str(), "NATS session ended by the server");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nats_proxy::NatsAuthority;
    use openframe_core::MachineId;

    #[test]
    fn connect_credentials_are_replaced() {
        let authority = NatsAuthority::generate("t");
        let creds = authority
            .user_jwt_for(&MachineId::parse("m1").unwrap(), None)
            .unwrap();
        let line = br#"CONNECT {"name":"m1","user":"machine","pass":"","jwt":"forged","sig":"x","nkey":"U","auth_token":"t","headers":true}"#;
        let out = rewrite_connect(line, &creds, "nonce").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("\r\n"));
        let map = parse_op(text.trim_end().as_bytes(), "CONNECT").unwrap();
        assert_eq!(map["jwt"], creds.jwt());
        assert_eq!(map["sig"], creds.sign_nonce("nonce").unwrap());
        assert_eq!(map["name"], "m1");
        assert_eq!(map["headers"], true);
        for field in ["user", "pass", "nkey", "auth_token"] {
            assert!(!map.contains_key(field), "{field}");
        }
        assert!(rewrite_connect(b"PUB x 0", &creds, "n").is_err());
    }
}
