//! SSO federation against a second instance of our own OIDC server acting as the upstream
//! identity provider, over real HTTP.

mod support;

use openframe_core::{Secret, TenantId, UserRole};
use openframe_security::oauth::{ClientType, GrantType, NewClient};
use openframe_security::sso::SsoProvider;
use support::{PASSWORD, TestServer, browser, hidden, location, query};

/// Upstream `idp` tenant with a user in `corp.example`, and downstream `acme` with the
/// upstream configured as provider `corp`.
async fn federation(auto_provision: bool, allowed: &[&str]) -> (TestServer, TestServer, String) {
    let upstream = TestServer::start().await;
    let downstream = TestServer::start().await;
    upstream.sign_up("idp").await;
    downstream.sign_up("acme").await;
    // A second upstream user with a corp.example address.
    let idp = TenantId::parse("idp").unwrap();
    let owner = upstream
        .stack
        .repos
        .users
        .find_by_email(&idp, "owner@idp.example")
        .await
        .unwrap()
        .unwrap();
    let (_, token) = upstream
        .stack
        .accounts
        .invite(&idp, "alice@corp.example", vec![UserRole::Admin], owner.id)
        .await
        .unwrap();
    upstream
        .stack
        .accounts
        .accept_invitation(&idp, token.expose(), PASSWORD, "Alice", "Anders")
        .await
        .unwrap();

    let callback = format!("{}/sas/acme/sso/corp/callback", downstream.base);
    let (_, secret) = upstream
        .stack
        .clients
        .register(
            &idp,
            NewClient {
                id: "acme-downstream".into(),
                name: "Acme".into(),
                client_type: ClientType::Confidential,
                redirect_uris: vec![callback],
                post_logout_redirect_uris: vec![],
                grant_types: vec![GrantType::AuthorizationCode],
                scopes: vec!["openid".into(), "email".into(), "profile".into()],
                roles: vec![],
                machine_id: None,
                max_refresh_chain: None,
            },
        )
        .await
        .unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let mut provider = SsoProvider::oidc(
        "corp",
        "Corp IdP",
        &upstream.issuer("idp"),
        "acme-downstream",
        chrono::Utc::now(),
    );
    provider.allowed_domains = allowed.iter().map(|d| (*d).to_owned()).collect();
    provider.auto_provision = auto_provision;
    downstream
        .stack
        .sso
        .save_provider(
            &acme,
            provider,
            Some(&Secret::new(secret.unwrap().expose())),
        )
        .await
        .unwrap();
    let (redirect, _) = downstream.web_client("acme", "console").await;
    (upstream, downstream, redirect)
}

