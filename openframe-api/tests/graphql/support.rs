//! A real GraphQL stack over SQLite: the security stack (real tokens), the agent's execution
//! service over the in-process bus, and a store decorator that counts calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use openframe_agent::bus::AgentBus;
use openframe_agent::bus::memory::InMemoryAgentBus;
use openframe_agent::enrollment::RegistrationSecrets;
use openframe_agent::executions::{ExecutionConfig, ExecutionService};
use openframe_agent::listener::BusChannel;
use openframe_api::graphql::{GraphqlEvents, GraphqlParts, GraphqlState, router};
use openframe_core::{
    Clock, Machine, MachineId, MachineStatus, ManualClock, Organization, OsType, Result, Secret,
    Tag, TenantId, User,
};
use openframe_data::sqlite::SqliteDocumentStore;
use openframe_data::store::{
    DocumentStore, FacetSpec, Filter, FindQuery, Partition, Schema, StoredDoc, Value,
};
use openframe_security::accounts::{AccountConfig, Argon2Params, SignUp};
use openframe_security::auth::AuthLayer;
use openframe_security::crypto::MasterKey;
use openframe_security::stack::SecurityStack;
use openframe_security::token::AccessTokenRequest;
use openframe_stream::model::{MappingTable, Severity, ToolSource, UnifiedEvent};
use openframe_stream::store::EventStore;
use openframe_stream::store::memory::InMemoryEventStore;
use serde_json::{Value as Json, json};
use tower::ServiceExt as _;

/// Counts every call a [`DocumentStore`] receives, by method.
#[derive(Debug)]
pub(crate) struct CountingStore {
    inner: Arc<dyn DocumentStore>,
    calls: Mutex<HashMap<&'static str, u64>>,
}

impl CountingStore {
    pub(crate) fn new(inner: Arc<dyn DocumentStore>) -> Self {
        Self {
            inner,
            calls: Mutex::new(HashMap::new()),
        }
    }

    fn hit(&self, method: &'static str, n: u64) {
        *self.calls.lock().unwrap().entry(method).or_default() += n;
    }

    /// Calls so far, by method.
    pub(crate) fn calls(&self) -> HashMap<&'static str, u64> {
        self.calls.lock().unwrap().clone()
    }

    /// Calls of every method so far (not counting the per-collection and per-facet tallies).
    pub(crate) fn total(&self) -> u64 {
        const METHODS: [&str; 9] = [
            "get",
            "get_many",
            "insert",
            "replace",
            "delete",
            "find",
            "count",
            "facet",
            "facet_many",
        ];
        let calls = self.calls.lock().unwrap();
        METHODS.iter().filter_map(|m| calls.get(m)).sum()
    }

    pub(crate) fn reset(&self) {
        self.calls.lock().unwrap().clear();
    }
}

#[async_trait]
impl DocumentStore for CountingStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn get(&self, s: &'static Schema, p: &Partition, id: &str) -> Result<Option<StoredDoc>> {
        self.hit("get", 1);
        self.inner.get(s, p, id).await
    }
    async fn get_many(
        &self,
        s: &'static Schema,
        p: &Partition,
        ids: &[String],
    ) -> Result<Vec<StoredDoc>> {
        self.hit("get_many", 1);
        self.hit(s.collection, 1);
        self.inner.get_many(s, p, ids).await
    }
    async fn insert(&self, s: &'static Schema, p: &Partition, doc: StoredDoc) -> Result<()> {
        self.hit("insert", 1);
        self.inner.insert(s, p, doc).await
    }
    async fn replace(
        &self,
        s: &'static Schema,
        p: &Partition,
        doc: StoredDoc,
        v: u64,
    ) -> Result<()> {
        self.hit("replace", 1);
        self.inner.replace(s, p, doc, v).await
    }
    async fn delete(&self, s: &'static Schema, p: &Partition, id: &str) -> Result<bool> {
        self.hit("delete", 1);
        self.inner.delete(s, p, id).await
    }
    async fn find(
        &self,
        s: &'static Schema,
        p: &Partition,
        q: &FindQuery,
    ) -> Result<Vec<StoredDoc>> {
        self.hit("find", 1);
        self.hit(s.collection, 1);
        self.inner.find(s, p, q).await
    }
    async fn count(&self, s: &'static Schema, p: &Partition, f: &Filter) -> Result<u64> {
        self.hit("count", 1);
        self.inner.count(s, p, f).await
    }
    async fn facet(
        &self,
        s: &'static Schema,
        p: &Partition,
        field: &'static str,
        f: &Filter,
    ) -> Result<Vec<(Value, u64)>> {
        self.hit("facet", 1);
        self.inner.facet(s, p, field, f).await
    }
    async fn facet_many(
        &self,
        s: &'static Schema,
        p: &Partition,
        base: &Filter,
        facets: &[FacetSpec],
    ) -> Result<Vec<Vec<(Value, u64)>>> {
        self.hit("facet_many", 1);
        self.hit("facet_fields", facets.len() as u64);
        self.inner.facet_many(s, p, base, facets).await
    }
}

