//! NATS decentralized auth: an operator, an application account (JetStream enabled), a system
//! account, and per-connection user JWTs with subject permissions.
//!
//! The JWTs follow the nats-jwt v2 format nats-server 2.9 accepts: header
//! `{"typ":"JWT","alg":"ed25519-nkey"}`, claims with `jti` (base32 of the SHA-512/256 of the
//! claims serialized with an empty `jti`), `iat`, optional `exp`, `iss` (the signer's public
//! key), `sub` (the subject's public key), `name` and `nats`; the signature is Ed25519 over
//! `header.claims` with the issuer's seed, all base64url without padding.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use openframe_core::{Error, MachineId, Result, Secret, Timestamp};
use serde_json::{Value, json};

use super::inbox::Inbox;
use crate::bus::agent_consumers;
use crate::subjects::{self, MachineSubject, is_reserved_machine_id};

/// The backend name used in errors.
const BACKEND: &str = "nats-auth";

/// The JWT header nats-server expects.
const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

/// How long an agent may answer a message it received with a reply subject (JetStream flow
/// control, requests): nats-server's `allow_responses` window, in nanoseconds.
const RESPONSE_TTL_NANOS: i64 = 120_000_000_000;

/// The subscription pattern of a session's own inbox namespace: `_INBOX_<tag>.>` (the proxy
/// moves the client's `_INBOX.` there, see the `inbox` module).
pub fn inbox_pattern(tag: &str) -> String {
    Inbox::new(tag).pattern()
}

/// Where nats-server's config snippet listens (see [`NatsAuthority::server_config`]).
#[derive(Debug, Clone)]
pub struct ServerConfigOptions {
    /// Host of both listeners (e.g. `127.0.0.1`).
    pub host: String,
    /// The NATS client port (for the server's own, privileged connections).
    pub port: u16,
    /// The plain (no TLS) WebSocket port the proxy connects to.
    pub websocket_port: u16,
    /// The JetStream store directory.
    pub store_dir: String,
}

/// A user's credentials: its JWT and its seed (both secret; `Debug` shows neither).
#[derive(Clone)]
pub struct UserCredentials {
    jwt: Secret,
    key: Arc<KeyPair>,
}

impl fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserCredentials")
            .field("public_key", &self.key.public_key())
            .finish_non_exhaustive()
    }
}

impl UserCredentials {
    /// The user JWT (to put in the NATS `CONNECT` as `jwt`).
    pub fn jwt(&self) -> &str {
        self.jwt.expose()
    }

    /// The user's public key (`U...`).
    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// The user's seed (`SU...`).
    pub fn seed(&self) -> Result<Secret> {
        self.key
            .seed()
            .map(Secret::new)
            .map_err(|e| Error::backend(BACKEND, e.to_string()))
    }

    /// The `sig` of a NATS `CONNECT`: the server's `nonce` signed with the user's seed,
    /// base64url without padding.
    pub fn sign_nonce(&self, nonce: &str) -> Result<String> {
        let signature = self
            .key
            .sign(nonce.as_bytes())
            .map_err(|e| Error::backend(BACKEND, e.to_string()))?;
        Ok(URL_SAFE_NO_PAD.encode(signature))
    }

    /// A NATS `.creds` file (JWT and seed), as NATS clients load it.
    pub fn creds_file(&self) -> Result<Secret> {
        let seed = self.seed()?;
        Ok(Secret::new(format!(
            "-----BEGIN NATS USER JWT-----\n{}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            self.jwt.expose(),
            seed.expose()
        )))
    }
}

/// Publish and subscribe allow-lists of a user (everything else is denied).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPermissions {
    /// Subjects (and wildcard patterns) the user may publish to.
    pub publish: Vec<String>,
    /// Subjects (and wildcard patterns) the user may subscribe to.
    pub subscribe: Vec<String>,
    /// Whether the user may publish once to the reply subject of a message it received
    /// (nats-server's `allow_responses`; JetStream flow control and plain requests need it).
    pub responses: bool,
}

