//! `cairn tls ca create` and `cairn tls cert create -server|-client|-cli`: Consul's certificate
//! tooling, with Consul's file names, flags (single or double dash, `cli::flags`), messages and
//! exit codes, so Consul's TLS tutorial runs word for word with `cairn` in place of `consul`.
//!
//! Input: the parsed flags and the current directory. Output: PEM files in the current
//! directory and Consul's `==> Saved …` lines on stdout; an error (its text is Consul's where
//! Consul has one) for `main` to print on stderr with exit code 1. `issue` builds and verifies
//! the certificates, `key` converts key files, `client` is the CLI's TLS client setup.
//!
//! Invariants: an existing file is never overwritten (every file is created with `O_EXCL`);
//! a certificate is written only after it verified against its CA; certificates are written
//! 0644, private keys 0600 (Consul writes keys 0644; a CA key readable by every local user is
//! not a default we copy).

pub mod client;
#[cfg(test)]
mod fixtures;
pub mod issue;
pub mod key;

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::{ArgAction, Args, Subcommand};

use issue::{CaRequest, CertRequest, Kind};

/// The warning Consul prints before making a server certificate.
pub const SERVER_WARNING: &str = "==> WARNING: Server Certificates grants authority to become a
    server and access all state in the cluster including root keys
    and all ACL tokens. Do not distribute them to production hosts
    that are not server nodes. Store them as securely as CA keys.";

/// Why a `cairn tls` command failed; the text is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file the command would write is there already.
    #[error("{} already exists.", .0.display())]
    Exists(PathBuf),
    /// Not exactly one of `-server`, `-client`, `-cli`.
    #[error("Please provide either -server, -client, or -cli")]
    NoKind,
    /// `-node` with `-client` or `-cli`.
    #[error("-node requires -server")]
    NodeWithoutServer,
    /// A CA file could not be read.
    #[error("Error reading CA: {}: {source}", path.display())]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("Error writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// Making or checking the certificate failed.
    #[error(transparent)]
    Issue(#[from] issue::IssueError),
}

/// `cairn tls ...`.
#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Certificate authority commands.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Agent certificate commands.
    #[command(subcommand)]
    Cert(CertCommand),
}

/// `cairn tls ca ...`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a new CA: <domain>-agent-ca.pem and <domain>-agent-ca-key.pem in this directory.
    Create(CaCreateArgs),
}

/// `cairn tls cert ...`.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create a new agent certificate signed by the CA: <dc>-<kind>-<domain>-<N>.pem and -key.pem.
    Create(CertCreateArgs),
}

/// `cairn tls ca create` flags (Consul's, single or double dash).
#[derive(Debug, Args)]
pub struct CaCreateArgs {
    /// Number of days the CA is valid for from now on (default 5 years).
    #[arg(long, value_name = "DAYS", default_value_t = 1825, value_parser = clap::value_parser!(u32).range(1..))]
    pub days: u32,
    /// Domain of the cluster; named in the constraints with -name-constraint.
    #[arg(long, value_name = "DOMAIN", default_value = "consul")]
    pub domain: String,
    /// Add critical name constraints: the CA then signs only for -domain, localhost and
    /// -additional-name-constraint (an HTTPS UI name must be added now, not later).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL")]
    pub name_constraint: bool,
    /// Another permitted DNS name with -name-constraint (repeatable).
    #[arg(long, value_name = "NAME")]
    pub additional_name_constraint: Vec<String>,
}

