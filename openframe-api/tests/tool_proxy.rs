//! The tool proxy against real local upstream servers (plain HTTP, TLS with a private CA,
//! WebSocket): credentials, headers, query, streaming, TLS verification, timeouts, tenant
//! isolation and hostile paths.

mod support_rest;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use futures::{SinkExt, StreamExt};
use openframe_api::gateway::{GatewayConfig, ToolProxyConfig};
use openframe_core::{CredentialPlacement, Secret, ToolApiKey, ToolCredentials};
use serde_json::{Value, json};
use support_rest::{Options, Platform, error_code};
use tokio::sync::mpsc;
use tower::ServiceExt;

fn bearer(key: &str) -> ToolCredentials {
    ToolCredentials {
        username: None,
        password: None,
        api_key: Some(ToolApiKey {
            key: Secret::new(key),
            placement: CredentialPlacement::BearerToken,
            header_name: None,
        }),
    }
}

fn header_cred(name: &str, key: &str) -> ToolCredentials {
    ToolCredentials {
        username: None,
        password: None,
        api_key: Some(ToolApiKey {
            key: Secret::new(key),
            placement: CredentialPlacement::Header,
            header_name: Some(name.into()),
        }),
    }
}

/// What the upstream saw of the last request.
#[derive(Debug, Default, Clone)]
struct Seen(Arc<Mutex<Option<HeaderMap>>>);

/// Controls of the streaming routes.
#[derive(Clone)]
struct Streams {
    down: Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>,
    up_first_chunk: mpsc::Sender<usize>,
}

async fn echo(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
        .collect();
    let answer = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    (
        StatusCode::CREATED,
        [("x-upstream", "yes")],
        axum::Json(answer),
    )
        .into_response()
}

fn upstream_app(seen: Seen, streams: Streams) -> Router {
    let down = streams.down.clone();
    let up = streams.up_first_chunk.clone();
    let ws_seen = seen.clone();
    Router::new()
        .route("/echo", any(echo))
        .route("/bare-404", get(|| async { StatusCode::NOT_FOUND }))
        .route("/echo/{*rest}", any(echo))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/stream-down",
            get(move || {
                let rx = down.lock().unwrap().take().unwrap();
                async move {
                    let stream = futures::stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
                    });
                    Body::from_stream(stream)
                }
            }),
        )
        .route(
            "/stream-up",
            post(move |request: Request| {
                let up = up.clone();
                async move {
                    let mut stream = request.into_body().into_data_stream();
                    let mut total = 0;
                    let mut first = true;
                    while let Some(chunk) = stream.next().await {
                        total += chunk.unwrap().len();
                        if first {
                            up.send(total).await.unwrap();
                            first = false;
                        }
                    }
                    total.to_string()
                }
            }),
        )
        .route(
            "/ws",
            get(move |ws: WebSocketUpgrade, headers: HeaderMap| {
                *ws_seen.0.lock().unwrap() = Some(headers);
                async move {
                    ws.on_upgrade(|mut socket| async move {
                        while let Some(Ok(m)) = socket.recv().await {
                            if let Message::Text(t) = m {
                                let reply = format!("echo: {}", t.as_str());
                                if socket.send(Message::Text(reply.into())).await.is_err() {
                                    break;
                                }
                            }
                        }
                    })
                }
            }),
        )
}

struct Upstream {
    base: String,
    seen: Seen,
    down_tx: mpsc::Sender<Bytes>,
    up_rx: mpsc::Receiver<usize>,
}

