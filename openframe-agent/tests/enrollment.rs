//! Agent enrollment end to end over real HTTP: register, tokens, reinstall, uninstall,
//! registration secrets, and the hostile cases (wrong keys, forged machine ids, bad bodies,
//! brute force, tenant isolation).

mod support_enrollment;

use std::time::Duration;

use aws_lc_rs::hmac;
use openframe_agent::enrollment::{self, EnrollmentConfig};
use openframe_agent::events::AgentEventKind;
use openframe_core::{Clock, ConnectionStatus, MachineStatus, OsType, TenantStatus, ToolType};
use openframe_data::entity::Entity;
use openframe_data::store::Partition;
use openframe_security::oauth::OAuthClient;
use openframe_security::ratelimit::Quota;
use openframe_security::token::AccessTokenRequest;
use serde_json::{Value as Json, json};
use support_enrollment::{Server, agent_body, creds, expect_error, schema};

// ---------------------------------------------------------------------------------------
// The happy path

#[tokio::test]
async fn register_token_refresh_and_claims() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let body = json!({
        "hostname": "vm-01",
        "agentVersion": "1.4.2",
        "osType": "MAC_OS",
        "tags": [{"key": "site", "values": ["paris", "lyon"]}, {"key": "vip", "values": []}],
        "serialNumber": "SN-1",
        "manufacturer": "Apple",
        "somethingNewer": {"nested": true},
    });
    let r = server.register_raw(Some(acme.key.expose()), &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let text = r.text().await.unwrap();
    let c = creds(&serde_json::from_str(&text).unwrap());
    assert_eq!(c.client_id, format!("agent_{}", c.machine_id));
    assert_eq!(c.secret.len(), 43, "256-bit base64url secret");
    assert!(uuid::Uuid::parse_str(c.machine_id.as_str()).is_ok());

    // The answer holds neither the initial key, nor its keyed hash, nor its sealed form.
    let hmac_key = hmac::Key::new(
        hmac::HMAC_SHA256,
        &server.master.derive("agent-registration-secret"),
    );
    let hash: String = hmac::sign(&hmac_key, acme.key.expose().as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!text.contains(acme.key.expose()));
    assert!(!text.contains(&hash));
    let stored = server
        .bodies(
            schema("agent_registration_secrets"),
            &Partition::tenant(&acme.id),
        )
        .await;
    assert_eq!(stored.len(), 1);
    let record: Json = serde_json::from_str(&stored[0]).unwrap();
    let sealed = record["sealed"].as_str().unwrap();
    assert!(!sealed.contains(acme.key.expose()), "sealed at rest");
    assert!(!text.contains(sealed));
    assert_eq!(record["keyHash"], hash.as_str(), "looked up by keyed hash");

    // The machine: PENDING in acme, with its inventory, default organization and tags.
    let m = server.machine(&acme.id, &c.machine_id).await.unwrap();
    assert_eq!(m.status, MachineStatus::Pending);
    assert_eq!(m.hostname, "vm-01");
    assert_eq!(m.os_type, OsType::MacOs);
    assert_eq!(m.agent_version.as_deref(), Some("1.4.2"));
    assert_eq!(m.serial_number.as_deref(), Some("SN-1"));
    assert_eq!(m.manufacturer.as_deref(), Some("Apple"));
    assert_eq!(m.organization_id.as_ref(), Some(&acme.default_org));
    assert_eq!(m.registered_at, server.clock.now());
    let tags = &server.stack.repos.tags;
    let attached = tags.get_many(&acme.id, &m.tags).await.unwrap();
    let mut names: Vec<&str> = attached.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["site:lyon", "site:paris", "vip"]);
    let events = server.events.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, AgentEventKind::Registered);
    assert_eq!(events[0].tenant, acme.id);
    assert_eq!(events[0].machine_id, c.machine_id);

    // A second registration reuses the existing tags.
    let r = server.register_raw(Some(acme.key.expose()), &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(tags.count(&acme.id, &Default::default()).await.unwrap(), 3);

    // client_credentials: camelCase answer, Bearer, and the tenant's claims.
    let t = server.token(&c).await;
    let obj = t.as_object().unwrap();
    for key in ["accessToken", "refreshToken", "tokenType", "expiresIn"] {
        assert!(obj.contains_key(key), "{t}");
    }
    assert_eq!(t["tokenType"], "Bearer");
    assert!(t["expiresIn"].as_i64().unwrap() > 0);
    let tokens = &server.stack.tokens;
    let v = tokens
        .verify_access_token(t["accessToken"].as_str().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(v.tenant, acme.id);
    assert_eq!(v.claims.tenant_id, acme.id);
    assert_eq!(v.claims.iss, server.issuer(&acme.id));
    assert_eq!(v.claims.machine_id.as_ref(), Some(&c.machine_id));
    assert_eq!(v.claims.roles, ["AGENT"]);
    assert_eq!(v.claims.sub, c.client_id);
    assert_eq!(v.claims.client_id, c.client_id);

    // refresh_token with client authentication rotates; the old refresh token is dead.
    let refresh = t["refreshToken"].as_str().unwrap();
    let r = server.refresh_raw(&c, refresh).await;
    assert_eq!(r.status(), 200);
    let t2: Json = r.json().await.unwrap();
    assert_ne!(t2["refreshToken"], t["refreshToken"]);
    let v2 = tokens
        .verify_access_token(t2["accessToken"].as_str().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(v2.claims.machine_id.as_ref(), Some(&c.machine_id));
    assert_eq!(v2.claims.roles, ["AGENT"]);
    assert_eq!(v2.claims.iss, server.issuer(&acme.id));
    let reuse = server.refresh_raw(&c, refresh).await;
    expect_error(reuse, 400, "invalid_grant").await;

    // The original agent refreshes without client credentials: that is a 401, on which it
    // falls back to client_credentials.
    let bare = server
        .token_raw(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t2["refreshToken"].as_str().unwrap()),
        ])
        .await;
    expect_error(bare, 401, "UNAUTHORIZED").await;
    server.token(&c).await;
}

