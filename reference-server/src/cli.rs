//! The command line: `serve`, `config`, `nats-config`, `version`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{ConfigError, LogFormat, Overrides, Sensitive, ServerConfig, Sources};
use crate::server::{self, StartError};

/// The OpenFrame-rs reference server.
#[derive(Debug, Parser)]
#[command(name = "openframe-server", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server until SIGINT or SIGTERM.
    Serve(ConfigArgs),
    /// Print the effective configuration (file, environment and flags) with secrets redacted.
    Config(ConfigArgs),
    /// Write the nats-server configuration (operator mode, JetStream, WebSocket) that trusts
    /// this deployment's NATS authority, creating the authority on first use. Then run
    /// `nats-server -c FILE` and set `agent_bus.url` and `nats_proxy.upstream` as printed.
    NatsConfig(NatsConfigArgs),
    /// Print the version.
    Version,
}

/// Arguments of `nats-config`.
#[derive(Debug, Clone, Args)]
pub struct NatsConfigArgs {
    /// The server's configuration (for the data directory, the master key and
    /// `nats_proxy.authority_file`).
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Host nats-server listens on.
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub nats_host: String,
    /// Port of its client listener.
    #[arg(long, value_name = "PORT", default_value_t = 4222)]
    pub nats_port: u16,
    /// Port of its WebSocket listener (the proxy's upstream).
    #[arg(long, value_name = "PORT", default_value_t = 4223)]
    pub websocket_port: u16,
    /// JetStream's storage directory [default: DATA_DIR/nats-jetstream].
    #[arg(long, value_name = "DIR")]
    pub store_dir: Option<PathBuf>,
    /// Write the configuration to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Where the configuration comes from (see docs/configuration.md).
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Address to listen on [default: 127.0.0.1:8080; env OPENFRAME_LISTEN].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Data directory for the SQLite file and the development master key
    /// [default: ./openframe-server-data; env OPENFRAME_DATA_DIR].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A TOML configuration file.
    #[arg(long, value_name = "FILE", env = "OPENFRAME_CONFIG")]
    pub config: Option<PathBuf>,
    /// The URL clients use [default: http://ADDR; env OPENFRAME_PUBLIC_URL].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Log format: text or json [env OPENFRAME_LOG_FORMAT].
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    pub log_format: Option<LogFormat>,
    /// Email of the default tenant's OWNER, used on the first start [env OPENFRAME_OWNER_EMAIL].
    #[arg(long, value_name = "EMAIL")]
    pub owner_email: Option<String>,
    /// Password of that OWNER (prefer OPENFRAME_OWNER_PASSWORD: flags are visible to other
    /// users of the machine); generated and printed once when unset.
    #[arg(long, value_name = "PASSWORD", hide_env_values = true)]
    pub owner_password: Option<String>,
}

fn parse_format(value: &str) -> Result<LogFormat, String> {
    match value.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("must be `text` or `json`".into()),
    }
}

impl ConfigArgs {
    /// The configuration these arguments, the file and the environment describe.
    pub fn load(&self) -> Result<ServerConfig, ConfigError> {
        let overrides = Overrides {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            public_url: self.public_url.clone(),
            log_format: self.log_format,
            owner_email: self.owner_email.clone(),
            owner_password: self.owner_password.clone().map(Sensitive::new),
        };
        ServerConfig::load(&Sources::process(self.config.clone(), overrides))
    }
}

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Version => {
            println!("openframe-server {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Config(args) => match args.load() {
            Ok(config) => {
                print!("{}", config.to_redacted_toml());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&StartError::Config(e)),
        },
        Command::NatsConfig(args) => nats_config(&args),
        Command::Serve(args) => {
            let config = match args.load() {
                Ok(config) => config,
                Err(e) => return fail(&StartError::Config(e)),
            };
            crate::logging::init(&config.log);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    return fail(&StartError::Failed(format!(
                        "cannot start the runtime: {e}"
                    )));
                }
            };
            runtime.block_on(serve(config))
        }
    }
}

async fn serve(config: ServerConfig) -> ExitCode {
    let server = match server::start(config).await {
        Ok(server) => server,
        Err(e) => return fail(&e),
    };
    print!("{}", crate::banner::render(&server));
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let reason = crate::signals::terminated().await;
    tracing::info!(signal = reason, "stop requested");
    server.shutdown().await;
    ExitCode::SUCCESS
}

fn nats_config(args: &NatsConfigArgs) -> ExitCode {
    let config = match args.config.load() {
        Ok(config) => config,
        Err(e) => return fail(&StartError::Config(e)),
    };
    match write_nats_config(args, &config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

#[cfg(feature = "nats")]
fn write_nats_config(args: &NatsConfigArgs, config: &ServerConfig) -> Result<(), StartError> {
    use openframe_agent::nats_proxy::ServerConfigOptions;
    if args.nats_port == args.websocket_port {
        return Err(StartError::Config(ConfigError::new(
            "--websocket-port",
            "must differ from --nats-port",
        )));
    }
    let (master, _) = crate::bootstrap::master_key(config)?;
    let (authority, _) = crate::nats_proxy::load_or_create_authority(config, &master)?;
    let store_dir = args
        .store_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("nats-jetstream"));
    let text = authority.server_config(&ServerConfigOptions {
        host: args.nats_host.clone(),
        port: args.nats_port,
        websocket_port: args.websocket_port,
        store_dir: store_dir.display().to_string(),
    })?;
    match &args.out {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| StartError::Failed(format!("cannot write {}: {e}", path.display())))?,
        None => print!("{text}"),
    }
    let host = &args.nats_host;
    eprintln!(
        "run `nats-server -c <this file>`, then start openframe-server with\n  \
         agent_bus.url = \"nats://{host}:{}\"\n  nats_proxy.upstream = \"ws://{host}:{}\"\n\
         (or OPENFRAME_NATS_URL and OPENFRAME_NATS_PROXY_UPSTREAM)",
        args.nats_port, args.websocket_port
    );
    Ok(())
}

#[cfg(not(feature = "nats"))]
fn write_nats_config(_: &NatsConfigArgs, _: &ServerConfig) -> Result<(), StartError> {
    Err(StartError::Config(ConfigError::new(
        "nats-config",
        "this build has no NATS support (feature `nats` of openframe-server)",
    )))
}

fn fail(e: &StartError) -> ExitCode {
    eprintln!("openframe-server: {e}");
    if matches!(e, StartError::Config(_)) {
        eprintln!("(see `openframe-server config --help` and docs/configuration.md)");
    }
    ExitCode::from(e.exit_code())
}
