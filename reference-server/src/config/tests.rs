use std::collections::HashMap;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Sources {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Sources::default().with_env(move |name| map.get(name).cloned())
}

#[test]
fn defaults_are_the_embedded_platform() {
    let c = ServerConfig::load(&Sources::default()).unwrap();
    assert_eq!(c.listen_addr().unwrap().to_string(), "127.0.0.1:8080");
    assert_eq!(
        c.storage().unwrap(),
        StorageBackend::Sqlite(PathBuf::from("./openframe-server-data/openframe.db"))
    );
    assert_eq!(c.coordination().unwrap(), CoordinationBackend::InProcess);
    assert_eq!(c.event_bus().unwrap(), BusBackend::InProcess);
    assert_eq!(c.agent_bus().unwrap(), BusBackend::InProcess);
    let bound: SocketAddr = "127.0.0.1:4321".parse().unwrap();
    assert_eq!(
        c.public_url_for(bound).unwrap().as_str(),
        "http://127.0.0.1:4321/"
    );
}

#[test]
fn schemes_select_backends_and_env_beats_file_and_flags_beat_env() {
    let file = r#"
        listen = "0.0.0.0:9000"
        [database]
        url = "sqlite:///var/lib/of/x.db"
        [redis]
        url = "redis://file:6379"
    "#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, file).unwrap();
    let mut sources = env(&[
        ("OPENFRAME_DATABASE_URL", "mongodb://u:p@mongo:27017"),
        ("OPENFRAME_MONGODB_DATABASE", "of"),
        ("OPENFRAME_KAFKA_URL", "kafka://broker:9092"),
        ("OPENFRAME_NATS_URL", "nats://nats:4222"),
        ("OPENFRAME_LISTEN", "0.0.0.0:9001"),
    ])
    .with_file(&path);
    sources.overrides.listen = Some("127.0.0.1:9002".into());
    let c = ServerConfig::load(&sources).unwrap();
    assert_eq!(c.listen, "127.0.0.1:9002");
    assert!(
        matches!(c.storage().unwrap(), StorageBackend::Mongo { database, .. } if database == "of")
    );
    assert!(
        matches!(c.coordination().unwrap(), CoordinationBackend::Redis { url, .. } if url.expose() == "redis://file:6379")
    );
    assert!(matches!(c.event_bus().unwrap(), BusBackend::Kafka(_)));
    assert!(matches!(c.agent_bus().unwrap(), BusBackend::Nats(_)));
    let memory = ServerConfig::load(&env(&[("OPENFRAME_DATABASE_URL", "memory://")])).unwrap();
    assert_eq!(memory.storage().unwrap(), StorageBackend::Memory);
}

#[test]
fn bad_values_name_their_field() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("OPENFRAME_DATABASE_URL", "postgres://x")],
            "database.url",
        ),
        (&[("OPENFRAME_REDIS_URL", "memcached://x")], "redis.url"),
        (&[("OPENFRAME_AGENT_BUS_URL", "kafka://x")], "agent_bus.url"),
        (&[("OPENFRAME_EVENT_BUS_URL", "amqp://x")], "event_bus.url"),
        (&[("OPENFRAME_LISTEN", "localhost")], "listen"),
        (&[("OPENFRAME_PUBLIC_URL", "ftp://x")], "public_url"),
        (&[("OPENFRAME_LOG_FORMAT", "xml")], "OPENFRAME_LOG_FORMAT"),
        (&[("OPENFRAME_MASTER_KEY", "short")], "security.master_key"),
        (&[("OPENFRAME_TENANT_ID", "-bad")], "bootstrap.tenant_id"),
        (
            &[("OPENFRAME_OFFLINE_SWEEP_SECS", "soon")],
            "OPENFRAME_OFFLINE_SWEEP_SECS",
        ),
        (
            &[
                ("OPENFRAME_OFFLINE_SWEEP_SECS", "60"),
                ("OPENFRAME_OFFLINE_AFTER_SECS", "10"),
            ],
            "jobs.offline_after_secs",
        ),
        (
            &[("OPENFRAME_API_KEY_CACHE_SECS", "301")],
            "external_api.key_cache_secs",
        ),
        (
            &[("OPENFRAME_API_KEY_CACHE_SECS", "-1")],
            "OPENFRAME_API_KEY_CACHE_SECS",
        ),
    ];
    for (vars, field) in cases {
        let e = ServerConfig::load(&env(vars)).unwrap_err();
        assert_eq!(e.field, *field, "{vars:?}: {e}");
    }
    let cache = ServerConfig::load(&env(&[("OPENFRAME_API_KEY_CACHE_SECS", "0")])).unwrap();
    assert_eq!(cache.external_api.key_cache_secs, 0);
}