#[tokio::test]
async fn token_endpoint_refusals() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let c = server.register(&acme, "vm-01").await;

    let mut wrong = c.clone();
    wrong.secret = "not-the-secret".into();
    let body = expect_error(
        server.client_credentials_raw(&wrong).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert!(!body.to_string().contains(&c.secret));
    for form in [
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", "agent_nobody"),
            ("client_secret", "x"),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", "../../etc"),
            ("client_secret", "x"),
        ],
        vec![("grant_type", "client_credentials")],
    ] {
        expect_error(server.token_raw(&form).await, 401, "UNAUTHORIZED").await;
    }
    let unsupported = server
        .token_raw(&[
            ("grant_type", "password"),
            ("client_id", &c.client_id),
            ("client_secret", &c.secret),
        ])
        .await;
    expect_error(unsupported, 400, "unsupported_grant_type").await;
    let forged = server.refresh_raw(&c, "forged").await;
    expect_error(forged, 400, "invalid_grant").await;

    // A tenant that is no longer active: 410, which the agent reads as "tenant gone"; its
    // initial key no longer registers anything.
    server
        .set_tenant_status(&acme.id, TenantStatus::Inactive)
        .await;
    expect_error(server.client_credentials_raw(&c).await, 410, "TENANT_GONE").await;
    let r = server
        .register_raw(Some(acme.key.expose()), &agent_body("vm-02"))
        .await;
    expect_error(r, 401, "INITIAL_KEY_INVALID").await;
}

// ---------------------------------------------------------------------------------------
// Reinstall and uninstall

