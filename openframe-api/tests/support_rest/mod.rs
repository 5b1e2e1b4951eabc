//! A real platform for the REST and gateway tests: the security stack, the internal and
//! external REST APIs and the tool proxy behind the gateway router, served on a loopback
//! port, over an in-memory store and a manual clock.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use openframe_agent::bus::memory::InMemoryAgentBus;
use openframe_agent::enrollment::RegistrationSecrets;
use openframe_agent::executions::{ExecutionConfig, ExecutionService};
use openframe_agent::listener::BusChannel;
use openframe_api::gateway::{GatewayBuilder, GatewayConfig, ToolProxy};
use openframe_api::rest::external::ExternalApi;
use openframe_api::rest::internal::InternalApi;
use openframe_core::{
    Clock, IntegratedTool, Machine, MachineId, MachineStatus, ManualClock, Organization, OsType,
    Secret, TenantId, ToolType, ToolUrl, UserId,
};
use openframe_data::memory::InMemoryDocumentStore;
use openframe_data::store::DocumentStore;
use openframe_security::accounts::{AccountConfig, Argon2Params, SignUp};
use openframe_security::crypto::MasterKey;
use openframe_security::ratelimit::Quota;
use openframe_security::stack::SecurityStack;
use openframe_security::token::AccessTokenRequest;
use openframe_stream::store::EventStore;
use openframe_stream::store::memory::InMemoryEventStore;

pub const PASSWORD: &str = "Correct-Horse-42-battery";

/// Options of a test platform.
#[derive(Debug, Clone)]
pub struct Options {
    pub quotas: Vec<Quota>,
    pub gateway: GatewayConfig,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            quotas: vec![Quota::per_minute(1000)],
            gateway: GatewayConfig::default(),
        }
    }
}

/// A running platform.
pub struct Platform {
    pub base: String,
    pub store: Arc<dyn DocumentStore>,
    pub clock: Arc<ManualClock>,
    pub stack: SecurityStack,
    pub secrets: RegistrationSecrets,
    pub events: Arc<dyn EventStore>,
    pub http: reqwest::Client,
    pub app: axum::Router,
}

/// A signed-up tenant with an admin token.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub owner: UserId,
    pub admin_token: String,
}

impl Platform {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let store: Arc<dyn DocumentStore> = Arc::new(InMemoryDocumentStore::new());
        let master = MasterKey::generate().unwrap();
        let clock = Arc::new(ManualClock::default());
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let stack = SecurityStack::builder(store.clone(), base.parse().unwrap(), master.clone())
            .with_clock(dyn_clock.clone())
            .with_account_config(AccountConfig {
                argon2: Argon2Params::fast_for_tests(),
                ..AccountConfig::default()
            })
            .build()
            .unwrap();
        let secrets = RegistrationSecrets::new(store.clone(), &master, dyn_clock.clone());
        let executions = ExecutionService::new(
            store.clone(),
            stack.repos.machines.clone(),
            Arc::new(BusChannel(Arc::new(InMemoryAgentBus::new()))),
            dyn_clock.clone(),
            ExecutionConfig::default(),
        );
        let events: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let external = ExternalApi::from_stack(&stack, dyn_clock.clone())
            .with_quotas(options.quotas.clone())
            .with_executions(executions, store.clone())
            .with_events(events.clone())
            .build()
            .unwrap();
        let internal = InternalApi::from_stack(&stack, secrets.clone(), dyn_clock.clone());
        let proxy = ToolProxy::new(stack.repos.tools.clone(), &options.gateway.tool_proxy).unwrap();
        let app = GatewayBuilder::new(options.gateway.clone(), stack.tokens.clone(), dyn_clock)
            .with_identity(stack.router())
            .with_internal_api(internal)
            .with_external_api(external)
            .with_tool_proxy(proxy)
            .build()
            .unwrap();
        let serve = app.clone();
        tokio::spawn(async move {
            axum::serve(listener, serve).await.unwrap();
        });
        Self {
            base,
            store,
            clock,
            stack,
            secrets,
            events,
            http: reqwest::Client::new(),
            app,
        }
    }

    pub fn clock_now(&self) -> openframe_core::Timestamp {
        self.clock.now()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs up `name` and issues an ADMIN token for its owner.
    pub async fn tenant(&self, name: &str) -> Tenant {
        let id = TenantId::parse(name).unwrap();
        let signed = self
            .stack
            .accounts
            .sign_up(SignUp {
                tenant_id: Some(id.clone()),
                tenant_name: format!("{name} MSP"),
                domain: format!("{name}.example"),
                email: format!("owner@{name}.example"),
                password: Secret::new(PASSWORD),
                first_name: "Olive".into(),
                last_name: "Owner".into(),
            })
            .await
            .unwrap();
        let admin_token = self
            .token(&id, Some(signed.owner.id.clone()), &["OWNER", "ADMIN"])
            .await;
        Tenant {
            id,
            owner: signed.owner.id,
            admin_token,
        }
    }

    /// A real access token of `tenant` with `roles`.
    pub async fn token(&self, tenant: &TenantId, user: Option<UserId>, roles: &[&str]) -> String {
        let mut req = AccessTokenRequest::new(tenant.clone(), "owner@test.example", "console");
        req.user_id = user;
        req.roles = roles.iter().map(|r| r.to_string()).collect();
        req.ttl = Some(Duration::from_secs(3600));
        self.stack
            .tokens
            .issue_access_token(req)
            .await
            .unwrap()
            .token
    }

    /// An API key of `tenant` with `scopes` (the full `ak_...sk_...` string).
    pub async fn api_key(&self, tenant: &Tenant, scopes: &[&str]) -> String {
        let created = self
            .stack
            .api_keys
            .create(
                &tenant.id,
                tenant.owner.clone(),
                "test key",
                scopes.iter().map(|s| s.to_string()).collect(),
                None,
            )
            .await
            .unwrap();
        created.secret.expose().to_owned()
    }

    /// Inserts `n` online machines named `{prefix}-{i:03}`.
    pub async fn machines(&self, tenant: &TenantId, prefix: &str, n: usize) -> Vec<MachineId> {
        let mut ids = Vec::new();
        for i in 0..n {
            let mut m = Machine::new(
                MachineId::generate(),
                format!("{prefix}-{i:03}"),
                OsType::Linux,
                self.clock.now(),
            );
            m.status = MachineStatus::Online;
            ids.push(
                self.stack
                    .repos
                    .machines
                    .insert(tenant, m)
                    .await
                    .unwrap()
                    .id,
            );
        }
        ids
    }

    pub async fn organization(&self, tenant: &TenantId, name: &str) -> Organization {
        self.stack
            .repos
            .organizations
            .insert(tenant, Organization::new(name, self.clock.now()))
            .await
            .unwrap()
    }

    /// Inserts a tool with key `key` whose API URL is `url`.
    pub async fn tool(
        &self,
        tenant: &TenantId,
        key: &str,
        url: &str,
        edit: impl FnOnce(&mut IntegratedTool),
    ) -> IntegratedTool {
        let mut tool = IntegratedTool::new(
            key,
            format!("{key} tool"),
            ToolType::MeshCentral,
            self.clock.now(),
        );
        tool.urls.push(ToolUrl {
            url: url.to_owned(),
            kind: "API".into(),
        });
        edit(&mut tool);
        self.stack.repos.tools.insert(tenant, tool).await.unwrap()
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    pub async fn get_key(&self, path: &str, key: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
    }
}

/// Asserts the one error shape and returns its code.
pub async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["message"].is_string(), "{body}");
    assert!(body["timestamp"].is_string(), "{body}");
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}
