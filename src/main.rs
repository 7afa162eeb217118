//! The `cairn` binary: parses the command line, loads the config, runs the agent or a
//! subcommand.
//!
//! All work happens in the library (`cairn::App`, `cairn::cli`); this file maps errors to exit
//! codes, OS signals to shutdown (SIGINT/SIGTERM) and reload (SIGHUP, `PUT /v1/agent/reload`),
//! and the agent's life to the service manager (`cairn::Notifier`: READY=1, STATUS=, watchdog).
//!
//! Invariant: nothing the agent writes to stdout or stderr can stop it from stopping. Rust
//! ignores SIGPIPE, so a write to a pipe whose reader is gone fails with EPIPE; `println!`
//! and `eprintln!` panic on that, and so does tracing's fmt layer, which reports a failed
//! write with `eprintln!`. The agent therefore prints its banner with [`say`] and logs through
//! [`Stderr`], which both drop output once the pipe is gone.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use cairn::Notifier;
use cairn::cli::api::Api;
use cairn::cli::{
    AgentArgs, AutopilotCommand, CatalogCommand, Command, ConsulMessage, OperatorCommand, RaftCommand,
    ServicesCommand, SnapshotCommand,
};
use cairn::{App, Reloader};
use cairn::{Config, Overrides};

/// The system allocator, sampling allocations for `/debug/pprof/heap` once `enable_debug`
/// (or the first authorized heap request) starts it; one relaxed load per call until then.
#[global_allocator]
static ALLOCATOR: cairn::SamplingAlloc = cairn::SamplingAlloc;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let as_consul = argv.first().is_some_and(|a| cairn::cli::invoked_as_consul(a));
    let cli = cairn::cli::parse(argv);
    let http = cli.http;
    match cli.command {
        Command::Version => {
            print!("{}", cairn::cli::version_text(as_consul));
            ExitCode::SUCCESS
        }
        Command::Keygen => {
            use base64::Engine as _;
            let key: [u8; 32] = rand::random();
            println!("{}", base64::engine::general_purpose::STANDARD.encode(key));
            ExitCode::SUCCESS
        }
        Command::Agent(args) => match run_agent(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // Not `eprintln!`: a stderr pipe whose reader is gone must not turn this into a panic.
                let _ = writeln!(std::io::stderr(), "error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Lock(args) => lock(&http, args),
        Command::Monitor(args) => {
            let mut code = 1;
            let done = run_client(async {
                code = cairn::cli::monitor::run(&Api::from_args(&http)?, &args).await?;
                Ok(String::new())
            });
            if done == ExitCode::SUCCESS { ExitCode::from(code) } else { done }
        }
        Command::Exec(args) => {
            eprintln!("{}", cairn::cli::event::exec(&args));
            ExitCode::FAILURE
        }
        Command::Tls(cmd) => tls(cmd),
        Command::Validate { paths } => validate(&paths),
        Command::Assets { dir } => assets(&dir),
        other => agent_call(other, &http),
    }
}

/// A subcommand that talks to the agent over HTTP (all but `agent`, `version`, `keygen`,
/// `lock`, `tls`, `validate` and `assets`, which `main` runs itself).
fn agent_call(command: Command, http: &cairn::cli::api::HttpArgs) -> ExitCode {
    let api = || Api::from_args(http);
    match command {
        Command::Keyring(args) => {
            run_client(async move { Ok(cairn::cli::keyring::keyring(&api()?, &args).await?) })
        }
        Command::Members { wan } => members(http, wan),
        Command::Join { addr, wan } => run_client(async move {
            let api = api()?;
            let failed =
                |e| ConsulMessage(format!("Error joining address '{addr}': {e}\nFailed to join any nodes."));
            Ok(cairn::cli::members::join(&api, &addr, wan).await.map_err(failed)?)
        }),
        Command::Leave => run_client(async {
            let api = api()?;
            Ok(cairn::cli::members::leave(&api).await.map_err(said("Error leaving"))?)
        }),
        Command::Operator(cmd) => operator(cmd, http),
        c @ (Command::Event(_)
        | Command::Maint(_)
        | Command::Rtt(_)
        | Command::ForceLeave { .. }
        | Command::Services(_)) => consul_verb(c, http),
        Command::Kv(cmd) => run_client(async move {
            let api = api()?;
            cairn::cli::kv::run(&api, cmd).await.map_err(|e| ConsulMessage(e.to_string()))?;
            Ok(String::new())
        }),
        Command::Acl(cmd) => run_client(async move {
            let api = api()?;
            Ok(cairn::cli::acl::run(&api, cmd).await.map_err(|e| ConsulMessage(e.to_string()))?)
        }),
        Command::Catalog(c) => run_client(async move {
            let api = api()?;
            Ok(match c {
                CatalogCommand::Datacenters => cairn::cli::catalog::datacenters(&api).await?,
                CatalogCommand::Nodes => cairn::cli::catalog::nodes(&api).await?,
                CatalogCommand::Services { tags } => cairn::cli::catalog::services(&api, tags).await?,
            })
        }),
        Command::Snapshot(c) => run_client(async move {
            let api = api()?;
            Ok(match c {
                SnapshotCommand::Save { format, file } => cairn::cli::snapshot::save(&api, &file, &format)
                    .await
                    .map_err(|e| ConsulMessage(format!("Error saving snapshot: {e}")))?,
                SnapshotCommand::Restore { file } => cairn::cli::snapshot::restore(&api, &file)
                    .await
                    .map_err(|e| ConsulMessage(format!("Error restoring snapshot: {e}")))?,
                SnapshotCommand::Inspect { file } => cairn::cli::snapshot::inspect(&file)
                    .map_err(|e| ConsulMessage(format!("Error verifying snapshot: {e}")))?,
            })
        }),
        Command::Reload => run_client(async {
            let api = api()?;
            Ok(cairn::cli::info::reload(&api).await.map_err(said("Error reloading"))?)
        }),
        Command::Info => run_client(async {
            let api = api()?;
            Ok(cairn::cli::info::info(&api).await.map_err(said("Error querying agent"))?)
        }),
        // `main` runs these itself and never passes them here.
        Command::Version
        | Command::Keygen
        | Command::Agent(_)
        | Command::Lock(_)
        | Command::Monitor(_)
        | Command::Exec(_)
        | Command::Tls(_)
        | Command::Validate { .. }
        | Command::Assets { .. } => ExitCode::FAILURE,
    }
}

/// `cairn operator ...`.
fn operator(command: OperatorCommand, http: &cairn::cli::api::HttpArgs) -> ExitCode {
    let api = || Api::from_args(http);
    match command {
        OperatorCommand::Raft(RaftCommand::ListPeers) => run_client(async {
            let api = api()?;
            let failed = said("Error getting peers: Failed to retrieve raft configuration");
            Ok(cairn::cli::operator::raft_list_peers(&api).await.map_err(failed)?)
        }),
        OperatorCommand::Raft(RaftCommand::RemovePeer { address, id }) => {
            run_client(
                async move { Ok(cairn::cli::operator::raft_remove_peer(&api()?, &address, &id).await?) },
            )
        }
        OperatorCommand::Autopilot(AutopilotCommand::GetConfig) => {
            run_client(async { Ok(cairn::cli::operator::autopilot_get(&api()?).await?) })
        }
        OperatorCommand::Autopilot(AutopilotCommand::SetConfig(args)) => {
            run_client(async move { Ok(cairn::cli::operator::autopilot_set(&api()?, &args).await?) })
        }
    }
}

/// `cairn event`, `maint`, `rtt`, `force-leave` and `services`: Consul's verbs that print what
/// the agent answered.
fn consul_verb(command: Command, http: &cairn::cli::api::HttpArgs) -> ExitCode {
    let api = || Api::from_args(http);
    match command {
        Command::Event(args) => run_client(async move { Ok(cairn::cli::event::fire(&api()?, args).await?) }),
        Command::Maint(args) => run_client(async move { Ok(cairn::cli::maint::run(&api()?, &args).await?) }),
        Command::Rtt(args) => run_client(async move { Ok(cairn::cli::rtt::run(&api()?, &args).await?) }),
        Command::ForceLeave { prune, nodes } => {
            run_client(async move { Ok(cairn::cli::members::force_leave(&api()?, &nodes, prune).await?) })
        }
        Command::Services(c) => run_client(async move {
            let api = api()?;
            Ok(match c {
                ServicesCommand::Register(args) => cairn::cli::services::register(&api, &args)
                    .await
                    .map_err(|e| ConsulMessage(e.to_string()))?,
                ServicesCommand::Deregister { id, files } => {
                    cairn::cli::services::deregister(&api, &id, &files)
                        .await
                        .map_err(|e| ConsulMessage(e.to_string()))?
                }
            })
        }),
        _ => ExitCode::FAILURE,
    }
}

/// Consul's line for a failed agent call (`Error leaving: Unexpected response code: 403
/// (Permission denied)`), printed as it is.
fn said(what: &'static str) -> impl FnOnce(cairn::cli::api::ApiError) -> ConsulMessage {
    move |e| ConsulMessage(format!("{what}: {e}"))
}

/// `cairn members [-wan]`; Consul's exit code 2, printing nothing, when there is no member to
/// list (a client's WAN pool).
fn members(http: &cairn::cli::api::HttpArgs, wan: bool) -> ExitCode {
    let mut empty = false;
    let done = run_client(async {
        let table = cairn::cli::members::members(&Api::from_args(http)?, wan).await?;
        empty = table.is_none();
        Ok(table.unwrap_or_default())
    });
    if empty { ExitCode::from(2) } else { done }
}

/// `cairn lock`: the child's exit code, or 1 when the lock could not be run.
fn lock(http: &cairn::cli::api::HttpArgs, args: cairn::cli::lock::LockArgs) -> ExitCode {
    let mut code = 1;
    let done = run_client(async {
        code = cairn::cli::lock::run(&Api::from_args(http)?, args)
            .await
            .map_err(|e| ConsulMessage(e.to_string()))?;
        Ok(String::new())
    });
    if done == ExitCode::SUCCESS { ExitCode::from(u8::try_from(code).unwrap_or(1)) } else { done }
}

/// `cairn tls ...`: files in the current directory; Consul's messages, exit code 1 on error.
fn tls(cmd: cairn::cli::tls::TlsCommand) -> ExitCode {
    let mut out = std::io::stdout();
    match cairn::cli::tls::run(cmd, std::path::Path::new("."), &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{e}");
            ExitCode::FAILURE
        }
    }
}