#[tokio::test]
async fn reinstall_keeps_credentials_and_resets_status_and_tools() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let c = server.register(&acme, "vm-01").await;
    server
        .stack
        .repos
        .machines
        .record_contact(&acme.id, &c.machine_id, server.clock.now())
        .await
        .unwrap();
    let conn = server
        .connect_tool(&acme.id, &c.machine_id, ToolType::MeshCentral, "node-1")
        .await;
    let online = server.machine(&acme.id, &c.machine_id).await.unwrap();
    assert_eq!(online.status, MachineStatus::Online);

    let body = json!({
        "hostname": "vm-01-renamed",
        "agentVersion": "1.5.0",
        "osType": "WINDOWS",
        "tags": [{"key": "rebuilt"}],
    });
    let r = server
        .reinstall_raw(acme.key.expose(), c.machine_id.as_str(), &c.secret, &body)
        .await;
    assert_eq!(r.status(), 200);
    let again = creds(&r.json().await.unwrap());
    assert_eq!(again.machine_id, c.machine_id);
    assert_eq!(again.client_id, c.client_id);
    assert_eq!(again.secret, c.secret);

    let m = server.machine(&acme.id, &c.machine_id).await.unwrap();
    assert_eq!(m.status, MachineStatus::Pending);
    assert_eq!(m.hostname, "vm-01-renamed");
    assert_eq!(m.os_type, OsType::Windows);
    assert_eq!(m.agent_version.as_deref(), Some("1.5.0"));
    assert_eq!(m.organization_id.as_ref(), Some(&acme.default_org));
    assert_eq!(m.tags.len(), 1);
    let conn = server.tool(&acme.id, &conn.id).await;
    assert_eq!(conn.status, ConnectionStatus::Disconnected);
    assert!(conn.disconnected_at.is_some());
    let last = server.events.events().last().cloned().unwrap();
    assert_eq!(last.kind, AgentEventKind::Registered);
    assert_eq!(last.previous_status, Some(MachineStatus::Online));
    assert_eq!(last.status, MachineStatus::Pending);

    // The same credentials still get tokens.
    server.token(&c).await;
}

#[tokio::test]
async fn uninstall_revokes_everything_and_is_idempotent() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let c = server.register(&acme, "vm-01").await;
    let conn = server
        .connect_tool(&acme.id, &c.machine_id, ToolType::FleetMdm, "host-7")
        .await;
    let t = server.token(&c).await;
    let access = t["accessToken"].as_str().unwrap().to_owned();
    let refresh = t["refreshToken"].as_str().unwrap().to_owned();
    // The agent can read its tenant's initial key before the uninstall.
    assert_eq!(server.active_secret_raw(Some(&access)).await.status(), 200);

    let r = server.uninstall_raw(c.machine_id.as_str(), &c.secret).await;
    assert_eq!(r.status(), 204);
    let m = server.machine(&acme.id, &c.machine_id).await.unwrap();
    assert_eq!(m.status, MachineStatus::Deleted);
    let conn = server.tool(&acme.id, &conn.id).await;
    assert_eq!(conn.status, ConnectionStatus::Disconnected);
    let client = server.stack.clients.get(&acme.id, &c.client_id).await;
    assert!(!client.unwrap().unwrap().enabled);
    let last = server.events.events().last().cloned().unwrap();
    assert_eq!(last.kind, AgentEventKind::Uninstalled);
    assert_eq!(last.previous_status, Some(MachineStatus::Pending));

    // No more tokens: client_credentials and refresh are refused, the old access token is
    // revoked and no longer opens agent endpoints.
    expect_error(server.client_credentials_raw(&c).await, 401, "UNAUTHORIZED").await;
    expect_error(server.refresh_raw(&c, &refresh).await, 401, "UNAUTHORIZED").await;
    let verified = server.stack.tokens.verify_access_token(&access, None).await;
    assert!(verified.is_err());
    assert_eq!(server.active_secret_raw(Some(&access)).await.status(), 401);

    // Twice is fine (also with a stale secret: the machine is already gone), and emits once.
    let events_before = server.events.events().len();
    for secret in [c.secret.as_str(), "whatever"] {
        let r = server.uninstall_raw(c.machine_id.as_str(), secret).await;
        assert_eq!(r.status(), 204);
    }
    assert_eq!(server.events.events().len(), events_before);
    // Unknown and malformed machine ids are "already gone" too; a blank one is a client bug.
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(server.uninstall_raw(&unknown, "x").await.status(), 204);
    assert_eq!(server.uninstall_raw("../../x", "x").await.status(), 204);
    expect_error(server.uninstall_raw("", "x").await, 400, "VALIDATION_ERROR").await;

    // An uninstalled machine cannot be reinstalled with its old credentials.
    let r = server
        .reinstall_raw(
            acme.key.expose(),
            c.machine_id.as_str(),
            &c.secret,
            &agent_body("vm-01"),
        )
        .await;
    expect_error(r, 401, "CLIENT_SECRET_INVALID").await;
    let m = server.machine(&acme.id, &c.machine_id).await.unwrap();
    assert_eq!(m.status, MachineStatus::Deleted);
}

