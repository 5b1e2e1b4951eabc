//! WebSocket pass-through: the upstream connection is opened first (so a failure is an
//! ordinary 502/504 answer), then the caller's upgrade is accepted and frames are relayed
//! both ways until either side closes.

use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TCloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as TMessage};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

use super::{ToolProxy, timeout_error, unavailable_error};
use crate::rest::{ApiError, ApiResult};

type Upstream = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

pub(super) async fn proxy(
    proxy: &ToolProxy,
    request: Request,
    mut url: Url,
    outbound: HeaderMap,
    key: &str,
) -> ApiResult<Response> {
    let (mut parts, _body) = request.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|_| ApiError::invalid("upgrade", "not a valid WebSocket upgrade"))?;
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme).map_err(|_| unavailable_error(key))?;
    let mut upstream_request = url
        .as_str()
        .into_client_request()
        .map_err(|_| unavailable_error(key))?;
    for (name, value) in &outbound {
        if name != header::ORIGIN && name != header::CONTENT_LENGTH {
            upstream_request
                .headers_mut()
                .append(name.clone(), value.clone());
        }
    }
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        upstream_request,
        None,
        false,
        Some(Connector::Rustls(proxy.tls.clone())),
    );
    let (upstream, response) = match tokio::time::timeout(proxy.connect_timeout, connect).await {
        Err(_) => return Err(timeout_error(key)),
        Ok(Err(e)) => {
            tracing::warn!(tool = key, error = %e, "tool proxy: websocket upstream failed");
            return Err(unavailable_error(key));
        }
        Ok(Ok(pair)) => pair,
    };
    let protocol = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let upgrade = match protocol {
        Some(p) => upgrade.protocols([p]),
        None => upgrade,
    };
    let tool = key.to_owned();
    Ok(upgrade
        .on_upgrade(move |client| async move {
            relay(client, upstream).await;
            tracing::debug!(tool = %tool, "tool proxy: websocket closed");
        })
        .into_response())
}

fn to_upstream(message: ws::Message) -> TMessage {
    match message {
        ws::Message::Text(t) => TMessage::Text(t.as_str().into()),
        ws::Message::Binary(b) => TMessage::Binary(b),
        ws::Message::Ping(b) => TMessage::Ping(b),
        ws::Message::Pong(b) => TMessage::Pong(b),
        ws::Message::Close(frame) => TMessage::Close(frame.map(|f| TCloseFrame {
            code: f.code.into(),
            reason: f.reason.as_str().into(),
        })),
    }
}

fn to_client(message: TMessage) -> Option<ws::Message> {
    Some(match message {
        TMessage::Text(t) => ws::Message::Text(t.as_str().into()),
        TMessage::Binary(b) => ws::Message::Binary(b),
        TMessage::Ping(b) => ws::Message::Ping(b),
        TMessage::Pong(b) => ws::Message::Pong(b),
        TMessage::Close(frame) => ws::Message::Close(frame.map(|f| ws::CloseFrame {
            code: f.code.into(),
            reason: f.reason.as_str().into(),
        })),
        TMessage::Frame(_) => return None,
    })
}

async fn relay(client: WebSocket, upstream: Upstream) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    let up = async {
        while let Some(Ok(message)) = client_rx.next().await {
            let close = matches!(message, ws::Message::Close(_));
            if upstream_tx.send(to_upstream(message)).await.is_err() || close {
                break;
            }
        }
        let _ = upstream_tx.close().await;
    };
    let down = async {
        while let Some(next) = upstream_rx.next().await {
            let message: Result<TMessage, tungstenite::Error> = next;
            let Ok(message) = message else { break };
            let close = matches!(message, TMessage::Close(_));
            if let Some(m) = to_client(message) {
                if client_tx.send(m).await.is_err() || close {
                    break;
                }
            }
        }
        let _ = client_tx.close().await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
