//! A real server (security stack + enrollment endpoints) on a loopback port, and helpers that
//! speak the original agent's wire format.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use openframe_agent::enrollment::{
    self, EnrollmentConfig, EnrollmentParts, EnrollmentService, RegistrationSecrets,
};
use openframe_agent::events::{AgentEventSink, RecordingEventSink};
use openframe_agent::sessions::{AgentSessions, ClosingSessions};
use openframe_core::{
    Clock, Error, Machine, MachineId, ManualClock, OrganizationId, Result, Secret, TenantId,
    TenantStatus, ToolConnection, ToolConnectionId, ToolType,
};
use openframe_data::MachineFilter;
use openframe_data::memory::InMemoryDocumentStore;
use openframe_data::store::{
    DocumentStore, FacetSpec, Filter, FindQuery, Partition, Schema, StoredDoc, Value,
};
use openframe_security::accounts::{AccountConfig, Argon2Params, SignUp};
use openframe_security::crypto::MasterKey;
use openframe_security::stack::SecurityStack;
use serde_json::{Value as Json, json};

pub const PASSWORD: &str = "Correct-Horse-42-battery";

/// A document store that can be told to fail inserts into one collection (to test rollback).
#[derive(Debug, Default)]
pub struct FlakyStore {
    inner: InMemoryDocumentStore,
    fail_inserts_into: Mutex<Option<&'static str>>,
    fail_replaces_into: Mutex<Option<&'static str>>,
}

impl FlakyStore {
    pub fn fail_inserts_into(&self, collection: Option<&'static str>) {
        *self.fail_inserts_into.lock().unwrap() = collection;
    }

    pub fn fail_replaces_into(&self, collection: Option<&'static str>) {
        *self.fail_replaces_into.lock().unwrap() = collection;
    }

    /// Writes a raw document (to forge stored state).
    pub async fn put(&self, s: &'static Schema, p: &Partition, doc: StoredDoc) {
        self.inner.insert(s, p, doc).await.unwrap();
    }
}

#[async_trait]
impl DocumentStore for FlakyStore {
    fn backend(&self) -> &'static str {
        "flaky-memory"
    }
    async fn get(&self, s: &'static Schema, p: &Partition, id: &str) -> Result<Option<StoredDoc>> {
        self.inner.get(s, p, id).await
    }
    async fn get_many(
        &self,
        s: &'static Schema,
        p: &Partition,
        ids: &[String],
    ) -> Result<Vec<StoredDoc>> {
        self.inner.get_many(s, p, ids).await
    }
    async fn insert(&self, s: &'static Schema, p: &Partition, doc: StoredDoc) -> Result<()> {
        if *self.fail_inserts_into.lock().unwrap() == Some(s.collection) {
            return Err(Error::backend("flaky-memory", "injected failure"));
        }
        self.inner.insert(s, p, doc).await
    }
    async fn replace(
        &self,
        s: &'static Schema,
        p: &Partition,
        doc: StoredDoc,
        expected: u64,
    ) -> Result<()> {
        if *self.fail_replaces_into.lock().unwrap() == Some(s.collection) {
            return Err(Error::backend("flaky-memory", "injected failure"));
        }
        self.inner.replace(s, p, doc, expected).await
    }
    async fn delete(&self, s: &'static Schema, p: &Partition, id: &str) -> Result<bool> {
        self.inner.delete(s, p, id).await
    }
    async fn find(
        &self,
        s: &'static Schema,
        p: &Partition,
        q: &FindQuery,
    ) -> Result<Vec<StoredDoc>> {
        self.inner.find(s, p, q).await
    }
    async fn count(&self, s: &'static Schema, p: &Partition, f: &Filter) -> Result<u64> {
        self.inner.count(s, p, f).await
    }
    async fn facet(
        &self,
        s: &'static Schema,
        p: &Partition,
        field: &'static str,
        f: &Filter,
    ) -> Result<Vec<(Value, u64)>> {
        self.inner.facet(s, p, field, f).await
    }
    async fn facet_many(
        &self,
        s: &'static Schema,
        p: &Partition,
        base: &Filter,
        facets: &[FacetSpec],
    ) -> Result<Vec<Vec<(Value, u64)>>> {
        self.inner.facet_many(s, p, base, facets).await
    }
}

/// A tenant signed up on the server, with its initial key.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: TenantId,
    pub default_org: OrganizationId,
    pub key: Secret,
}

/// The credentials a registration answered.
#[derive(Debug, Clone)]
pub struct Creds {
    pub machine_id: MachineId,
    pub client_id: String,
    pub secret: String,
}