// ---------------------------------------------------------------------------------------
// Hostile: keys, machine ids, tenants

#[tokio::test]
async fn initial_keys_missing_wrong_and_of_another_tenant() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    let body = agent_body("vm-01");

    let missing = server.register_raw(None, &body).await;
    expect_error(missing, 401, "INITIAL_KEY_EMPTY").await;
    let blank = server.register_raw(Some("   "), &body).await;
    expect_error(blank, 401, "INITIAL_KEY_EMPTY").await;
    let almost = format!("{}x", acme.key.expose());
    let long = "k".repeat(5000);
    for wrong in ["nope", &almost, &long] {
        let r = server.register_raw(Some(wrong), &body).await;
        expect_error(r, 401, "INITIAL_KEY_INVALID").await;
    }
    let not_ascii = reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap();
    let r = server
        .http
        .post(server.url(enrollment::REGISTER_PATH))
        .header("X-Initial-Key", not_ascii)
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "INITIAL_KEY_INVALID").await;
    assert_eq!(server.machine_count(&acme.id).await, 0);

    // Globex's key registers into globex only, whatever the body says.
    let g_body = json!({"hostname": "g-01", "agentVersion": "1", "osType": "LINUX"});
    let r = server
        .register_raw(Some(globex.key.expose()), &g_body)
        .await;
    assert_eq!(r.status(), 200);
    let g = creds(&r.json().await.unwrap());
    assert!(server.machine(&globex.id, &g.machine_id).await.is_some());
    assert!(server.machine(&acme.id, &g.machine_id).await.is_none());
    assert_eq!(server.machine_count(&acme.id).await, 0);
    let in_acme = server.stack.clients.get(&acme.id, &g.client_id).await;
    assert!(in_acme.unwrap().is_none());
    let access = server.token(&g).await["accessToken"].clone();
    let v = server
        .stack
        .tokens
        .verify_access_token(access.as_str().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(v.tenant, globex.id);
    assert_eq!(v.claims.iss, server.issuer(&globex.id));

    // An organization of acme with globex's key: 400, nothing created.
    let foreign_org = json!({"hostname": "g-02", "agentVersion": "1", "osType": "LINUX",
                             "organizationId": acme.default_org.as_str()});
    let r = server
        .register_raw(Some(globex.key.expose()), &foreign_org)
        .await;
    let err = expect_error(r, 400, "VALIDATION_ERROR").await;
    assert_eq!(err["fieldErrors"][0]["field"], "organizationId");
    assert_eq!(server.machine_count(&globex.id).await, 1);
    // Its own organization id works; a blank one means the default organization.
    for org in [globex.default_org.as_str(), ""] {
        let own_org = json!({"hostname": "g-03", "agentVersion": "1", "osType": "WINDOWS",
                             "organizationId": org});
        let r = server
            .register_raw(Some(globex.key.expose()), &own_org)
            .await;
        assert_eq!(r.status(), 200);
        let c = creds(&r.json().await.unwrap());
        let m = server.machine(&globex.id, &c.machine_id).await.unwrap();
        assert_eq!(m.organization_id.as_ref(), Some(&globex.default_org));
    }

    // Each agent reads its own tenant's key.
    let a = server.register(&acme, "a-01").await;
    for (creds, key) in [(&g, &globex.key), (&a, &acme.key)] {
        let access = server.token(creds).await["accessToken"].clone();
        let r = server.active_secret_raw(access.as_str()).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
        let answer: Json = r.json().await.unwrap();
        assert_eq!(answer, json!({"key": key.expose()}));
    }
}