async fn upstream() -> Upstream {
    let (down_tx, down_rx) = mpsc::channel(4);
    let (up_tx, up_rx) = mpsc::channel(4);
    let seen = Seen::default();
    let app = upstream_app(
        seen.clone(),
        Streams {
            down: Arc::new(Mutex::new(Some(down_rx))),
            up_first_chunk: up_tx,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Upstream {
        base,
        seen,
        down_tx,
        up_rx,
    }
}

#[tokio::test]
async fn credential_injected_caller_credentials_removed_query_and_status_kept() {
    let up = upstream().await;
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    p.tool(&acme.id, "mesh", &up.base, |t| {
        t.credentials = Some(bearer("tok-mesh"))
    })
    .await;
    p.tool(&acme.id, "fleet", &format!("{}/echo/base/", up.base), |t| {
        t.credentials = Some(header_cred("X-Fleet-Token", "tok-fleet"))
    })
    .await;

    let r = p
        .http
        .post(p.url("/tools/mesh/echo/a/b?x=1&y=two%20words&authorization=Bearer%20leak"))
        .bearer_auth(&acme.admin_token)
        .header(
            "cookie",
            format!("access_token={}; session=abc", acme.admin_token),
        )
        .header(
            "x-api-key",
            "ak_0000000000000000.sk_00000000000000000000000000000000",
        )
        .header("x-custom", "kept")
        .header("x-request-id", "req-123")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "the upstream status passes through");
    assert_eq!(r.headers()["x-upstream"], "yes");
    assert_eq!(r.headers()["x-request-id"], "req-123");
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/echo/a/b");
    assert_eq!(seen["query"], "x=1&y=two%20words");
    assert_eq!(seen["body"], "payload");
    let h = &seen["headers"];
    assert_eq!(h["authorization"], "Bearer tok-mesh");
    assert_eq!(h["cookie"], "session=abc");
    assert!(h.get("x-api-key").is_none());
    assert_eq!(h["x-custom"], "kept");
    assert_eq!(h["x-request-id"], "req-123");
    assert!(
        !seen.to_string().contains(&acme.admin_token),
        "the caller's token never reaches the tool"
    );

    // The tool's own errors pass through untouched (not rewritten into the gateway's shape).
    let r = p.get("/tools/mesh/bare-404", Some(&acme.admin_token)).await;
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("content-type").is_none());
    assert_eq!(r.text().await.unwrap(), "");

    // Header placement, under the tool's base path; the caller's Authorization is dropped.
    let r = p
        .http
        .get(p.url("/tools/fleet/hosts?page=2"))
        .bearer_auth(&acme.admin_token)
        .header("x-fleet-token", "caller-forged")
        .send()
        .await
        .unwrap();
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["path"], "/echo/base/hosts");
    assert_eq!(seen["query"], "page=2");
    assert_eq!(seen["headers"]["x-fleet-token"], "tok-fleet");
    assert!(seen["headers"].get("authorization").is_none());
}

#[tokio::test]
async fn disabled_unknown_and_other_tenants_tools_are_refused() {
    let up = upstream().await;
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    let globex = p.tenant("globex").await;
    p.tool(&acme.id, "off", &up.base, |t| t.enabled = false)
        .await;
    p.tool(&globex.id, "globex-mesh", &up.base, |t| {
        t.credentials = Some(bearer("globex-secret"))
    })
    .await;
    p.tool(&acme.id, "nourl", &up.base, |t| t.urls.clear())
        .await;

    assert_eq!(
        error_code(p.get("/tools/off/echo", Some(&acme.admin_token)).await).await,
        (409, "TOOL_DISABLED".to_owned())
    );
    assert_eq!(
        error_code(p.get("/tools/nourl/echo", Some(&acme.admin_token)).await).await,
        (409, "TOOL_NOT_CONFIGURED".to_owned())
    );
    assert_eq!(
        error_code(p.get("/tools/unknown/echo", Some(&acme.admin_token)).await).await,
        (404, "NOT_FOUND".to_owned())
    );
    // Acme's admin cannot reach Globex's tool: the same 404 as an unknown key.
    let r = p
        .get("/tools/globex-mesh/echo", Some(&acme.admin_token))
        .await;
    assert_eq!(error_code(r).await, (404, "NOT_FOUND".to_owned()));
    assert_eq!(
        p.get("/tools/globex-mesh/echo", Some(&globex.admin_token))
            .await
            .status(),
        201
    );

    // Credentials and roles.
    assert_eq!(p.get("/tools/globex-mesh/echo", None).await.status(), 401);
    let viewer = p
        .token(&globex.id, Some(globex.owner.clone()), &["VIEWER"])
        .await;
    assert_eq!(
        p.get("/tools/globex-mesh/echo", Some(&viewer))
            .await
            .status(),
        403
    );
    let key = p.api_key(&globex, &["*"]).await;
    assert_eq!(
        p.get_key("/tools/globex-mesh/echo", &key).await.status(),
        401
    );
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let mut up = upstream().await;
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    p.tool(&acme.id, "mesh", &up.base, |_| {}).await;

    // Download: the first chunk arrives while the upstream has not finished.
    up.down_tx
        .send(Bytes::from_static(b"first "))
        .await
        .unwrap();
    let r = p
        .get("/tools/mesh/stream-down", Some(&acme.admin_token))
        .await;
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("the first chunk is not held back")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first ");
    up.down_tx
        .send(Bytes::from_static(b"second"))
        .await
        .unwrap();
    drop(up.down_tx);
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(rest, b"second");

    // Upload: the upstream reads the first chunk before the caller sent the second.
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    tx.send(Ok(Bytes::from(vec![b'a'; 1000]))).await.unwrap();
    let request = p
        .http
        .post(p.url("/tools/mesh/stream-up"))
        .bearer_auth(&acme.admin_token)
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let pending = tokio::spawn(request);
    let first = tokio::time::timeout(Duration::from_secs(5), up.up_rx.recv())
        .await
        .expect("the upstream saw the first chunk before the upload finished")
        .unwrap();
    assert_eq!(first, 1000);
    tx.send(Ok(Bytes::from(vec![b'b'; 500]))).await.unwrap();
    drop(tx);
    let r = pending.await.unwrap().unwrap();
    assert_eq!(r.text().await.unwrap(), "1500");
}