impl UserPermissions {
    /// What the agent of `machine_id` may do: publish on `machine.{id}.>`, create and look up
    /// its own durable consumers (the `$JS.API.CONSUMER.CREATE.{stream}.{durable}.{filter}`
    /// form only, so nats-server pins the filter subject), ack their deliveries, ask
    /// `$JS.API.INFO` and answer what it receives (`allow_responses`); subscribe to
    /// `machine.{id}.>`, the two broadcasts and its own inbox namespace `_INBOX_{id}.>` (never
    /// the shared `_INBOX.>`: the proxy rewrites the agent's inboxes into its namespace).
    ///
    /// The forms without the filter in the subject (`CONSUMER.CREATE.{stream}.{durable}`,
    /// `CONSUMER.DURABLE.CREATE...`) are left out on purpose: their filter is only in the body,
    /// so an agent could bind its durable name to another machine's subjects.
    /// `InvalidInput` if the machine id is reserved.
    pub fn agent(machine_id: &MachineId) -> Result<Self> {
        if is_reserved_machine_id(machine_id) {
            return Err(Error::invalid(
                MachineId::FIELD,
                "`all` is the broadcast token, not a machine id",
            ));
        }
        let own = MachineSubject::wildcard(machine_id);
        let mut publish = vec![own.clone(), "$JS.API.INFO".to_owned()];
        for consumer in agent_consumers(machine_id)? {
            let (stream, durable) = (&consumer.stream, &consumer.durable_name);
            if let Some(filter) = &consumer.filter_subject {
                publish.push(format!(
                    "$JS.API.CONSUMER.CREATE.{stream}.{durable}.{filter}"
                ));
            }
            publish.push(format!("$JS.API.CONSUMER.INFO.{stream}.{durable}"));
            publish.push(format!("$JS.ACK.{stream}.{durable}.>"));
        }
        Ok(Self {
            publish,
            subscribe: vec![
                own,
                subjects::CLIENT_UPDATE.to_owned(),
                subjects::TOOL_UPDATE_PATTERN.to_owned(),
                inbox_pattern(machine_id.as_str()),
            ],
            responses: true,
        })
    }

    /// What a log shipper may do: publish on `agents.logs` and receive its JetStream
    /// acknowledgements in its own inbox namespace `_INBOX_{inbox_tag}.>`.
    pub fn log_shipper(inbox_tag: &str) -> Self {
        Self {
            publish: vec![subjects::AGENT_LOGS.to_owned()],
            subscribe: vec![inbox_pattern(inbox_tag)],
            responses: false,
        }
    }
}

/// An operator with one application account (JetStream enabled, where the agent streams live)
/// and a system account; signs user JWTs for the NATS proxy and for the server's own
/// connections. `Debug` shows public keys only.
#[derive(Clone)]
pub struct NatsAuthority {
    name: String,
    operator: Arc<KeyPair>,
    account: Arc<KeyPair>,
    system: Arc<KeyPair>,
}

impl fmt::Debug for NatsAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsAuthority")
            .field("name", &self.name)
            .field("operator", &self.operator.public_key())
            .field("account", &self.account.public_key())
            .finish_non_exhaustive()
    }
}

/// The three seeds of a [`NatsAuthority`], to store and restore it.
#[derive(Debug, Clone)]
pub struct AuthoritySeeds {
    /// The operator seed (`SO...`).
    pub operator: Secret,
    /// The application account seed (`SA...`).
    pub account: Secret,
    /// The system account seed (`SA...`).
    pub system: Secret,
}

fn key_error(e: nkeys::error::Error) -> Error {
    Error::backend(BACKEND, e.to_string())
}