#[tokio::test]
async fn forged_machine_ids_and_secrets_change_nothing() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    let mine = server.register(&acme, "mine").await;
    let theirs = server.register(&acme, "theirs").await;
    let before = server.machine(&acme.id, &theirs.machine_id).await.unwrap();
    let body = json!({"hostname": "hijacked", "agentVersion": "6.6.6", "osType": "WINDOWS"});
    let key = acme.key.expose();
    let their_id = theirs.machine_id.as_str();

    // Another machine's id with my secret.
    let r = server
        .reinstall_raw(key, their_id, &mine.secret, &body)
        .await;
    expect_error(r, 401, "CLIENT_SECRET_INVALID").await;
    let r = server.uninstall_raw(their_id, &mine.secret).await;
    expect_error(r, 401, "CLIENT_SECRET_INVALID").await;
    // Unknown, malformed and blank.
    let unknown = uuid::Uuid::new_v4().to_string();
    for (id, secret, code) in [
        (
            unknown.as_str(),
            mine.secret.as_str(),
            "CLIENT_SECRET_INVALID",
        ),
        (
            "../../etc/passwd",
            mine.secret.as_str(),
            "CLIENT_SECRET_INVALID",
        ),
        ("", mine.secret.as_str(), "CLIENT_SECRET_INVALID"),
        (their_id, "", "CLIENT_SECRET_EMPTY"),
        (their_id, "  ", "CLIENT_SECRET_EMPTY"),
    ] {
        let r = server.reinstall_raw(key, id, secret, &body).await;
        expect_error(r, 401, code).await;
    }
    let r = server.uninstall_raw(their_id, "").await;
    expect_error(r, 401, "CLIENT_SECRET_EMPTY").await;
    // The right secret with another tenant's initial key: that tenant has no such machine.
    let r = server
        .reinstall_raw(globex.key.expose(), their_id, &theirs.secret, &body)
        .await;
    expect_error(r, 401, "CLIENT_SECRET_INVALID").await;
    // The initial key is checked before the machine credentials.
    let r = server
        .reinstall_raw("wrong", their_id, &theirs.secret, &body)
        .await;
    expect_error(r, 401, "INITIAL_KEY_INVALID").await;

    let after = server.machine(&acme.id, &theirs.machine_id).await.unwrap();
    assert_eq!(after, before, "nothing changed");
    let client = server.stack.clients.get(&acme.id, &theirs.client_id).await;
    assert!(client.unwrap().unwrap().enabled);
    assert_eq!(server.machine_count(&globex.id).await, 0);
    server.token(&theirs).await;
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_400_and_413() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let key = acme.key.expose();
    let post_raw = |body: Vec<u8>| {
        server
            .http
            .post(server.url(enrollment::REGISTER_PATH))
            .header("X-Initial-Key", key)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };

    for raw in [
        &b"{not json"[..],
        b"",
        b"[1,2,3]",
        b"null",
        b"{\"hostname\": 42, \"agentVersion\": \"1\", \"osType\": \"WINDOWS\"}",
        b"{\"hostname\": \"vm\", \"agentVersion\": \"1\", \"osType\": \"WINDOWS\", \"tags\": \"x\"}",
        b"{\"hostname\": \"\xff\xfe\"}",
        &[b'['; 10_000][..],
    ] {
        let r = post_raw(raw.to_vec()).await.unwrap();
        let body = expect_error(r, 400, "VALIDATION_ERROR").await;
        assert_eq!(body["fieldErrors"][0]["field"], "body", "{body}");
    }
    let huge = json!({"hostname": "vm", "agentVersion": "1", "osType": "WINDOWS",
                      "padding": "x".repeat(70 * 1024)});
    let r = post_raw(serde_json::to_vec(&huge).unwrap()).await.unwrap();
    expect_error(r, 413, "PAYLOAD_TOO_LARGE").await;

    let valid = |extra: Json| {
        let mut body = json!({"hostname": "vm", "agentVersion": "1", "osType": "WINDOWS"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let too_many_tags: Vec<Json> = (0..51).map(|i| json!({"key": format!("k{i}")})).collect();
    let cases = [
        (
            json!({"agentVersion": "1", "osType": "WINDOWS"}),
            "hostname",
        ),
        (valid(json!({"hostname": "h".repeat(256)})), "hostname"),
        (valid(json!({"hostname": "a\u{7}b"})), "hostname"),
        (
            json!({"hostname": "vm", "osType": "WINDOWS"}),
            "agentVersion",
        ),
        (valid(json!({"osType": "SOLARIS"})), "osType"),
        (json!({"hostname": "vm", "agentVersion": "1"}), "osType"),
        (
            valid(json!({"organizationId": uuid::Uuid::new_v4().to_string()})),
            "organizationId",
        ),
        (
            valid(json!({"organizationId": "not/an id"})),
            "organizationId",
        ),
        (valid(json!({"tags": too_many_tags})), "tags"),
        (valid(json!({"tags": [{"key": ""}]})), "tags"),
        (valid(json!({"ip": "999.1.1.1"})), "ip"),
    ];
    for (body, field) in cases {
        let r = server.register_raw(Some(key), &body).await;
        let err = expect_error(r, 400, "VALIDATION_ERROR").await;
        assert_eq!(err["fieldErrors"][0]["field"], field, "{err}");
    }
    let r = server
        .register_raw(Some(key), &valid(json!({"osType": "SOLARIS"})))
        .await;
    let err = expect_error(r, 400, "VALIDATION_ERROR").await;
    let msg = err["fieldErrors"][0]["message"].as_str().unwrap();
    for os in ["WINDOWS", "MAC_OS", "LINUX"] {
        assert!(msg.contains(os), "{msg}");
    }

    // Nothing was created by any of it: no machine, no client, no index record, no tag.
    assert_eq!(server.machine_count(&acme.id).await, 0);
    let clients = Partition::tenant(&acme.id);
    assert_eq!(server.count(OAuthClient::SCHEMA, &clients).await, 0);
    let index = schema("agent_client_tenants");
    assert_eq!(server.count(index, &Partition::platform()).await, 0);
    let no_filter = Default::default();
    let tags = server.stack.repos.tags.count(&acme.id, &no_filter);
    assert_eq!(tags.await.unwrap(), 0);

    // Reinstall and token bodies are bounded and checked too.
    let m = server.register(&acme, "vm").await;
    let r = server
        .http
        .post(server.url(enrollment::REINSTALL_PATH))
        .header("X-Initial-Key", key)
        .header("X-Machine-Id", m.machine_id.as_str())
        .header("X-Client-Secret", &m.secret)
        .body("{\"hostname\":")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "VALIDATION_ERROR").await;
    let r = server
        .http
        .post(server.url(enrollment::TOKEN_PATH))
        .body(vec![b'a'; 100 * 1024])
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "PAYLOAD_TOO_LARGE").await;
}