#[tokio::test]
async fn hostile_paths_and_oversized_bodies_are_refused() {
    let up = upstream().await;
    let p = Platform::start_with(Options {
        gateway: GatewayConfig::default().with_tool_proxy(ToolProxyConfig {
            max_body_bytes: 1024,
            ..ToolProxyConfig::default()
        }),
        ..Options::default()
    })
    .await;
    let acme = p.tenant("acme").await;
    p.tool(&acme.id, "mesh", &up.base, |_| {}).await;
    for path in [
        "/tools/mesh/../../etc/passwd",
        "/tools/mesh/echo/%2e%2e/secret",
        "/tools/mesh/echo/%2E%2E/secret",
        "/tools/mesh/echo/a%2fb",
        "/tools/mesh/echo/a%5cb",
        "/tools/mesh/./echo",
        "/tools/mesh/echo/%00",
        "/tools/..%2fmesh/echo",
        "/tools/me.sh/echo",
        "/tools/%6d%65sh/echo",
    ] {
        let request = axum::http::Request::get(path)
            .header("authorization", format!("Bearer {}", acme.admin_token))
            .body(Body::empty())
            .unwrap();
        let response = p.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "VALIDATION_ERROR", "{path}");
    }
    // Declared and undeclared (streamed) oversized bodies.
    let r = p
        .http
        .post(p.url("/tools/mesh/echo"))
        .bearer_auth(&acme.admin_token)
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (413, "PAYLOAD_TOO_LARGE".to_owned()));
    let chunks = futures::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'y'; 512]))),
    );
    let r = p
        .http
        .post(p.url("/tools/mesh/stream-up"))
        .bearer_auth(&acme.admin_token)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (413, "PAYLOAD_TOO_LARGE".to_owned()));
}

#[tokio::test]
async fn connect_and_response_timeouts_are_honoured() {
    let up = upstream().await;
    // A TCP listener that never accepts: the TCP handshake completes in the kernel, the TLS
    // handshake never does.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    // A port with nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let p = Platform::start_with(Options {
        gateway: GatewayConfig::default().with_tool_proxy(
            ToolProxyConfig::default()
                .with_timeouts(Duration::from_millis(300), Duration::from_millis(500)),
        ),
        ..Options::default()
    })
    .await;
    let acme = p.tenant("acme").await;
    p.tool(&acme.id, "slow", &up.base, |_| {}).await;
    p.tool(
        &acme.id,
        "silent",
        &format!("https://localhost:{}", silent_addr.port()),
        |_| {},
    )
    .await;
    p.tool(&acme.id, "closed", &format!("http://{closed}"), |_| {})
        .await;

    let started = std::time::Instant::now();
    let r = p.get("/tools/slow/slow", Some(&acme.admin_token)).await;
    assert_eq!(error_code(r).await, (504, "UPSTREAM_TIMEOUT".to_owned()));
    let r = p.get("/tools/silent/x", Some(&acme.admin_token)).await;
    assert_eq!(error_code(r).await, (504, "UPSTREAM_TIMEOUT".to_owned()));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the short timeouts were used"
    );
    let r = p.get("/tools/closed/x", Some(&acme.admin_token)).await;
    assert_eq!(
        error_code(r).await,
        (502, "UPSTREAM_UNAVAILABLE".to_owned())
    );
    drop(silent);
}