#[test]
fn unknown_file_keys_are_refused_with_their_line() {
    let e = ServerConfig::from_toml("listen = \"127.0.0.1:1\"\n[database]\nurll = \"x\"\n")
        .unwrap_err();
    assert!(e.reason.contains("unknown field `urll`"), "{e}");
    assert!(e.reason.contains("line 3"), "{e}");
}

#[test]
fn secrets_are_redacted_in_debug_and_in_the_dump() {
    let c = ServerConfig::load(&env(&[
        (
            "OPENFRAME_DATABASE_URL",
            "mongodb://admin:mongo-pw@db:27017",
        ),
        ("OPENFRAME_REDIS_URL", "redis://:redis-pw@cache:6379"),
        (
            "OPENFRAME_MASTER_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        ("OPENFRAME_OWNER_PASSWORD", "owner-pw-123456"),
    ]))
    .unwrap();
    for text in [format!("{c:?}"), c.to_redacted_toml()] {
        for secret in ["mongo-pw", "redis-pw", "AAECAwQF", "owner-pw"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        assert!(text.contains(REDACTED));
    }
    // The dump is itself a valid configuration file (with placeholders for secrets).
    assert!(c.to_redacted_toml().contains("[database]"));
}

#[test]
fn the_nats_proxy_needs_a_websocket_upstream_and_a_nats_agent_bus() {
    let field_of = |pairs: &[(&str, &str)]| {
        ServerConfig::load(&env(pairs))
            .and_then(|c| c.validate().map(|()| c))
            .err()
            .map(|e| e.field)
    };
    let upstream = ("OPENFRAME_NATS_PROXY_UPSTREAM", "ws://127.0.0.1:4223");
    let nats = ("OPENFRAME_NATS_URL", "nats://127.0.0.1:4222");
    // The agent traffic must reach the server's own agent bus.
    assert_eq!(
        field_of(&[upstream]).as_deref(),
        Some("nats_proxy.upstream")
    );
    for bad in [
        "nats://127.0.0.1:4222",
        "http://127.0.0.1:4223",
        "ws://user:pw@127.0.0.1:4223",
        "not a url",
    ] {
        assert_eq!(
            field_of(&[("OPENFRAME_NATS_PROXY_UPSTREAM", bad), nats]).as_deref(),
            Some("nats_proxy.upstream"),
            "{bad}"
        );
    }
    let c = ServerConfig::load(&env(&[
        upstream,
        nats,
        ("OPENFRAME_NATS_AUTHORITY_FILE", "/etc/of/nats.sealed"),
    ]))
    .unwrap();
    c.validate().unwrap();
    assert_eq!(
        c.nats_proxy.upstream_url().unwrap().unwrap().as_str(),
        "ws://127.0.0.1:4223/"
    );
    assert_eq!(
        c.nats_authority_path(),
        PathBuf::from("/etc/of/nats.sealed")
    );
    let unset = ServerConfig::load(&Sources::default()).unwrap();
    assert_eq!(unset.nats_proxy.upstream_url().unwrap(), None);
    assert_eq!(
        unset.nats_authority_path(),
        PathBuf::from("./openframe-server-data").join(NATS_AUTHORITY_FILE)
    );
}
