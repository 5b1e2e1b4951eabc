//! End to end over the real binary: first start, health and readiness, OIDC discovery,
//! agent enrollment with the printed secret, idempotent restart, bad configuration, SIGTERM.

use crate::support::{Spawned, command, enroll, http};
use serde_json::Value;

/// The status of a plain GET.
async fn status_of(url: &str) -> u16 {
    http().get(url).send().await.unwrap().status().as_u16()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.replace('+', "%2B")
                    .replace('/', "%2F")
                    .replace('=', "%3D")
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_serves_health_discovery_and_enrolls_an_agent_with_the_printed_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = Spawned::start(&dir.path().join("data"), &[], &[]);
    let client = http();

    // The summary: credentials shown once, and the URLs to open.
    assert_eq!(server.get("tenant"), Some("default"));
    assert_eq!(server.get("owner email"), Some("owner@default.localhost"));
    let password = server
        .get("owner password")
        .expect("a generated password")
        .to_owned();
    assert!(password.len() >= 20, "{password}");
    let secret = server
        .get("registration secret")
        .expect("a registration secret")
        .to_owned();
    let issuer = server.get("issuer").unwrap().to_owned();
    assert_eq!(issuer, server.url("/sas/default"));
    assert!(dir.path().join("data/master.key").exists());
    assert!(dir.path().join("data/openframe.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("data/master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the master key must be private, mode {mode:o}"
        );
    }

    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["database"]["backend"], "sqlite");
    assert_eq!(ready["checks"]["database"]["status"], "up");
    for check in ["redis", "agentBus", "eventBus"] {
        assert_eq!(ready["checks"][check]["status"], "up", "{ready}");
    }

    let discovery: Value = client
        .get(server.get("OIDC discovery").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], issuer);
    let jwks: Value = client
        .get(discovery["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!jwks["keys"].as_array().unwrap().is_empty());

    // A wrong key is refused; the printed one enrolls a machine whose credentials get a token.
    let (status, body) = enroll(&server, "not-the-secret").await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = enroll(&server, &secret).await;
    assert_eq!(status, 200, "{body}");
    let client_id = body["clientId"].as_str().unwrap();
    let token = client
        .post(server.url("/clients/oauth/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", body["clientSecret"].as_str().unwrap()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let token: Value = token.json().await.unwrap();
    assert!(token["accessToken"].as_str().unwrap().contains('.'));

    // The API gateway is mounted: GraphiQL, GraphQL and the external API refuse anonymous
    // callers, the OpenAPI document is public, and every answer carries a request id.
    let graphiql = client
        .get(server.get("GraphiQL").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(graphiql.status(), 200);
    assert!(graphiql.headers().contains_key("x-request-id"));
    let anonymous = client
        .post(server.url("/api/graphql"))
        .json(&serde_json::json!({"query": "{ devices(first: 1) { edges { cursor } } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(status_of(&server.url("/api/v1/devices")).await, 401);
    // Mounted because the event store is wired (404 otherwise).
    assert_eq!(status_of(&server.url("/api/v1/events")).await, 401);
    assert_eq!(status_of(&server.url("/api/v1/openapi.json")).await, 200);

    // Every request above is in the metrics under its route template, not its raw path.
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"route="/clients/api/agents/register",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"route="/clients/api/agents/register",status="401"} 1"#));
    assert!(metrics.contains(r#"route="/sas/{tenant}/.well-known/openid-configuration""#));
    assert!(metrics.contains("openframe_agents_online 0"));

    // The printed CLI client gets an ADMIN token from the tenant's issuer, and it opens GraphQL,
    // where the enrolled machine is listed.
    let cli = server
        .get("CLI client")
        .expect("the CLI client line")
        .to_owned();
    let (cli_id, rest) = cli.split_once(" / ").expect("id / secret");
    let cli_secret = rest.split_whitespace().next().unwrap().to_owned();
    let token: serde_json::Value = client
        .post(format!("{issuer}/oauth2/token"))
        .basic_auth(cli_id, Some(&cli_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().expect("an access token");
    let graphql: serde_json::Value = client
        .post(server.url("/api/graphql"))
        .bearer_auth(access)
        .json(&serde_json::json!({"query": "{ devices(first: 5) { filteredCount } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(graphql["data"]["devices"]["filteredCount"], 1, "{graphql}");

    // Nothing secret reached the logs.
    let (status, stderr) = server.terminate();
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(!stderr.contains("ERROR"), "an error was logged:\n{stderr}");
    for leaked in [password.as_str(), secret.as_str(), cli_secret.as_str()] {
        assert!(!stderr.contains(leaked), "a secret was logged:\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_start_finds_the_tenant_and_keeps_keys_and_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Spawned::start(&data, &[], &[]);
    let secret = first.get("registration secret").unwrap().to_owned();
    let client = http();
    let kid = |jwks: Value| jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    let first_kid = kid(client
        .get(first.url("/sas/default/oauth2/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap());
    let (status, _) = first.terminate();
    assert!(status.success());

    let second = Spawned::start(&data, &[], &[]);
    assert!(
        second.get("owner password").is_none(),
        "{:#?}",
        second.stdout
    );
    assert!(second.get("registration secret").is_none());
    assert!(
        second
            .stdout
            .iter()
            .any(|l| l.contains("Tenant `default` exists"))
    );
    assert!(
        second
            .stdout
            .iter()
            .any(|l| l.contains("development master key (from the data directory)"))
    );
    // Same master key, same signing key, same registration secret.
    let second_kid = kid(client
        .get(second.url("/sas/default/oauth2/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap());
    assert_eq!(first_kid, second_kid);
    let (status, body) = enroll(&second, &secret).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = second.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_owner_credentials_are_used_and_not_printed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Spawned::start(
        &dir.path().join("data"),
        &["--owner-email", "ops@msp.example"],
        &[
            ("OPENFRAME_OWNER_PASSWORD", "Configured-Pass-2024"),
            ("OPENFRAME_TENANT_ID", "acme"),
        ],
    );
    assert_eq!(server.get("owner email"), Some("ops@msp.example"));
    assert_eq!(server.get("owner password"), Some("(as configured)"));
    assert!(!server.stdout.join("\n").contains("Configured-Pass-2024"));
    let discovery = http()
        .get(server.url("/sas/acme/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(discovery.status(), 200);
}

#[test]
fn bad_configuration_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[database]\nurll = \"sqlite://x\"\n").unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            vec![],
            vec![("OPENFRAME_DATABASE_URL", "postgres://db/of")],
            "database.url",
        ),
        (
            vec![],
            vec![("OPENFRAME_REDIS_URL", "memcached://c")],
            "redis.url",
        ),
        (vec!["--listen", "nowhere"], vec![], "listen"),
        (
            vec!["--config", file.to_str().unwrap()],
            vec![],
            "unknown field `urll`",
        ),
        (
            vec![],
            vec![("OPENFRAME_MASTER_KEY", "too-short")],
            "security.master_key",
        ),
        (
            vec![],
            vec![("OPENFRAME_EVENT_BUS_URL", "amqp://broker:5672")],
            "event_bus.url",
        ),
    ];
    for (args, env, expected) in cases {
        let mut cmd = command();
        cmd.args(["serve", "--data-dir", data])
            .env("OPENFRAME_LISTEN", "127.0.0.1:0")
            .args(&args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("invalid configuration"), "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected} in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn config_prints_the_effective_configuration_with_secrets_redacted() {
    let out = command()
        .args(["config", "--listen", "0.0.0.0:9999"])
        .env("OPENFRAME_REDIS_URL", "redis://:redis-pass@cache:6379")
        .env(
            "OPENFRAME_MASTER_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("listen = \"0.0.0.0:9999\""), "{text}");
    assert!(text.contains("redis://:<redacted>@cache:6379"), "{text}");
    assert!(text.contains("sqlite://"), "{text}");
    assert!(
        !text.contains("redis-pass") && !text.contains("AAECAwQF"),
        "{text}"
    );
}

#[test]
fn every_subcommand_has_help_and_version_prints() {
    for sub in ["serve", "config", "version"] {
        let out = command().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: openframe-server"),
            "{sub}"
        );
    }
    let serve_help =
        String::from_utf8(command().args(["serve", "--help"]).output().unwrap().stdout).unwrap();
    for flag in [
        "--listen",
        "--data-dir",
        "--config",
        "127.0.0.1:8080",
        "./openframe-server-data",
    ] {
        assert!(
            serve_help.contains(flag),
            "{flag} missing from:\n{serve_help}"
        );
    }
    let version = command().arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("openframe-server 0."));
}
