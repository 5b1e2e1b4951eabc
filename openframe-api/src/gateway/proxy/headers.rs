//! Which headers cross the proxy: hop-by-hop headers never do, nor do the caller's
//! credentials (`Authorization`, `X-API-Key`, the `access_token` cookie); the tool's own
//! credential is added per its placement and marked sensitive so it is never logged.

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use openframe_core::{CredentialPlacement, IntegratedTool};

/// RFC 9110 hop-by-hop headers, plus `proxy-*`.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
}

/// The request headers sent to the tool: the caller's minus hop-by-hop headers, `Host`, the
/// caller's credentials and the WebSocket handshake headers (the client library sets its own).
pub(super) fn outbound(incoming: &HeaderMap) -> HeaderMap {
    let mut headers = incoming.clone();
    strip_hop_by_hop(&mut headers);
    for name in [
        header::HOST,
        header::AUTHORIZATION,
        HeaderName::from_static("x-api-key"),
        header::SEC_WEBSOCKET_KEY,
        header::SEC_WEBSOCKET_VERSION,
        header::SEC_WEBSOCKET_EXTENSIONS,
        header::SEC_WEBSOCKET_ACCEPT,
    ] {
        headers.remove(name);
    }
    let cookies: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("access_token"))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !cookies.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&cookies.join("; ")) {
            headers.insert(header::COOKIE, v);
        }
    }
    headers
}

/// Adds the tool's credential (header or bearer) to `headers`, replacing any caller value of
/// the same header.
pub(super) fn inject_credential(
    tool: &IntegratedTool,
    headers: &mut HeaderMap,
) -> Result<(), &'static str> {
    let Some(key) = tool.credentials.as_ref().and_then(|c| c.api_key.as_ref()) else {
        return Ok(());
    };
    let (name, value) = match key.placement {
        CredentialPlacement::None => return Ok(()),
        CredentialPlacement::BearerToken => (
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", key.key.expose())),
        ),
        CredentialPlacement::Header => {
            let name = key
                .header_name
                .as_deref()
                .and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .ok_or("the tool's credential header name is invalid")?;
            (name, HeaderValue::from_str(key.key.expose()))
        }
    };
    let mut value = value.map_err(|_| "the tool's credential is not a valid header value")?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(())
}

/// The response headers passed back to the caller: the tool's minus hop-by-hop headers.
pub(super) fn inbound(upstream: &HeaderMap) -> HeaderMap {
    let mut headers = upstream.clone();
    strip_hop_by_hop(&mut headers);
    headers
}