/// `cairn tls cert create` flags (Consul's, single or double dash).
#[derive(Debug, Args)]
pub struct CertCreateArgs {
    /// Make a server certificate (server.<dc>.<domain>; serverAuth and clientAuth).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL")]
    pub server: bool,
    /// Make a client agent certificate (client.<dc>.<domain>).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL")]
    pub client: bool,
    /// Make a CLI certificate (cli.<dc>.<domain>; no EKU, no 127.0.0.1).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL")]
    pub cli: bool,
    /// Datacenter.
    #[arg(long, value_name = "DC", default_value = "dc1")]
    pub dc: String,
    /// Domain.
    #[arg(long, value_name = "DOMAIN", default_value = "consul")]
    pub domain: String,
    /// With -server: also valid for <node>.server.<dc>.<domain>.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Number of days the certificate is valid for from now on (default 1 year).
    #[arg(long, value_name = "DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
    pub days: u32,
    /// Another DNS name for the Subject Alternative Names (repeatable).
    #[arg(long, value_name = "NAME")]
    pub additional_dnsname: Vec<String>,
    /// Another IP address for the Subject Alternative Names (repeatable).
    #[arg(long, value_name = "IP")]
    pub additional_ipaddress: Vec<IpAddr>,
    /// The CA certificate (default <domain>-agent-ca.pem).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The CA key (default <domain>-agent-ca-key.pem).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

/// Runs a `cairn tls` command in `dir`, printing Consul's progress lines on `out`.
pub fn run(cmd: TlsCommand, dir: &Path, out: &mut dyn Write) -> Result<(), TlsError> {
    match cmd {
        TlsCommand::Ca(CaCommand::Create(args)) => ca_create(&args, dir, out),
        TlsCommand::Cert(CertCommand::Create(args)) => cert_create(&args, dir, out),
    }
}

fn ca_create(args: &CaCreateArgs, dir: &Path, out: &mut dyn Write) -> Result<(), TlsError> {
    let cert_name = format!("{}-agent-ca.pem", args.domain);
    let key_name = format!("{}-agent-ca-key.pem", args.domain);
    refuse_existing(dir, &[&cert_name, &key_name])?;
    let req = CaRequest {
        days: args.days,
        domain: args.domain.clone(),
        name_constraint: args.name_constraint,
        additional_constraints: args.additional_name_constraint.clone(),
    };
    let ca = issue::create_ca(&req, SystemTime::now())?;
    save(dir, &cert_name, &ca.cert_pem, &key_name, &ca.key_pem, out)
}

fn cert_create(args: &CertCreateArgs, dir: &Path, out: &mut dyn Write) -> Result<(), TlsError> {
    let kind = match (args.server, args.client, args.cli) {
        (true, false, false) => Kind::Server,
        (false, true, false) => Kind::Client,
        (false, false, true) => Kind::Cli,
        _ => return Err(TlsError::NoKind),
    };
    if args.node.is_some() && kind != Kind::Server {
        return Err(TlsError::NodeWithoutServer);
    }
    let ca_path = args.ca.clone().unwrap_or_else(|| PathBuf::from(format!("{}-agent-ca.pem", args.domain)));
    let key_path =
        args.key.clone().unwrap_or_else(|| PathBuf::from(format!("{}-agent-ca-key.pem", args.domain)));
    if kind == Kind::Server {
        say(out, SERVER_WARNING);
    }
    say(out, &format!("==> Using {} and {}", ca_path.display(), key_path.display()));
    let read = |p: &Path| {
        std::fs::read_to_string(dir.join(p))
            .map_err(|source| TlsError::ReadCa { path: p.to_path_buf(), source })
    };
    let (ca_pem, ca_key_pem) = (read(&ca_path)?, read(&key_path)?);
    let req = CertRequest {
        kind,
        dc: args.dc.clone(),
        domain: args.domain.clone(),
        node: args.node.clone(),
        days: args.days,
        dns_names: args.additional_dnsname.clone(),
        ip_addresses: args.additional_ipaddress.clone(),
    };
    let cert = issue::create_cert(&req, &ca_pem, &ca_key_pem, SystemTime::now())?;
    let prefix = format!("{}-{}-{}", args.dc, kind.word(), args.domain);
    let (cert_name, key_name) = next_free(dir, &prefix);
    save(dir, &cert_name, &cert.cert_pem, &key_name, &cert.key_pem, out)
}

/// `<prefix>-<N>.pem` and `<prefix>-<N>-key.pem` for the smallest N where neither exists.
fn next_free(dir: &Path, prefix: &str) -> (String, String) {
    (0u32..)
        .map(|i| (format!("{prefix}-{i}.pem"), format!("{prefix}-{i}-key.pem")))
        .find(|(c, k)| !dir.join(c).exists() && !dir.join(k).exists())
        .unwrap_or_default()
}

fn refuse_existing(dir: &Path, names: &[&str]) -> Result<(), TlsError> {
    match names.iter().find(|n| dir.join(n).exists()) {
        Some(n) => Err(TlsError::Exists(PathBuf::from(n))),
        None => Ok(()),
    }
}

/// Writes the certificate (0644), then the key (0600), each created new; a key that cannot be
/// written takes its certificate away again.
fn save(
    dir: &Path,
    cert_name: &str,
    cert: &str,
    key_name: &str,
    key: &str,
    out: &mut dyn Write,
) -> Result<(), TlsError> {
    create_new(dir, cert_name, cert, 0o644)?;
    say(out, &format!("==> Saved {cert_name}"));
    if let Err(e) = create_new(dir, key_name, key, 0o600) {
        let _ = std::fs::remove_file(dir.join(cert_name));
        return Err(e);
    }
    say(out, &format!("==> Saved {key_name}"));
    Ok(())
}

fn create_new(dir: &Path, name: &str, text: &str, mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(name);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&path)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    };
    write().map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => TlsError::Exists(PathBuf::from(name)),
        _ => TlsError::Write { path: PathBuf::from(name), source },
    })
}

/// One progress line; a closed stdout drops it (the files are what matters).
fn say(out: &mut dyn Write, line: &str) {
    let _ = writeln!(out, "{line}");
}