/// A TLS upstream with a certificate for `localhost` issued by a private CA; returns its
/// port and the CA's PEM.
async fn tls_upstream() -> (u16, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "OpenFrame Test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().route("/hello", get(|| async { "hello over tls" }));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    (port, ca_cert.pem())
}

#[tokio::test]
async fn tls_is_verified_against_the_configured_roots() {
    let (port, ca_pem) = tls_upstream().await;
    let url = format!("https://localhost:{port}");

    // Without the private CA: the self-issued certificate is refused.
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    p.tool(&acme.id, "private", &url, |_| {}).await;
    let r = p.get("/tools/private/hello", Some(&acme.admin_token)).await;
    assert_eq!(
        error_code(r).await,
        (502, "UPSTREAM_UNAVAILABLE".to_owned())
    );

    // With it configured: accepted.
    let p = Platform::start_with(Options {
        gateway: GatewayConfig::default()
            .with_tool_proxy(ToolProxyConfig::default().with_root_ca_pem(ca_pem.clone())),
        ..Options::default()
    })
    .await;
    let acme = p.tenant("acme").await;
    p.tool(&acme.id, "private", &url, |_| {}).await;
    let r = p.get("/tools/private/hello", Some(&acme.admin_token)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello over tls");

    // The CA is trusted for its own certificates only: the name must still match.
    p.tool(
        &acme.id,
        "wrongname",
        &format!("https://127.0.0.1:{port}"),
        |_| {},
    )
    .await;
    let r = p
        .get("/tools/wrongname/hello", Some(&acme.admin_token))
        .await;
    assert_eq!(
        error_code(r).await,
        (502, "UPSTREAM_UNAVAILABLE".to_owned())
    );

    // Garbage PEM is a configuration error, not "trust nothing" or "trust everything".
    let bad = ToolProxyConfig::default().with_root_ca_pem("not a certificate");
    assert!(openframe_api::gateway::ToolProxy::new(p.stack.repos.tools.clone(), &bad).is_err());
}

#[tokio::test]
async fn websockets_pass_through_with_the_tools_credential() {
    use tokio_tungstenite::tungstenite::Message as TMessage;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let up = upstream().await;
    let p = Platform::start().await;
    let acme = p.tenant("acme").await;
    p.tool(&acme.id, "mesh", &up.base, |t| {
        t.credentials = Some(bearer("tok-ws"))
    })
    .await;

    let ws_url = p.url("/tools/mesh/ws").replace("http://", "ws://");
    let mut request = ws_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", acme.admin_token).parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket.send(TMessage::Text("ping-1".into())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply, TMessage::Text("echo: ping-1".into()));
    socket.close(None).await.unwrap();
    let seen = up.seen.0.lock().unwrap().clone().unwrap();
    assert_eq!(seen["authorization"], "Bearer tok-ws");

    // A browser passes its token in the query; it is not forwarded.
    let url = format!(
        "{ws_url}?authorization=Bearer%20{}&room=1",
        acme.admin_token
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    socket.send(TMessage::Text("ping-2".into())).await.unwrap();
    let reply = socket.next().await.unwrap().unwrap();
    assert_eq!(reply, TMessage::Text("echo: ping-2".into()));
    let seen = up.seen.0.lock().unwrap().clone().unwrap();
    assert_eq!(seen["authorization"], "Bearer tok-ws");

    // Without a token: refused before any upgrade.
    let err = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}
