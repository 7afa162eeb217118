//! The `cairn` binary: parses the command line, loads the config, runs the agent.
//!
//! All work happens in the library (`cairn::app`); this file maps errors to exit codes and
//! OS signals to shutdown (SIGINT/SIGTERM) and reload (SIGHUP).

use std::process::ExitCode;

use clap::Parser as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use cairn::app::App;
use cairn::cli::api::Api;
use cairn::cli::{AgentArgs, Cli, Command, OperatorCommand, RaftCommand};
use cairn::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("cairn v{}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Keygen => {
            use base64::Engine as _;
            let key: [u8; 32] = rand::random();
            println!("{}", base64::engine::general_purpose::STANDARD.encode(key));
            ExitCode::SUCCESS
        }
        Command::Members => run_client(async {
            print!("{}", cairn::cli::members::members(&Api::from_env()).await?);
            Ok(())
        }),
        Command::Join { addr } => run_client(async move {
            print!("{}", cairn::cli::members::join(&Api::from_env(), &addr).await?);
            Ok(())
        }),
        Command::Leave => run_client(async {
            print!("{}", cairn::cli::members::leave(&Api::from_env()).await?);
            Ok(())
        }),
        Command::Operator(OperatorCommand::Raft(RaftCommand::ListPeers)) => run_client(async {
            print!("{}", cairn::cli::operator::raft_list_peers(&Api::from_env()).await?);
            Ok(())
        }),
        Command::Agent(args) => match run_agent(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Runs a subcommand that talks to an agent over HTTP on a small current-thread runtime.
fn run_client(work: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(work));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_agent(args: &AgentArgs) -> anyhow::Result<()> {
    let overrides = args.overrides();
    let (config, ignored) = Config::load(&overrides)?;
    let level = if config.log_level == "err" { "error" } else { config.log_level.as_str() };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},openraft=warn")));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    for key in ignored {
        tracing::warn!(%key, "Consul config key accepted but not used by cairn");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let app = App::build(config).await?;
        println!("==> cairn agent running (version v{})", env!("CARGO_PKG_VERSION"));
        if let Some(a) = app.rpc_addr() {
            println!("    Server RPC: {a}");
        }
        if let Some(a) = app.dns_addr() {
            println!("    DNS: {a} (udp, tcp)");
        }
        if let Some(a) = app.http_addr() {
            println!("    HTTP: {a}");
        }
        println!("    Data dir: {}", app.data_dir().display());
        let shutdown = CancellationToken::new();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let reloader = app.reloader();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => break,
                    _ = int.recv() => break,
                    _ = hup.recv() => match Config::load(&overrides) {
                        Ok((cfg, _)) => {
                            reloader.reload(&cfg);
                            tracing::info!("configuration reloaded (dns_config, domains, recursors, zones)");
                        }
                        Err(e) => tracing::error!(error = %e, "reload failed; keeping the running configuration"),
                    },
                }
            }
            tracing::info!("shutting down");
            stop.cancel();
        });
        app.run(shutdown).await
    })
}
