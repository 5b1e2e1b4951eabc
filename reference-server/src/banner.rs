//! The startup summary printed on stdout: where to go, and on the first start the
//! credentials (shown once).

use std::fmt::Write as _;

use crate::bootstrap::MasterKeySource;
use crate::server::RunningServer;

/// The summary of a started server.
pub fn render(server: &RunningServer) -> String {
    let base = server.public_url.as_str().trim_end_matches('/');
    let ws = base
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "OpenFrame server {} ready in {} ms",
        env!("CARGO_PKG_VERSION"),
        server.startup.as_millis()
    );
    let _ = writeln!(out, "  listening on:        {}", server.addr);
    let _ = writeln!(out, "  server:              {base}/");
    if crate::api::GRAPHQL_MOUNTED {
        let _ = writeln!(out, "  GraphiQL:            {base}/api/graphiql");
        let _ = writeln!(out, "  REST API docs:       {base}/api/v1/docs");
    }
    if let Some(report) = &server.bootstrap {
        let tenant = &report.tenant;
        let _ = writeln!(out, "  issuer:              {base}/sas/{tenant}");
        let _ = writeln!(
            out,
            "  OIDC discovery:      {base}/sas/{tenant}/.well-known/openid-configuration"
        );
        let _ = writeln!(out, "  login:               {base}/sas/{tenant}/login");
    }
    let _ = writeln!(
        out,
        "  agent enrollment:    {base}{}",
        openframe_agent::enrollment::REGISTER_PATH
    );
    let _ = writeln!(
        out,
        "  agent gateway:       {ws}{}",
        openframe_agent::gateway::GATEWAY_PATH
    );
    let _ = writeln!(
        out,
        "  health:              {base}/healthz  {base}/readyz  {base}/metrics"
    );
    if let MasterKeySource::Development { created } = server.master_key {
        let _ = writeln!(
            out,
            "  WARNING: development master key ({}); set OPENFRAME_MASTER_KEY in production",
            if created {
                "generated now in the data directory"
            } else {
                "from the data directory"
            }
        );
    }
    if let Some(report) = &server.bootstrap {
        match &report.created {
            Some(owner) => {
                let _ = writeln!(
                    out,
                    "First start: created tenant `{}` and its owner. Shown once, keep them:",
                    report.tenant
                );
                let _ = writeln!(out, "  tenant:              {}", report.tenant);
                let _ = writeln!(out, "  owner email:         {}", owner.email);
                match &owner.generated_password {
                    Some(p) => {
                        let _ = writeln!(out, "  owner password:      {}", p.expose());
                    }
                    None => {
                        let _ = writeln!(out, "  owner password:      (as configured)");
                    }
                }
                let _ = writeln!(
                    out,
                    "  CLI client:          {} / {}  (client_credentials, ADMIN)",
                    crate::bootstrap::CLI_CLIENT_ID,
                    owner.cli_client_secret.expose()
                );
                let _ = writeln!(
                    out,
                    "  get a token:         curl -s -u {}:<secret> -d grant_type=client_credentials {base}/sas/{}/oauth2/token",
                    crate::bootstrap::CLI_CLIENT_ID,
                    report.tenant
                );
                let _ = writeln!(
                    out,
                    "  registration secret: {}",
                    report.registration_secret.expose()
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "Tenant `{}` exists (created on an earlier start; its owner and registration secret were printed then).",
                    report.tenant
                );
            }
        }
    }
    out
}