/// `cairn validate`: loads config files, service definitions and zones as the agent would.
fn validate(paths: &[std::path::PathBuf]) -> ExitCode {
    match cairn::cli::validate::validate(paths) {
        Ok(done) => {
            println!(
                "Configuration is valid! ({} config file(s), {} service definition(s), {} zone(s))",
                done.config_files, done.services, done.zones
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cairn assets`: writes the man page and shell completions for the packages.
fn assets(dir: &std::path::Path) -> ExitCode {
    match cairn::cli::assets::write(dir) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

/// Runs a subcommand that talks to an agent over HTTP on a small current-thread runtime and
/// prints what it returns.
fn run_client(work: impl Future<Output = anyhow::Result<String>>) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(work));
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // Consul's own lines (`Error! Failed writing data: …`) go out as they are.
            match e.downcast_ref::<ConsulMessage>() {
                Some(said) => eprintln!("{said}"),
                None => eprintln!("error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// Logs to the journal with structured fields (target, file, line, span fields) when stderr
/// is connected to it (`JOURNAL_STREAM`, set by systemd), else as text on stderr.
fn init_logging(config: &Config) {
    let level = if config.log_level == "err" { "error" } else { config.log_level.as_str() };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},openraft=warn")));
    // The monitor tap (`/v1/agent/monitor`) has its own filter, so the agent's level applies
    // to the journal or stderr only.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        match tracing_journald::layer() {
            Ok(journal) => {
                tracing_subscriber::registry()
                    .with(journal.with_syslog_identifier("cairn".into()).with_filter(filter))
                    .with(cairn::log_stream_layer())
                    .with(cairn::profile_trace_layer())
                    .init();
                return;
            }
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "warning: journald unavailable ({e}); logging to stderr");
            }
        }
    }
    let stderr = tracing_subscriber::fmt::layer().with_writer(Stderr).log_internal_errors(false);
    tracing_subscriber::registry()
        .with(stderr.with_filter(filter))
        .with(cairn::log_stream_layer())
        .with(cairn::profile_trace_layer())
        .init();
}

/// Whether stderr's reader has gone away (a write failed with EPIPE): later log lines are dropped.
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// The log writer: stderr, except that a write that fails (EPIPE from a closed pipe, or any
/// other error) is dropped instead of reported, and after EPIPE nothing more is written.
/// tracing's fmt layer would otherwise `eprintln!` the error, which panics on the same pipe,
/// in whatever task logged (the signal handler's "shutting down" among them).
#[derive(Clone, Copy)]
struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !STDERR_GONE.load(Ordering::Relaxed) {
            let mut err = std::io::stderr().lock();
            if let Err(e) = err.write_all(buf).and_then(|()| err.flush())
                && e.kind() == std::io::ErrorKind::BrokenPipe
            {
                STDERR_GONE.store(true, Ordering::Relaxed);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tracing_subscriber::fmt::MakeWriter<'_> for Stderr {
    type Writer = Self;

    fn make_writer(&self) -> Self {
        *self
    }
}

/// Prints one line of the agent's banner on stdout; a closed stdout drops it (no panic).
fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn run_agent(args: &AgentArgs) -> anyhow::Result<()> {
    let notifier = Arc::new(Notifier::from_env());
    notifier.status("loading configuration");
    let overrides = args.overrides();
    let (config, ignored) = Config::load(&overrides)?;
    init_logging(&config);
    if config.enable_debug {
        cairn::profile_heap_start();
    }
    for key in ignored {
        tracing::warn!(%key, "Consul config key accepted but not used by cairn");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        notifier.status("binding sockets and opening the catalog");
        let app = App::build(config).await?;
        say(&format!("==> cairn agent running (version v{})", env!("CARGO_PKG_VERSION")));
        if let Some(a) = app.rpc_addr() {
            say(&format!("    Server RPC: {a}"));
        }
        let mut serving = Vec::new();
        if let Some(a) = app.dns_addr() {
            say(&format!("    DNS: {a} (udp, tcp)"));
            serving.push(format!("DNS on {a}"));
        }
        if let Some(a) = app.http_addr() {
            say(&format!("    HTTP: {a}"));
            serving.push(format!("HTTP on {a}"));
        }
        for path in app.http_sockets() {
            say(&format!("    HTTP (unix socket): {}", path.display()));
            serving.push(format!("HTTP on unix://{}", path.display()));
        }
        if let Some(a) = app.https_addr() {
            say(&format!("    HTTPS: {a}"));
            serving.push(format!("HTTPS on {a}"));
        }
        say(&format!("    Data dir: {}", app.data_dir().display()));
        let status = format!("serving {}", serving.join(", "));
        let shutdown = CancellationToken::new();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let reloader = app.reloader();
        let reload_requests = app.reload_requests();
        let stop = shutdown.clone();
        let signals_notifier = notifier.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => break,
                    _ = int.recv() => break,
                    _ = hup.recv() => reload(&reloader, &overrides, &signals_notifier, &status).await,
                    () = reload_requests.notified() => reload(&reloader, &overrides, &signals_notifier, &status).await,
                }
            }
            // Stop first, then say so: nothing after the signal may stand between it and the stop.
            stop.cancel();
            signals_notifier.stopping();
            tracing::info!("shutting down");
        });
        if let Some(every) = notifier.watchdog_interval() {
            let (n, stop) = (notifier.clone(), shutdown.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        _ = tick.tick() => n.watchdog_ping(),
                    }
                }
            });
        }
        // DNS and HTTP are bound and the catalog is loaded (App::build): ready.
        notifier.ready(&format!("serving {}", serving.join(", ")));
        app.run(shutdown).await
    })
}

/// Reloads the configuration files: DNS settings, domains, recursors, zones and service
/// definitions; a config that no longer loads keeps the running one.
async fn reload(reloader: &Reloader, overrides: &Overrides, notifier: &Notifier, status: &str) {
    notifier.reloading();
    match Config::load(overrides) {
        Ok((cfg, _)) => {
            reloader.reload(&cfg);
            match reloader.register_services(&cfg).await {
                Ok(()) => {
                    tracing::info!(
                        "configuration reloaded (dns_config, domains, recursors, zones, services, TLS certificates)"
                    )
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "reload: service definitions not registered")
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "reload failed; keeping the running configuration"),
    }
    notifier.ready(status);
}