/// From the downstream authorize URL through the upstream login back to the client redirect.
async fn sso_login(
    upstream: &TestServer,
    downstream: &TestServer,
    redirect: &str,
    email: &str,
) -> reqwest::Response {
    let b = browser();
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let authorize = format!(
        "{}/oauth2/authorize?client_id=console&response_type=code&scope=openid%20email&code_challenge={challenge}&code_challenge_method=S256&state=st&redirect_uri={}",
        downstream.issuer("acme"),
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    let r = b.get(&authorize).send().await.unwrap();
    let login_page = b
        .get(location(&r, &downstream.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The login page offers the provider.
    let marker = "href=\"";
    let start = login_page
        .find("/sso/corp/start")
        .expect("the login page links the SSO provider");
    let href_start = login_page[..start].rfind(marker).unwrap() + marker.len();
    let href_end = href_start + login_page[href_start..].find('"').unwrap();
    let href = login_page[href_start..href_end].replace("&amp;", "&");
    // Downstream start → upstream authorize.
    let r = b
        .get(format!("{}{href}", downstream.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let upstream_authorize = location(&r, &downstream.base);
    assert!(
        upstream_authorize.starts_with(&upstream.issuer("idp")),
        "{upstream_authorize}"
    );
    let to_url = url::Url::parse(&upstream_authorize).unwrap();
    assert_eq!(
        query(&to_url, "code_challenge_method").as_deref(),
        Some("S256"),
        "PKCE to the upstream"
    );
    assert!(query(&to_url, "nonce").is_some());
    // Upstream login.
    let r = b.get(&upstream_authorize).send().await.unwrap();
    let upstream_login = location(&r, &upstream.base);
    let html = b
        .get(&upstream_login)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (csrf, return_to) = (hidden(&html, "csrf"), hidden(&html, "return_to"));
    let action = upstream_login.split('?').next().unwrap().to_owned();
    let r = b
        .post(&action)
        .form(&[
            ("username", email),
            ("password", PASSWORD),
            ("csrf", &csrf),
            ("return_to", &return_to),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "upstream login");
    let r = b.get(location(&r, &upstream.base)).send().await.unwrap();
    let callback = location(&r, &upstream.base);
    assert!(
        callback.starts_with(&downstream.base),
        "upstream redirects to the downstream callback"
    );
    // Downstream callback: session, then back to the original authorize request.
    let r = b.get(&callback).send().await.unwrap();
    if r.status() != 303 {
        return r;
    }
    let back = location(&r, &downstream.base);
    b.get(back).send().await.unwrap()
}

#[tokio::test]
async fn sso_login_auto_provisions_an_allowed_domain() {
    let (upstream, downstream, redirect) = federation(true, &["corp.example"]).await;
    let r = sso_login(&upstream, &downstream, &redirect, "alice@corp.example").await;
    assert_eq!(r.status(), 303);
    let to = url::Url::parse(&location(&r, &downstream.base)).unwrap();
    assert!(to.as_str().starts_with(&redirect));
    assert!(
        query(&to, "code").is_some(),
        "the downstream issues its own code"
    );
    let acme = TenantId::parse("acme").unwrap();
    let alice = downstream
        .stack
        .repos
        .users
        .find_by_email(&acme, "alice@corp.example")
        .await
        .unwrap()
        .expect("provisioned");
    assert!(alice.email_verified);
    assert_eq!(alice.roles, vec![UserRole::Admin]);
    assert!(
        !downstream
            .stack
            .accounts
            .has_password(&acme, &alice.id)
            .await
            .unwrap(),
        "SSO users have no password"
    );
}

#[tokio::test]
async fn sso_refuses_domains_outside_the_allow_list() {
    let (upstream, downstream, redirect) = federation(true, &["other.example"]).await;
    let r = sso_login(&upstream, &downstream, &redirect, "alice@corp.example").await;
    assert_eq!(r.status(), 403);
    let acme = TenantId::parse("acme").unwrap();
    assert!(
        downstream
            .stack
            .repos
            .users
            .find_by_email(&acme, "alice@corp.example")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn sso_without_auto_provisioning_needs_an_existing_user() {
    let (upstream, downstream, redirect) = federation(false, &[]).await;
    let r = sso_login(&upstream, &downstream, &redirect, "alice@corp.example").await;
    assert_eq!(r.status(), 403, "unknown users are refused");
    // Once invited and accepted with a password, the same upstream login signs her in.
    let acme = TenantId::parse("acme").unwrap();
    let owner = downstream
        .stack
        .repos
        .users
        .find_by_email(&acme, "owner@acme.example")
        .await
        .unwrap()
        .unwrap();
    let (_, token) = downstream
        .stack
        .accounts
        .invite(&acme, "alice@corp.example", vec![UserRole::Admin], owner.id)
        .await
        .unwrap();
    downstream
        .stack
        .accounts
        .accept_invitation(&acme, token.expose(), PASSWORD, "Alice", "A")
        .await
        .unwrap();
    let r = sso_login(&upstream, &downstream, &redirect, "alice@corp.example").await;
    assert_eq!(r.status(), 303);
    assert!(
        query(
            &url::Url::parse(&location(&r, &downstream.base)).unwrap(),
            "code"
        )
        .is_some()
    );
}

#[tokio::test]
async fn sso_callback_rejects_forged_and_replayed_state() {
    let (_upstream, downstream, _) = federation(true, &["corp.example"]).await;
    let b = browser();
    let callback = format!("{}/sas/acme/sso/corp/callback", downstream.base);
    for q in [
        "",
        "?code=x",
        "?state=x",
        "?code=x&state=forged",
        "?error=access_denied&state=x",
    ] {
        let r = b.get(format!("{callback}{q}")).send().await.unwrap();
        assert!(r.status().is_client_error(), "{q}: {}", r.status());
        assert!(
            r.headers()
                .get("set-cookie")
                .is_none_or(|c| !c.to_str().unwrap().contains("of_session")),
            "no session from {q}"
        );
    }
    let unknown = b
        .get(format!("{}/sas/acme/sso/nope/start", downstream.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}