#[tokio::test]
async fn brute_force_of_initial_keys_is_throttled_per_ip() {
    let server = Server::start_with(EnrollmentConfig {
        initial_key_quota_per_ip: vec![Quota::per_minute(5)],
        ..EnrollmentConfig::default()
    })
    .await;
    let acme = server.tenant("acme").await;
    let body = agent_body("vm");
    let guess = || server.register_raw(Some("guess"), &body);

    // A success clears the counter: failures around successes never add up.
    for _ in 0..4 {
        expect_error(guess().await, 401, "INITIAL_KEY_INVALID").await;
    }
    server.register(&acme, "ok").await;
    for _ in 0..5 {
        expect_error(guess().await, 401, "INITIAL_KEY_INVALID").await;
    }
    // Over quota: 429 with Retry-After, for wrong and right keys alike (no oracle), on
    // register and reinstall.
    let r = guess().await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    expect_error(r, 429, "RATE_LIMITED").await;
    let r = server.register_raw(Some(acme.key.expose()), &body).await;
    expect_error(r, 429, "RATE_LIMITED").await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let r = server
        .reinstall_raw(acme.key.expose(), &unknown, "s", &body)
        .await;
    expect_error(r, 429, "RATE_LIMITED").await;
    // A blank key is not a guess.
    let r = server.register_raw(None, &body).await;
    expect_error(r, 401, "INITIAL_KEY_EMPTY").await;

    // Time heals.
    server.clock.advance(Duration::from_secs(retry));
    server.register(&acme, "later").await;
}