/// One signed-up tenant with its OWNER.
#[derive(Debug, Clone)]
pub(crate) struct TenantFixture {
    pub(crate) id: TenantId,
    pub(crate) owner: User,
    pub(crate) default_org: Organization,
    /// An OWNER+ADMIN access token of the owner.
    pub(crate) token: String,
}

/// The running stack.
pub(crate) struct Harness {
    pub(crate) app: Router,
    pub(crate) store: Arc<CountingStore>,
    pub(crate) stack: SecurityStack,
    pub(crate) event_store: Arc<InMemoryEventStore>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) bus: Arc<dyn AgentBus>,
    pub(crate) events: GraphqlEvents,
    pub(crate) a: TenantFixture,
    pub(crate) b: TenantFixture,
}

impl Harness {
    /// SQLite in memory, two tenants (`acme`, `globex`).
    pub(crate) async fn start() -> Self {
        let sqlite: Arc<dyn DocumentStore> =
            Arc::new(SqliteDocumentStore::open_in_memory().await.unwrap());
        let store = Arc::new(CountingStore::new(sqlite));
        let dyn_store: Arc<dyn DocumentStore> = store.clone();
        let clock = Arc::new(ManualClock::default());
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let master = MasterKey::generate().unwrap();
        let stack = SecurityStack::builder(
            dyn_store.clone(),
            "http://127.0.0.1:1".parse().unwrap(),
            master.clone(),
        )
        .with_clock(dyn_clock.clone())
        .with_account_config(AccountConfig {
            argon2: Argon2Params::fast_for_tests(),
            ..AccountConfig::default()
        })
        .build()
        .unwrap();
        let bus: Arc<dyn AgentBus> = Arc::new(InMemoryAgentBus::new());
        let executions = ExecutionService::new(
            dyn_store.clone(),
            stack.repos.machines.clone(),
            Arc::new(BusChannel(bus.clone())),
            dyn_clock.clone(),
            ExecutionConfig::default(),
        );
        let events = GraphqlEvents::default();
        let state = GraphqlState::new(GraphqlParts {
            repos: stack.repos.clone(),
            store: dyn_store.clone(),
            accounts: stack.accounts.clone(),
            api_keys: stack.api_keys.clone(),
            executions,
            registration: RegistrationSecrets::new(dyn_store, &master, dyn_clock),
            events: events.clone(),
            clock: clock.clone(),
        });
        let event_store = Arc::new(InMemoryEventStore::new());
        let state = state.with_event_store(event_store.clone());
        let app = router(state.clone()).layer(AuthLayer::new(stack.authenticator()));
        let a = sign_up(&stack, "acme").await;
        let b = sign_up(&stack, "globex").await;
        Self {
            app,
            store,
            stack,

            event_store,
            clock,
            bus,
            events,
            a,
            b,
        }
    }

    /// A token for a user of `tenant` with `roles`.
    pub(crate) async fn token(&self, tenant: &TenantFixture, roles: &[&str]) -> String {
        token_for(&self.stack, &tenant.id, &tenant.owner, roles).await
    }

    /// POSTs a query with `token`; returns the status and the JSON body.
    pub(crate) async fn post(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Json,
    ) -> (StatusCode, Json) {
        let body = json!({"query": query, "variables": variables}).to_string();
        let mut req = Request::post("/api/graphql").header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    /// Sends any request to the router.
    pub(crate) async fn send(&self, request: Request<Body>) -> (StatusCode, Json) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
        (status, json)
    }

