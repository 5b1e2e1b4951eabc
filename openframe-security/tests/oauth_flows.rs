//! Every OAuth/OIDC flow over real HTTP, driven by the `openidconnect` client library.

mod support;

use openframe_core::MachineId;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use support::{PASSWORD, TestServer, browser, hidden, location, login, query};

fn http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

async fn oidc_client(
    server: &TestServer,
    tenant: &str,
    client_id: &str,
    secret: &str,
    redirect: &str,
) -> Client {
    let meta = CoreProviderMetadata::discover_async(
        IssuerUrl::new(server.issuer(tenant)).unwrap(),
        &http(),
    )
    .await
    .expect("discovery");
    CoreClient::from_provider_metadata(
        meta,
        ClientId::new(client_id.into()),
        Some(ClientSecret::new(secret.into())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect.into()).unwrap())
}

async fn form(url: &str, auth: Option<(&str, &str)>, params: &[(&str, &str)]) -> reqwest::Response {
    let mut r = reqwest::Client::new().post(url).form(params);
    if let Some((id, secret)) = auth {
        r = r.basic_auth(id, Some(secret));
    }
    r.send().await.unwrap()
}

async fn introspect(
    server: &TestServer,
    tenant: &str,
    client: (&str, &str),
    token: &str,
) -> serde_json::Value {
    let r = form(
        &format!("{}/oauth2/introspect", server.issuer(tenant)),
        Some(client),
        &[("token", token)],
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn discovery_and_jwks() {
    let server = TestServer::start().await;
    server.sign_up("acme").await;
    let iss = server.issuer("acme");
    let meta: serde_json::Value = reqwest::get(format!("{iss}/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], iss);
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    let rfc8414: serde_json::Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server/sas/acme",
        server.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(rfc8414["issuer"], iss);
    let jwks: serde_json::Value = reqwest::get(format!("{iss}/oauth2/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["alg"], "RS256");
    assert!(key["kid"].as_str().unwrap().len() > 8);
    assert!(
        key.get("d").is_none() && key.get("p").is_none(),
        "no private parts in the JWKS"
    );
    for path in [
        "/sas/nobody/.well-known/openid-configuration",
        "/sas/..%2F/oauth2/jwks",
        "/sas/ACME!/oauth2/jwks",
    ] {
        assert_eq!(
            reqwest::get(format!("{}{path}", server.base))
                .await
                .unwrap()
                .status(),
            404,
            "{path}"
        );
    }
}

#[tokio::test]
async fn pkce_code_flow_refresh_rotation_and_reuse_detection() {
    let server = TestServer::start().await;
    server.sign_up("acme").await;
    let (redirect, secret) = server.web_client("acme", "console").await;
    let client = oidc_client(&server, "acme", "console", secret.expose(), &redirect).await;
    let http = http();

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let back = login(
        &browser(),
        &server.base,
        auth_url.as_str(),
        "owner@acme.example",
        PASSWORD,
    )
    .await;
    assert_eq!(
        query(&back, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    assert_eq!(query(&back, "iss"), Some(server.issuer("acme")));
    let code = query(&back, "code").unwrap();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token for the openid scope");
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("ID token verifies against the JWKS");
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("owner@acme.example")
    );
    assert!(claims.auth_time().is_some());

    // The access token is ours: tenant, user, roles.
    let access = tokens.access_token().secret().clone();
    let verified = server
        .stack
        .tokens
        .verify_access_token(&access, Some("openframe-api"))
        .await
        .unwrap();
    assert_eq!(verified.tenant.as_str(), "acme");
    assert!(
        verified.claims.roles.contains(&"OWNER".to_owned())
            && verified.claims.roles.contains(&"ADMIN".to_owned())
    );

    // Userinfo.
    let info: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/userinfo", server.issuer("acme")))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "owner@acme.example");
    assert_eq!(info["tenant_id"], "acme");

    // Refresh rotation.
    let first_refresh = tokens.refresh_token().expect("a refresh token").clone();
    let rotated = client
        .exchange_refresh_token(&first_refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh");
    let second_refresh = rotated.refresh_token().unwrap().clone();
    assert_ne!(second_refresh.secret(), first_refresh.secret(), "rotated");
    let rotated_access = rotated.access_token().secret().clone();
    assert_eq!(
        introspect(
            &server,
            "acme",
            ("console", secret.expose()),
            &rotated_access
        )
        .await["active"],
        true
    );

    // Reusing the first refresh token is theft: invalid_grant, and the whole family dies.
    let reuse = form(
        &format!("{}/oauth2/token", server.issuer("acme")),
        Some(("console", secret.expose())),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first_refresh.secret()),
        ],
    )
    .await;
    assert_eq!(reuse.status(), 400);
    assert_eq!(
        reuse.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let after = client
        .exchange_refresh_token(&RefreshToken::new(second_refresh.secret().clone()))
        .unwrap()
        .request_async(&http)
        .await;
    assert!(
        after.is_err(),
        "the newest refresh token of the family is revoked too"
    );
    assert_eq!(
        introspect(
            &server,
            "acme",
            ("console", secret.expose()),
            &rotated_access
        )
        .await["active"],
        false,
        "and its access token"
    );
}

#[tokio::test]
async fn client_credentials_introspection_and_revocation() {
    let server = TestServer::start().await;
    server.sign_up("acme").await;
    let machine = MachineId::generate();
    let (client_id, secret) = server.agent_client("acme", &machine).await;
    let token_url = format!("{}/oauth2/token", server.issuer("acme"));
    let r = form(
        &token_url,
        Some((&client_id, secret.expose())),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(body["token_type"], "Bearer");
    let verified = server
        .stack
        .tokens
        .verify_access_token(&access, None)
        .await
        .unwrap();
    assert_eq!(verified.claims.machine_id.as_ref(), Some(&machine));
    assert_eq!(verified.claims.roles, vec!["AGENT".to_owned()]);

    // Client secret in the body works too; a wrong secret is invalid_client with a challenge.
    let r = form(
        &token_url,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", secret.expose()),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = form(
        &token_url,
        Some((&client_id, "wrong")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_client"
    );

    // Bounded refresh chain (3 rotations).
    let mut refresh = body["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let r = form(
            &token_url,
            Some((&client_id, secret.expose())),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
        assert_eq!(r.status(), 200);
        refresh = r.json::<serde_json::Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let r = form(
        &token_url,
        Some((&client_id, secret.expose())),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant",
        "chain exhausted"
    );

    // Introspection (RFC 7662), then revocation (RFC 7009).
    let info = introspect(&server, "acme", (&client_id, secret.expose()), &access).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], client_id);
    assert_eq!(info["tenant_id"], "acme");
    let revoke_url = format!("{}/oauth2/revoke", server.issuer("acme"));
    assert_eq!(
        form(
            &revoke_url,
            Some((&client_id, secret.expose())),
            &[("token", &access)]
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        introspect(&server, "acme", (&client_id, secret.expose()), &access).await["active"],
        false
    );
    assert!(
        server
            .stack
            .tokens
            .verify_access_token(&access, None)
            .await
            .is_err()
    );
    assert_eq!(
        form(
            &revoke_url,
            Some((&client_id, secret.expose())),
            &[("token", "unknown")]
        )
        .await
        .status(),
        200,
        "unknown tokens are fine"
    );
    assert_eq!(
        introspect(&server, "acme", (&client_id, secret.expose()), "garbage").await,
        serde_json::json!({"active": false})
    );
}

#[tokio::test]
async fn authorize_refuses_bad_redirects_and_missing_pkce() {
    let server = TestServer::start().await;
    server.sign_up("acme").await;
    let (redirect, _) = server.web_client("acme", "console").await;
    let b = browser();
    let authorize = format!("{}/oauth2/authorize", server.issuer("acme"));
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    // An unregistered redirect URI is never redirected to.
    for bad in [
        "https://evil.example/cb",
        &format!("{redirect}/extra"),
        &format!("{redirect}?x=1"),
    ] {
        let r = b
            .get(&authorize)
            .query(&[
                ("client_id", "console"),
                ("redirect_uri", bad),
                ("response_type", "code"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.headers().get("location").is_none());
    }
    let unknown_client = b
        .get(&authorize)
        .query(&[("client_id", "nope"), ("redirect_uri", redirect.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_client.status(), 400);

    // Once the redirect is known, errors go back to the client.
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("response_type", "code")], "invalid_request"),
        (
            &[
                ("response_type", "code"),
                ("code_challenge", challenge),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (
            &[
                ("response_type", "token"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ],
            "unsupported_response_type",
        ),
        (
            &[
                ("response_type", "code"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
                ("scope", "openid admin:everything"),
            ],
            "invalid_scope",
        ),
    ];
    for (extra, error) in cases {
        let mut params = vec![
            ("client_id", "console"),
            ("redirect_uri", redirect.as_str()),
            ("state", "s1"),
        ];
        params.extend_from_slice(extra);
        let r = b.get(&authorize).query(&params).send().await.unwrap();
        assert_eq!(r.status(), 303, "{extra:?}");
        let to = url::Url::parse(&location(&r, &server.base)).unwrap();
        assert!(to.as_str().starts_with(&redirect));
        assert_eq!(query(&to, "error").as_deref(), Some(error), "{extra:?}");
        assert_eq!(query(&to, "state").as_deref(), Some("s1"));
    }
    // Repeated parameters are refused.
    let r = b
        .get(format!(
            "{authorize}?client_id=console&client_id=other&redirect_uri={redirect}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn pkce_mismatch_and_code_reuse() {
    let server = TestServer::start().await;
    server.sign_up("acme").await;
    let (redirect, secret) = server.web_client("acme", "console").await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = openframe_security::oauth::pkce::challenge(verifier);
    let authorize = format!(
        "{}/oauth2/authorize?client_id=console&response_type=code&scope=openid%20offline_access&code_challenge={challenge}&code_challenge_method=S256&redirect_uri={}",
        server.issuer("acme"),
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    let b = browser();
    let back = login(&b, &server.base, &authorize, "owner@acme.example", PASSWORD).await;
    let code = query(&back, "code").unwrap();
    let token_url = format!("{}/oauth2/token", server.issuer("acme"));
    let client = Some(("console", secret.expose()));

    let wrong = form(
        &token_url,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect),
            ("code_verifier", &"x".repeat(43)),
        ],
    )
    .await;
    assert_eq!(
        wrong.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant",
        "PKCE mismatch"
    );

    // The failed attempt consumed the code: a code is single-use whatever happens.
    let again = form(
        &token_url,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(
        again.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    // A fresh code: exchange once, then reuse it: the tokens of the first exchange die.
    let back = b.get(&authorize).send().await.unwrap();
    let back = url::Url::parse(&location(&back, &server.base)).unwrap();
    let code = query(&back, "code").unwrap();
    let params = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier),
    ];
    let first: serde_json::Value = form(&token_url, client, &params)
        .await
        .json()
        .await
        .unwrap();
    let access = first["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        introspect(&server, "acme", ("console", secret.expose()), &access).await["active"],
        true
    );
    let reuse = form(&token_url, client, &params).await;
    assert_eq!(
        reuse.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(
        introspect(&server, "acme", ("console", secret.expose()), &access).await["active"],
        false,
        "tokens of a reused code are revoked"
    );
    let refresh = first["refresh_token"].as_str().unwrap();
    let r = form(
        &token_url,
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    // Redirect URI must match the one of the request.
    let back = b.get(&authorize).send().await.unwrap();
    let code = query(
        &url::Url::parse(&location(&back, &server.base)).unwrap(),
        "code",
    )
    .unwrap();
    let r = form(
        &token_url,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://evil.example/cb"),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn malformed_token_requests() {
    let server = TestServer::start().await;
    server.sign_up("acme").await;
    let (_, secret) = server.web_client("acme", "console").await;
    let url = format!("{}/oauth2/token", server.issuer("acme"));
    let client = reqwest::Client::new();
    let send = |body: Vec<u8>| {
        client
            .post(&url)
            .basic_auth("console", Some(secret.expose()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            b"grant_type=password&username=a&password=b".to_vec(),
            400,
            "unsupported_grant_type",
        ),
        (
            b"grant_type=client_credentials".to_vec(),
            400,
            "unauthorized_client",
        ),
        (
            b"grant_type=authorization_code&grant_type=refresh_token".to_vec(),
            400,
            "invalid_request",
        ),
        (b"code=abc".to_vec(), 400, "invalid_request"),
        (
            b"grant_type=authorization_code&code=abc".to_vec(),
            400,
            "invalid_request",
        ),
        (vec![0xff, 0xfe, b'=', 0x00], 400, "invalid_request"),
        (
            b"grant_type=refresh_token&refresh_token=%00%01".to_vec(),
            400,
            "invalid_grant",
        ),
    ];
    for (body, status, error) in cases {
        let r = send(body.clone()).await.unwrap();
        assert_eq!(r.status(), status, "{:?}", String::from_utf8_lossy(&body));
        let json: serde_json::Value = r.json().await.unwrap();
        assert_eq!(json["error"], error, "{:?}", String::from_utf8_lossy(&body));
    }
    let huge = send(vec![b'a'; 200 * 1024]).await.unwrap();
    assert_eq!(huge.status(), 413, "bodies are capped");
    let both = client
        .post(&url)
        .basic_auth("console", Some(secret.expose()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", secret.expose()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        both.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_request",
        "two auth methods"
    );
    let garbage_basic = client
        .post(&url)
        .header("authorization", "Basic !!!")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(garbage_basic.status(), 401);
}

#[tokio::test]
async fn login_page_csrf_open_redirect_and_brute_force() {
    let server = TestServer::start().await;
    server.sign_up("acme").await;
    let b = browser();
    let login_url = format!("{}/login", server.issuer("acme"));
    let page = b
        .get(format!("{login_url}?return_to=https://evil.example/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert_eq!(
        hidden(&html, "return_to"),
        "",
        "foreign return_to is dropped"
    );
    let csrf = hidden(&html, "csrf");

    // No CSRF token, or a wrong one: refused.
    let r = b
        .post(&login_url)
        .form(&[("username", "owner@acme.example"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = reqwest::Client::new()
        .post(&login_url)
        .form(&[
            ("username", "owner@acme.example"),
            ("password", PASSWORD),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "the form token without its cookie is refused"
    );

    // Wrong passwords: generic message, then throttled (5 per minute per account).
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let html = b
            .get(&login_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = hidden(&html, "csrf");
        let r = b
            .post(&login_url)
            .form(&[
                ("username", "owner@acme.example"),
                ("password", "Wrong-password-123"),
                ("csrf", csrf.as_str()),
                ("return_to", "https://evil.example/"),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        } else {
            let body = r.text().await.unwrap();
            assert!(body.contains("Invalid email or password"));
        }
    }
    assert_eq!(&statuses[..5], &[401; 5]);
    assert_eq!(statuses[5], 429, "throttled after 5 failures");
    // Even the right password is throttled now.
    let html = b
        .get(&login_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden(&html, "csrf");
    let r = b
        .post(&login_url)
        .form(&[
            ("username", "owner@acme.example"),
            ("password", PASSWORD),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
}

#[tokio::test]
async fn tenants_are_isolated() {
    let server = TestServer::start().await;
    server.sign_up("acme").await;
    server.sign_up("globex").await;
    let machine = MachineId::generate();
    let (client_id, secret) = server.agent_client("acme", &machine).await;
    let acme_token: serde_json::Value = form(
        &format!("{}/oauth2/token", server.issuer("acme")),
        Some((&client_id, secret.expose())),
        &[("grant_type", "client_credentials")],
    )
    .await
    .json()
    .await
    .unwrap();
    let access = acme_token["access_token"].as_str().unwrap();
    // Acme's client does not exist at globex.
    let r = form(
        &format!("{}/oauth2/token", server.issuer("globex")),
        Some((&client_id, secret.expose())),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status(), 401);
    // Acme's token is not a globex token.
    let r = reqwest::Client::new()
        .get(format!("{}/userinfo", server.issuer("globex")))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Globex's introspection does not reveal acme's tokens.
    let (g_client, g_secret) = server.agent_client("globex", &MachineId::generate()).await;
    assert_eq!(
        introspect(&server, "globex", (&g_client, g_secret.expose()), access).await["active"],
        false
    );
    // Acme's refresh token is unknown at globex, and cannot be revoked there.
    let refresh = acme_token["refresh_token"].as_str().unwrap();
    let r = form(
        &format!("{}/oauth2/revoke", server.issuer("globex")),
        Some((&g_client, g_secret.expose())),
        &[("token", refresh)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = form(
        &format!("{}/oauth2/token", server.issuer("acme")),
        Some((&client_id, secret.expose())),
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(r.status(), 200, "still valid at acme");
    // Another acme client cannot revoke it either.
    let (other, other_secret) = server.agent_client("acme", &MachineId::generate()).await;
    let access2 = r.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    form(
        &format!("{}/oauth2/revoke", server.issuer("acme")),
        Some((&other, other_secret.expose())),
        &[("token", &access2)],
    )
    .await;
    assert!(
        server
            .stack
            .tokens
            .verify_access_token(&access2, None)
            .await
            .is_ok(),
        "RFC 7009: only the owning client revokes"
    );
}

#[tokio::test]
async fn sign_up_invitations_and_password_reset_over_http() {
    let server = TestServer::start().await;
    let signed = server.sign_up("acme").await;
    assert_eq!(signed["issuer"], server.issuer("acme"));
    let http = reqwest::Client::new();
    let register = format!("{}/sas/oauth/register", server.base);

    let duplicate = http
        .post(&register)
        .json(&serde_json::json!({"tenantName": "Other", "domain": "acme.example", "email": "x@y.example", "password": PASSWORD, "firstName": "A", "lastName": "B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), 409);
    let weak = http
        .post(&register)
        .json(&serde_json::json!({"tenantName": "Weak", "domain": "weak.example", "email": "x@weak.example", "password": "short", "firstName": "A", "lastName": "B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), 400);
    let body: serde_json::Value = weak.json().await.unwrap();
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert_eq!(body["fieldErrors"][0]["field"], "password");
    for bad in [
        &b"{"[..],
        b"null",
        b"[]",
        b"{\"tenantName\": 5}",
        &[0xff, 0xfe],
    ] {
        let r = http
            .post(&register)
            .header("content-type", "application/json")
            .body(bad.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{:?}", String::from_utf8_lossy(bad));
    }

    // Invitation accepted over HTTP: the response holds the user, never a hash.
    let tenant = openframe_core::TenantId::parse("acme").unwrap();
    let owner = openframe_core::UserId::parse(signed["ownerId"].as_str().unwrap()).unwrap();
    let (_, token) = server
        .stack
        .accounts
        .invite(
            &tenant,
            "tech@acme.example",
            vec![openframe_core::UserRole::Admin],
            owner,
        )
        .await
        .unwrap();
    let accept = format!("{}/invitations/accept", server.issuer("acme"));
    let r = http
        .post(&accept)
        .json(&serde_json::json!({"token": token.expose(), "password": PASSWORD, "firstName": "Tess", "lastName": "Tech"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("tech@acme.example"));
    for leak in ["argon2", "hash", "password", PASSWORD] {
        assert!(
            !text.to_lowercase().contains(&leak.to_lowercase()),
            "response leaks {leak}"
        );
    }
    let again = http
        .post(&accept)
        .json(&serde_json::json!({"token": token.expose(), "password": PASSWORD, "firstName": "Tess", "lastName": "Tech"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400, "single use");

    // Password reset: the same answer whether or not the email exists.
    let request = format!("{}/password-reset/request", server.issuer("acme"));
    for email in ["nobody@acme.example", "tech@acme.example"] {
        let r = http
            .post(&request)
            .json(&serde_json::json!({"email": email}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{email}");
        assert!(r.text().await.unwrap().is_empty());
    }
    let mails = server.mailer.sent();
    assert_eq!(mails.len(), 1, "only the real account gets mail");
    assert_eq!(mails[0].to, "tech@acme.example");
    assert!(
        !format!("{:?}", mails[0]).contains(&mails[0].token),
        "the token is not in Debug output"
    );
    let confirm = format!("{}/password-reset/confirm", server.issuer("acme"));
    let new_password = "Another-Strong-Pass-9";
    let r = http
        .post(&confirm)
        .json(&serde_json::json!({"token": mails[0].token, "newPassword": new_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .post(&confirm)
        .json(&serde_json::json!({"token": mails[0].token, "newPassword": new_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "single use");
    let ip = "127.0.0.1".parse().unwrap();
    assert!(
        server
            .stack
            .accounts
            .authenticate(&tenant, "tech@acme.example", PASSWORD, ip)
            .await
            .is_err()
    );
    assert!(
        server
            .stack
            .accounts
            .authenticate(&tenant, "tech@acme.example", new_password, ip)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let server = TestServer::start().await;
    server.sign_up("acme").await;
    let (redirect, _) = server.web_client("acme", "console").await;
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let authorize = format!(
        "{}/oauth2/authorize?client_id=console&response_type=code&scope=openid&code_challenge={challenge}&code_challenge_method=S256&redirect_uri={}",
        server.issuer("acme"),
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    let b = browser();
    login(&b, &server.base, &authorize, "owner@acme.example", PASSWORD).await;
    let r = b.get(&authorize).send().await.unwrap();
    assert!(
        location(&r, &server.base).starts_with(&redirect),
        "the session skips the login page"
    );
    let bye = format!("{}/bye", server.base);
    let r = b
        .get(format!("{}/connect/logout", server.issuer("acme")))
        .query(&[
            ("client_id", "console"),
            ("post_logout_redirect_uri", bye.as_str()),
            ("state", "z"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r, &server.base), format!("{bye}?state=z"));
    let r = b.get(&authorize).send().await.unwrap();
    assert!(
        location(&r, &server.base).contains("/login?"),
        "signed out: back to the login page"
    );
    let r = b
        .get(format!("{}/connect/logout", server.issuer("acme")))
        .query(&[
            ("client_id", "console"),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "unregistered post-logout URIs are not redirected to"
    );
}