#[tokio::test]
async fn rotation_invalidates_the_old_key_at_once() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    let secrets = server.service.secrets();
    let again = secrets.ensure(&acme.id).await.unwrap();
    assert_eq!(again, acme.key, "ensure is stable");
    server.register(&acme, "before").await;

    let new = secrets.rotate(&acme.id).await.unwrap();
    assert_ne!(new, acme.key);
    assert_eq!(new.len(), 43);
    assert_eq!(secrets.active(&acme.id).await.unwrap(), new);
    let r = server
        .register_raw(Some(acme.key.expose()), &agent_body("old-key"))
        .await;
    expect_error(r, 401, "INITIAL_KEY_INVALID").await;
    let r = server
        .register_raw(Some(new.expose()), &agent_body("new-key"))
        .await;
    assert_eq!(r.status(), 200);
    let c = creds(&r.json().await.unwrap());
    // Reinstall needs the current key too.
    let id = c.machine_id.as_str();
    let r = server
        .reinstall_raw(acme.key.expose(), id, &c.secret, &agent_body("x"))
        .await;
    expect_error(r, 401, "INITIAL_KEY_INVALID").await;
    let r = server
        .reinstall_raw(new.expose(), id, &c.secret, &agent_body("x"))
        .await;
    assert_eq!(r.status(), 200);

    // The retired record keeps no sealed value; the other tenant is untouched.
    let bodies = server
        .bodies(
            schema("agent_registration_secrets"),
            &Partition::tenant(&acme.id),
        )
        .await;
    let records: Vec<Json> = bodies
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records.iter().filter(|r| r["active"] == true).count(), 1);
    assert!(
        records
            .iter()
            .all(|r| (r["active"] == true) == r["sealed"].is_string())
    );
    let lookups = schema("agent_registration_secret_lookup");
    assert_eq!(server.count(lookups, &Partition::platform()).await, 2);
    assert_eq!(secrets.active(&globex.id).await.unwrap(), globex.key);
    let resolved = secrets.resolve(globex.key.expose()).await.unwrap();
    assert_eq!(resolved, globex.id);
}

#[tokio::test]
async fn the_secret_endpoint_wants_an_agent() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    assert_eq!(server.active_secret_raw(None).await.status(), 401);
    assert_eq!(
        server.active_secret_raw(Some("garbage")).await.status(),
        401
    );
    // A valid token of the tenant without the AGENT role.
    let mut req = AccessTokenRequest::new(acme.id.clone(), "console", "console");
    req.roles = vec!["ADMIN".into()];
    let admin = server.stack.tokens.issue_access_token(req).await.unwrap();
    assert_eq!(
        server.active_secret_raw(Some(&admin.token)).await.status(),
        403
    );
}

// ---------------------------------------------------------------------------------------
// Rollback

#[tokio::test]
async fn a_failed_registration_leaves_nothing_behind() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let clients = Partition::tenant(&acme.id);
    let index = schema("agent_client_tenants");
    for collection in ["machines", "agent_client_tenants", "oauth_clients"] {
        server.store.fail_inserts_into(Some(collection));
        let r = server
            .register_raw(Some(acme.key.expose()), &agent_body("vm"))
            .await;
        let body = expect_error(r, 503, "DATABASE_ERROR").await;
        assert!(!body.to_string().contains("injected"), "{body}");
        server.store.fail_inserts_into(None);
        assert_eq!(server.machine_count(&acme.id).await, 0, "{collection}");
        assert_eq!(
            server.count(OAuthClient::SCHEMA, &clients).await,
            0,
            "{collection}"
        );
        assert_eq!(
            server.count(index, &Partition::platform()).await,
            0,
            "{collection}"
        );
    }
    assert!(server.events.events().is_empty());
    server.register(&acme, "vm").await;
}