    /// Runs `query` as tenant `t`'s owner and returns `data`, failing on any error.
    pub(crate) async fn ok(&self, t: &TenantFixture, query: &str, variables: Json) -> Json {
        let (status, body) = self.post(Some(&t.token), query, variables).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Runs `query` as tenant `t`'s owner and returns the first error's `extensions.code`.
    pub(crate) async fn err_code(&self, t: &TenantFixture, query: &str, variables: Json) -> String {
        let (_, body) = self.post(Some(&t.token), query, variables).await;
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("expected an error: {body}"))
            .to_owned()
    }

    /// Inserts a machine in `tenant`.
    pub(crate) async fn machine(
        &self,
        tenant: &TenantFixture,
        hostname: &str,
        status: MachineStatus,
    ) -> Machine {
        let mut m = Machine::new(
            MachineId::generate(),
            hostname,
            OsType::Linux,
            self.clock.now(),
        );
        m.status = status;
        self.stack
            .repos
            .machines
            .insert(&tenant.id, m)
            .await
            .unwrap()
    }

    /// Inserts an organization in `tenant`.
    pub(crate) async fn org(&self, tenant: &TenantFixture, name: &str) -> Organization {
        let o = Organization::new(name, self.clock.now());
        self.stack
            .repos
            .organizations
            .insert(&tenant.id, o)
            .await
            .unwrap()
    }

    /// Stores an event of `tenant` of `source_type`, at `minute` minutes past the clock.
    pub(crate) async fn event(
        &self,
        tenant: &TenantFixture,
        source_type: &str,
        severity: Severity,
        machine: Option<&Machine>,
        minute: i64,
    ) -> UnifiedEvent {
        let table = MappingTable::builtin();
        let at = self.clock.now() + chrono::Duration::minutes(minute);
        let key = format!("{}-{source_type}-{minute}", tenant.id);
        let id = UnifiedEvent::id_for(ToolSource::Meshcentral, "events", &key, None);
        let e = UnifiedEvent::new(&table, id, ToolSource::Meshcentral, source_type, at, None)
            .with_tenant(Some(tenant.id.clone()))
            .with_machine(machine.map(|m| m.id.clone()))
            .with_severity(severity)
            .with_summary(format!("{source_type} on {}", tenant.id));
        self.event_store
            .append(std::slice::from_ref(&e))
            .await
            .unwrap();
        e
    }

    /// Inserts a tag in `tenant`.
    pub(crate) async fn tag(&self, tenant: &TenantFixture, name: &str) -> Tag {
        let t = Tag::new(name, self.clock.now());
        self.stack.repos.tags.insert(&tenant.id, t).await.unwrap()
    }
}

async fn token_for(
    stack: &SecurityStack,
    tenant: &TenantId,
    user: &User,
    roles: &[&str],
) -> String {
    let mut req = AccessTokenRequest::new(tenant.clone(), user.email.clone(), "console");
    req.user_id = Some(user.id.clone());
    req.roles = roles.iter().map(|r| (*r).to_owned()).collect();
    stack.tokens.issue_access_token(req).await.unwrap().token
}

async fn sign_up(stack: &SecurityStack, tenant: &str) -> TenantFixture {
    let signed = stack
        .accounts
        .sign_up(SignUp {
            tenant_id: Some(TenantId::parse(tenant).unwrap()),
            tenant_name: format!("{tenant} MSP"),
            domain: format!("{tenant}.example"),
            email: format!("owner@{tenant}.example"),
            password: Secret::new("Correct-Horse-42-battery"),
            first_name: "Olive".into(),
            last_name: "Owner".into(),
        })
        .await
        .unwrap();
    let token = token_for(stack, &signed.tenant.id, &signed.owner, &["OWNER", "ADMIN"]).await;
    TenantFixture {
        id: signed.tenant.id,
        owner: signed.owner,
        default_org: signed.default_organization,
        token,
    }
}

/// The global id of `raw` of type `ty`.
pub(crate) fn gid(ty: &str, raw: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{ty}:{raw}"))
}