impl NatsAuthority {
    /// Fresh keys; `name` names the operator and prefixes the accounts.
    pub fn generate(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            operator: Arc::new(KeyPair::new_operator()),
            account: Arc::new(KeyPair::new_account()),
            system: Arc::new(KeyPair::new_account()),
        }
    }

    /// Restores an authority from its seeds (`InvalidInput` on a seed of the wrong kind).
    pub fn from_seeds(name: impl Into<String>, seeds: &AuthoritySeeds) -> Result<Self> {
        let load = |seed: &Secret, prefix: &str, field: &'static str| {
            if !seed.expose().starts_with(prefix) {
                return Err(Error::invalid(field, "not a seed of the right kind"));
            }
            KeyPair::from_seed(seed.expose())
                .map(Arc::new)
                .map_err(|_| Error::invalid(field, "not a valid seed"))
        };
        Ok(Self {
            name: name.into(),
            operator: load(&seeds.operator, "SO", "operator")?,
            account: load(&seeds.account, "SA", "account")?,
            system: load(&seeds.system, "SA", "system")?,
        })
    }

    /// The seeds (secret).
    pub fn seeds(&self) -> Result<AuthoritySeeds> {
        Ok(AuthoritySeeds {
            operator: Secret::new(self.operator.seed().map_err(key_error)?),
            account: Secret::new(self.account.seed().map_err(key_error)?),
            system: Secret::new(self.system.seed().map_err(key_error)?),
        })
    }

    /// The application account's public key (`A...`).
    pub fn account_public_key(&self) -> String {
        self.account.public_key()
    }

    /// The system account's public key (`A...`).
    pub fn system_account_public_key(&self) -> String {
        self.system.public_key()
    }

    /// The operator JWT (self-signed, naming the system account).
    pub fn operator_jwt(&self) -> Result<String> {
        let op = self.operator.public_key();
        encode(
            claims(
                &op,
                &op,
                &self.name,
                None,
                json!({
                    "system_account": self.system.public_key(),
                    "type": "operator",
                    "version": 2,
                }),
            ),
            &self.operator,
        )
    }

    /// The application account JWT: unlimited, JetStream enabled.
    pub fn account_jwt(&self) -> Result<String> {
        self.account_jwt_of(&self.account, &format!("{}-agents", self.name), true)
    }

    /// The system account JWT.
    pub fn system_account_jwt(&self) -> Result<String> {
        self.account_jwt_of(&self.system, &format!("{}-system", self.name), false)
    }

    fn account_jwt_of(&self, account: &KeyPair, name: &str, jetstream: bool) -> Result<String> {
        let storage = if jetstream { -1 } else { 0 };
        let mut limits = json!({
            "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
            "wildcards": true, "conn": -1, "leaf": -1,
        });
        if jetstream {
            if let Some(map) = limits.as_object_mut() {
                for key in ["mem_storage", "disk_storage", "streams", "consumer"] {
                    map.insert(key.to_owned(), json!(storage));
                }
            }
        }
        encode(
            claims(
                &self.operator.public_key(),
                &account.public_key(),
                name,
                None,
                json!({
                    "limits": limits,
                    "default_permissions": { "pub": {}, "sub": {} },
                    "type": "account",
                    "version": 2,
                }),
            ),
            &self.operator,
        )
    }

    /// A nats-server configuration in operator mode with a memory resolver preloaded with both
    /// accounts, a plain WebSocket listener and JetStream.
    pub fn server_config(&self, options: &ServerConfigOptions) -> Result<String> {
        let quoted = |s: &str| serde_json::to_string(s).map_err(|e| Error::backend(BACKEND, e));
        Ok(format!(
            "listen: {listen}\n\
             operator: {operator}\n\
             system_account: {system}\n\
             resolver: MEMORY\n\
             resolver_preload: {{\n  {account}: {account_jwt}\n  {system}: {system_jwt}\n}}\n\
             websocket {{\n  listen: {ws}\n  no_tls: true\n}}\n\
             jetstream {{\n  store_dir: {store}\n}}\n",
            listen = quoted(&format!("{}:{}", options.host, options.port))?,
            operator = quoted(&self.operator_jwt()?)?,
            system = self.system.public_key(),
            account = self.account.public_key(),
            account_jwt = quoted(&self.account_jwt()?)?,
            system_jwt = quoted(&self.system_account_jwt()?)?,
            ws = quoted(&format!("{}:{}", options.host, options.websocket_port))?,
            store = quoted(&options.store_dir)?,
        ))
    }

    /// A user of the application account with `permissions` (`None`: no restriction), valid
    /// until `expires_at` (`None`: no expiry). Each call makes a fresh user key pair.
    pub fn user(
        &self,
        name: &str,
        permissions: Option<&UserPermissions>,
        expires_at: Option<Timestamp>,
    ) -> Result<UserCredentials> {
        let user = KeyPair::new_user();
        let mut nats = json!({
            "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2,
        });
        if let (Some(p), Some(map)) = (permissions, nats.as_object_mut()) {
            map.insert("pub".to_owned(), json!({ "allow": p.publish }));
            map.insert("sub".to_owned(), json!({ "allow": p.subscribe }));
            if p.responses {
                map.insert(
                    "resp".to_owned(),
                    json!({ "max": 1, "ttl": RESPONSE_TTL_NANOS }),
                );
            }
        }
        let jwt = encode(
            claims(
                &self.account.public_key(),
                &user.public_key(),
                name,
                expires_at,
                nats,
            ),
            &self.account,
        )?;
        Ok(UserCredentials {
            jwt: Secret::new(jwt),
            key: Arc::new(user),
        })
    }

    /// The user the NATS proxy presents for the agent of `machine_id`
    /// ([`UserPermissions::agent`]).
    pub fn user_jwt_for(
        &self,
        machine_id: &MachineId,
        expires_at: Option<Timestamp>,
    ) -> Result<UserCredentials> {
        let permissions = UserPermissions::agent(machine_id)?;
        self.user(
            &format!("machine-{machine_id}"),
            Some(&permissions),
            expires_at,
        )
    }

    /// The user the NATS proxy presents for a log shipper whose inbox namespace is
    /// `_INBOX_{inbox_tag}.` ([`UserPermissions::log_shipper`]).
    pub fn log_shipper_jwt(
        &self,
        name: &str,
        inbox_tag: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<UserCredentials> {
        self.user(
            name,
            Some(&UserPermissions::log_shipper(inbox_tag)),
            expires_at,
        )
    }

    /// An unrestricted user of the application account, for the server's own connections.
    pub fn privileged_user(
        &self,
        name: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<UserCredentials> {
        self.user(name, None, expires_at)
    }
}

fn claims(iss: &str, sub: &str, name: &str, exp: Option<Timestamp>, nats: Value) -> Value {
    let mut claims = json!({
        "jti": "",
        "iat": chrono::Utc::now().timestamp(),
        "iss": iss,
        "name": name,
        "sub": sub,
        "nats": nats,
    });
    if let (Some(exp), Some(map)) = (exp, claims.as_object_mut()) {
        map.insert("exp".to_owned(), json!(exp.timestamp()));
    }
    claims
}

/// Sets `jti`, serializes, signs with `signer`.
fn encode(mut claims: Value, signer: &KeyPair) -> Result<String> {
    let blank = serde_json::to_vec(&claims).map_err(|e| Error::backend(BACKEND, e))?;
    let hash = digest::digest(&digest::SHA512_256, &blank);
    let jti = data_encoding::BASE32_NOPAD.encode(hash.as_ref());
    if let Some(map) = claims.as_object_mut() {
        map.insert("jti".to_owned(), Value::String(jti));
    }
    let body = serde_json::to_vec(&claims).map_err(|e| Error::backend(BACKEND, e))?;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(body)
    );
    let signature = signer.sign(signing_input.as_bytes()).map_err(key_error)?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(jwt: &str) -> Value {
        let claims = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()
    }

    #[test]
    fn user_jwt_shape_and_signature() {
        let authority = NatsAuthority::generate("test");
        let id = MachineId::parse("m1").unwrap();
        let creds = authority.user_jwt_for(&id, None).unwrap();
        let parts: Vec<&str> = creds.jwt().split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[0]).unwrap(), HEADER.as_bytes());
        let c = decode(creds.jwt());
        assert_eq!(c["iss"], authority.account_public_key());
        assert_eq!(c["sub"], creds.public_key());
        assert_eq!(c["nats"]["type"], "user");
        assert_eq!(c["nats"]["version"], 2);
        assert!(
            c["nats"]["pub"]["allow"]
                .as_array()
                .unwrap()
                .contains(&json!("machine.m1.>"))
        );
        assert_eq!(c["jti"].as_str().unwrap().len(), 52);
        let account = KeyPair::from_public_key(&authority.account_public_key()).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        account
            .verify(
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .unwrap();
        let sig = creds.sign_nonce("abc").unwrap();
        KeyPair::from_public_key(&creds.public_key())
            .unwrap()
            .verify(b"abc", &URL_SAFE_NO_PAD.decode(sig).unwrap())
            .unwrap();
        assert!(!format!("{creds:?}").contains(creds.jwt()));
    }

    #[test]
    fn agent_permissions_pin_filters() {
        let id = MachineId::parse("m1").unwrap();
        let p = UserPermissions::agent(&id).unwrap();
        assert!(p.publish.contains(&"$JS.API.CONSUMER.CREATE.TOOL_INSTALLATION.machine_m1_tool-installation_consumer.machine.m1.tool-installation".to_owned()));
        assert!(!p.publish.iter().any(|s| s.contains("DURABLE")));
        assert!(p.subscribe.contains(&"_INBOX_m1.>".to_owned()));
        assert!(!p.subscribe.iter().any(|s| s.starts_with("_INBOX.")));
        assert!(p.responses);
        assert!(UserPermissions::agent(&MachineId::parse("all").unwrap()).is_err());
    }

    #[test]
    fn seeds_round_trip() {
        let a = NatsAuthority::generate("x");
        let b = NatsAuthority::from_seeds("x", &a.seeds().unwrap()).unwrap();
        assert_eq!(a.account_public_key(), b.account_public_key());
    }
}