/// A running server.
pub struct Server {
    pub base: String,
    pub store: Arc<FlakyStore>,
    pub master: MasterKey,
    pub clock: Arc<ManualClock>,
    pub stack: SecurityStack,
    pub service: EnrollmentService,
    pub events: Arc<RecordingEventSink>,
    pub http: reqwest::Client,
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with(EnrollmentConfig::default()).await
    }

    pub async fn start_with(config: EnrollmentConfig) -> Self {
        Self::start_with_events(config, |recording, _| recording).await
    }

    /// A server whose `Uninstalled` events end the sessions of the returned registry (which
    /// follows the server's clock, re-read every 20 ms).
    pub async fn start_with_sessions() -> (Self, AgentSessions) {
        let cell = Arc::new(std::sync::OnceLock::new());
        let slot = cell.clone();
        let server =
            Self::start_with_events(EnrollmentConfig::default(), move |recording, clock| {
                let sessions =
                    AgentSessions::new(clock).with_tick(std::time::Duration::from_millis(20));
                let _ = slot.set(sessions.clone());
                Arc::new(ClosingSessions::new(recording, sessions)) as Arc<dyn AgentEventSink>
            })
            .await;
        let sessions = cell.get().cloned().expect("the sink was built");
        (server, sessions)
    }

    /// A server whose enrollment events go to `wrap(recording sink, server clock)` (e.g. a
    /// decorator).
    pub async fn start_with_events(
        config: EnrollmentConfig,
        wrap: impl FnOnce(Arc<RecordingEventSink>, Arc<ManualClock>) -> Arc<dyn AgentEventSink>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let store = Arc::new(FlakyStore::default());
        let master = MasterKey::generate().unwrap();
        let clock = Arc::new(ManualClock::default());
        let stack = SecurityStack::builder(store.clone(), base.parse().unwrap(), master.clone())
            .with_clock(clock.clone())
            .with_account_config(AccountConfig {
                argon2: Argon2Params::fast_for_tests(),
                ..AccountConfig::default()
            })
            .build()
            .unwrap();
        let secrets = RegistrationSecrets::new(store.clone(), &master, clock.clone());
        let events = Arc::new(RecordingEventSink::default());
        let mut parts = EnrollmentParts::from_stack(
            &stack,
            store.clone(),
            secrets,
            wrap(events.clone(), clock.clone()),
            clock.clone(),
        );
        parts.config = config;
        let service = EnrollmentService::new(parts);
        let app = stack.router().merge(enrollment::router(service.clone()));
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Self {
            base,
            store,
            master,
            clock,
            stack,
            service,
            events,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn issuer(&self, tenant: &TenantId) -> String {
        format!("{}/sas/{tenant}", self.base)
    }

    /// Signs up `tenant` and creates its first registration secret.
    pub async fn tenant(&self, tenant: &str) -> TestTenant {
        let id = TenantId::parse(tenant).unwrap();
        let signed = self
            .stack
            .accounts
            .sign_up(SignUp {
                tenant_id: Some(id.clone()),
                tenant_name: format!("{tenant} MSP"),
                domain: format!("{tenant}.example"),
                email: format!("owner@{tenant}.example"),
                password: Secret::new(PASSWORD),
                first_name: "Olive".into(),
                last_name: "Owner".into(),
            })
            .await
            .unwrap();
        let key = self.service.secrets().ensure(&id).await.unwrap();
        TestTenant {
            id,
            default_org: signed.default_organization.id,
            key,
        }
    }

    /// POST register with `key` (None: no header) and a JSON body.
    pub async fn register_raw(&self, key: Option<&str>, body: &Json) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url(enrollment::REGISTER_PATH))
            .json(body);
        if let Some(key) = key {
            request = request.header("X-Initial-Key", key);
        }
        request.send().await.unwrap()
    }

    /// Registers a machine (must succeed).
    pub async fn register(&self, tenant: &TestTenant, hostname: &str) -> Creds {
        let r = self
            .register_raw(Some(tenant.key.expose()), &agent_body(hostname))
            .await;
        assert_eq!(r.status(), 200, "registration of {hostname}");
        creds(&r.json::<Json>().await.unwrap())
    }

    pub async fn reinstall_raw(
        &self,
        key: &str,
        machine_id: &str,
        secret: &str,
        body: &Json,
    ) -> reqwest::Response {
        self.http
            .post(self.url(enrollment::REINSTALL_PATH))
            .header("X-Initial-Key", key)
            .header("X-Machine-Id", machine_id)
            .header("X-Client-Secret", secret)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POST uninstall the way the agent does (with a dummy body).
    pub async fn uninstall_raw(&self, machine_id: &str, secret: &str) -> reqwest::Response {
        self.http
            .post(self.url(enrollment::UNINSTALL_PATH))
            .header("X-Machine-Id", machine_id)
            .header("X-Client-Secret", secret)
            .json(&json!({ "deletedAt": "2026-01-01T00:00:00Z" }))
            .send()
            .await
            .unwrap()
    }

    /// POST the token endpoint with a form.
    pub async fn token_raw(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(enrollment::TOKEN_PATH))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// client_credentials for `creds` (must succeed); returns the JSON body.
    pub async fn token(&self, creds: &Creds) -> Json {
        let r = self.client_credentials_raw(creds).await;
        assert_eq!(r.status(), 200, "client_credentials");
        r.json().await.unwrap()
    }

    /// client_credentials for `creds`, raw.
    pub async fn client_credentials_raw(&self, creds: &Creds) -> reqwest::Response {
        self.token_raw(&[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.secret),
        ])
        .await
    }

    /// refresh_token with client authentication, raw.
    pub async fn refresh_raw(&self, creds: &Creds, refresh: &str) -> reqwest::Response {
        self.token_raw(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.secret),
        ])
        .await
    }

    /// GET the active registration secret with an optional bearer token.
    pub async fn active_secret_raw(&self, bearer: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.url(enrollment::ACTIVE_SECRET_PATH));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// A machine of a tenant, straight from the repository.
    pub async fn machine(&self, tenant: &TenantId, id: &MachineId) -> Option<Machine> {
        self.stack.repos.machines.get(tenant, id).await.unwrap()
    }

    /// How many machines a tenant has, deleted ones included.
    pub async fn machine_count(&self, tenant: &TenantId) -> u64 {
        let all = MachineFilter {
            include_deleted: true,
            ..Default::default()
        };
        self.stack.repos.machines.count(tenant, &all).await.unwrap()
    }

    /// Gives a machine a CONNECTED tool connection.
    pub async fn connect_tool(
        &self,
        tenant: &TenantId,
        machine: &MachineId,
        tool: ToolType,
        agent_tool_id: &str,
    ) -> ToolConnection {
        let conn = ToolConnection::new(machine.clone(), tool, agent_tool_id, self.clock.now());
        self.stack
            .repos
            .tool_connections
            .insert(tenant, conn)
            .await
            .unwrap()
    }

    /// A tool connection, straight from the repository.
    pub async fn tool(&self, tenant: &TenantId, id: &ToolConnectionId) -> ToolConnection {
        self.stack
            .repos
            .tool_connections
            .get(tenant, id)
            .await
            .unwrap()
            .unwrap()
    }

    /// Sets a tenant's status.
    pub async fn set_tenant_status(&self, tenant: &TenantId, status: TenantStatus) {
        let tenants = &self.stack.repos.tenants;
        let mut t = tenants.get(tenant).await.unwrap().unwrap();
        t.status = status;
        tenants.update(t).await.unwrap();
    }

    /// Counts the documents of a collection in a partition, straight from the store.
    pub async fn count(&self, schema: &'static Schema, partition: &Partition) -> u64 {
        self.store
            .count(schema, partition, &Filter::All)
            .await
            .unwrap()
    }

    /// The stored bodies of a collection in a partition.
    pub async fn bodies(&self, schema: &'static Schema, partition: &Partition) -> Vec<String> {
        self.docs(schema, partition)
            .await
            .into_iter()
            .map(|d| d.body)
            .collect()
    }

    /// The stored documents of a collection in a partition.
    pub async fn docs(&self, schema: &'static Schema, partition: &Partition) -> Vec<StoredDoc> {
        let q = FindQuery {
            filter: Filter::All,
            sort: vec![(
                openframe_data::store::SortKey::Id,
                openframe_core::SortDirection::Asc,
            )],
            limit: 1000,
        };
        self.store.find(schema, partition, &q).await.unwrap()
    }
}

/// The enrollment schema of `collection`.
pub fn schema(collection: &str) -> &'static Schema {
    enrollment::schemas()
        .into_iter()
        .find(|s| s.collection == collection)
        .unwrap()
}

/// A body like the original agent sends.
pub fn agent_body(hostname: &str) -> Json {
    json!({
        "hostname": hostname,
        "agentVersion": "1.4.2",
        "osType": "MAC_OS",
    })
}

/// The credentials in a registration answer, checking its exact shape.
pub fn creds(body: &Json) -> Creds {
    let obj = body.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["clientId", "clientSecret", "machineId"], "{body}");
    Creds {
        machine_id: MachineId::parse(body["machineId"].as_str().unwrap()).unwrap(),
        client_id: body["clientId"].as_str().unwrap().to_owned(),
        secret: body["clientSecret"].as_str().unwrap().to_owned(),
    }
}

/// Asserts an error answer: status, `code`, the `{code, message, timestamp}` shape, and
/// returns the body.
pub async fn expect_error(r: reqwest::Response, status: u16, code: &str) -> Json {
    assert_eq!(r.status(), status);
    let body: Json = r.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["timestamp"].is_string(), "{body}");
    body
}
