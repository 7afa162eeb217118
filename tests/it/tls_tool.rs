//! `cairn tls ca create` / `cairn tls cert create` (spec §2.3, checks T1-T3 of §5.2) run as
//! processes in a temporary directory, the files checked with `openssl` and x509-parser; and the
//! CLI as a TLS client (spec §2.4): `cairn members` (and Consul 1.8.7's CLI, with
//! `CAIRN_CONSUL_BIN`) over a real dev agent's HTTPS port under `verify_incoming` (a client
//! certificate required), certificates from `cairn tls`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::cairn_bin;

/// Every variable that could point the CLI somewhere else, removed for each run.
const CLIENT_ENV: &[&str] = &[
    "CAIRN_HTTP_ADDR",
    "CONSUL_HTTP_ADDR",
    "CONSUL_HTTP_SSL",
    "CONSUL_HTTP_SSL_VERIFY",
    "CONSUL_CACERT",
    "CONSUL_CAPATH",
    "CONSUL_CLIENT_CERT",
    "CONSUL_CLIENT_KEY",
    "CONSUL_TLS_SERVER_NAME",
];

fn cairn(dir: &Path, args: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(cairn_bin());
    cmd.current_dir(dir).args(args.split_whitespace());
    for name in CLIENT_ENV {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn ok(dir: &Path, args: &str) -> String {
    let out = cairn(dir, args, &[]);
    assert!(out.status.success(), "cairn {args}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The exit code and stderr of a run that must fail.
fn fails(dir: &Path, args: &str) -> (i32, String) {
    let out = cairn(dir, args, &[]);
    assert!(!out.status.success(), "cairn {args} succeeded");
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stderr).unwrap())
}

fn openssl_text(dir: &Path, file: &str) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(["x509", "-noout", "-text", "-in", file])
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl x509 {file}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn openssl_verify(dir: &Path, ca: &str, file: &str) -> bool {
    let out =
        Command::new("openssl").current_dir(dir).args(["verify", "-CAfile", ca, file]).output().unwrap();
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains(": OK")
}

/// The text of the line after `label` in `openssl x509 -text`, trimmed.
fn after(text: &str, label: &str) -> String {
    let mut lines = text.lines();
    lines.find(|l| l.contains(label)).unwrap_or_else(|| panic!("no {label} in\n{text}"));
    lines.next().unwrap_or_default().trim().to_owned()
}

fn lifetime_days(dir: &Path, file: &str) -> i64 {
    let pem = std::fs::read(dir.join(file)).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400
}

fn mode(dir: &Path, file: &str) -> u32 {
    std::fs::metadata(dir.join(file)).unwrap().permissions().mode() & 0o777
}

#[test]
fn t1_ca_create_writes_a_p256_ca_for_five_years_and_refuses_a_second_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), "tls ca create");
    assert_eq!(out, "==> Saved consul-agent-ca.pem\n==> Saved consul-agent-ca-key.pem\n");
    let text = openssl_text(dir.path(), "consul-agent-ca.pem");
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("ASN1 OID: prime256v1") && text.contains("NIST CURVE: P-256"), "{text}");
    assert!(text.contains("Signature Algorithm: ecdsa-with-SHA256"), "{text}");
    assert_eq!(after(&text, "X509v3 Key Usage: critical"), "Digital Signature, Certificate Sign, CRL Sign");
    assert!(text.contains("O = HashiCorp Inc., CN = Consul Agent CA "), "{text}");
    assert_eq!(lifetime_days(dir.path(), "consul-agent-ca.pem"), 1825);
    let key = std::fs::read_to_string(dir.path().join("consul-agent-ca-key.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN EC PRIVATE KEY-----\n"), "{key}");
    assert_eq!(mode(dir.path(), "consul-agent-ca.pem"), 0o644 & !umask());
    assert_eq!(mode(dir.path(), "consul-agent-ca-key.pem"), 0o600);

    let before = std::fs::read(dir.path().join("consul-agent-ca.pem")).unwrap();
    let (code, err) = fails(dir.path(), "tls ca create");
    assert_eq!((code, err.as_str()), (1, "consul-agent-ca.pem already exists.\n"));
    assert_eq!(std::fs::read(dir.path().join("consul-agent-ca.pem")).unwrap(), before, "overwritten");
    // Only the key left behind is refused too.
    std::fs::remove_file(dir.path().join("consul-agent-ca.pem")).unwrap();
    assert_eq!(fails(dir.path(), "tls ca create").1, "consul-agent-ca-key.pem already exists.\n");
}

/// The process umask (files are created 0644 minus it; 0600 keys are never more open).
fn umask() -> u32 {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    std::fs::OpenOptions::new().write(true).create_new(true).open(&probe).unwrap();
    0o666 & !(std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777)
}

#[test]
fn t2_server_certificate_with_node_and_next_free_index() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), "tls ca create");
    let out = ok(dir.path(), "tls cert create -server -dc dc1 -node s1");
    assert_eq!(
        out,
        "==> WARNING: Server Certificates grants authority to become a\n    server and access all state in the cluster including root keys\n    and all ACL tokens. Do not distribute them to production hosts\n    that are not server nodes. Store them as securely as CA keys.\n\
         ==> Using consul-agent-ca.pem and consul-agent-ca-key.pem\n==> Saved dc1-server-consul-0.pem\n==> Saved dc1-server-consul-0-key.pem\n"
    );
    let text = openssl_text(dir.path(), "dc1-server-consul-0.pem");
    assert!(text.contains("Subject: CN = server.dc1.consul"), "{text}");
    assert_eq!(
        after(&text, "X509v3 Subject Alternative Name"),
        "DNS:s1.server.dc1.consul, DNS:server.dc1.consul, DNS:localhost, IP Address:127.0.0.1"
    );
    assert_eq!(
        after(&text, "X509v3 Extended Key Usage"),
        "TLS Web Server Authentication, TLS Web Client Authentication"
    );
    assert_eq!(after(&text, "X509v3 Key Usage: critical"), "Digital Signature, Key Encipherment");
    assert_eq!(after(&text, "X509v3 Basic Constraints: critical"), "CA:FALSE");
    assert!(text.contains("NIST CURVE: P-256"), "{text}");
    assert_eq!(lifetime_days(dir.path(), "dc1-server-consul-0.pem"), 365);
    assert!(openssl_verify(dir.path(), "consul-agent-ca.pem", "dc1-server-consul-0.pem"));
    assert_eq!(mode(dir.path(), "dc1-server-consul-0-key.pem"), 0o600);

    // The next run takes the next free index; the double-dash spelling works the same.
    let out = ok(dir.path(), "tls cert create --server --dc=dc1 --days 30");
    assert!(
        out.ends_with("==> Saved dc1-server-consul-1.pem\n==> Saved dc1-server-consul-1-key.pem\n"),
        "{out}"
    );
    assert_eq!(lifetime_days(dir.path(), "dc1-server-consul-1.pem"), 30);
    // A gap (index 0 removed) is filled first.
    std::fs::remove_file(dir.path().join("dc1-server-consul-0.pem")).unwrap();
    std::fs::remove_file(dir.path().join("dc1-server-consul-0-key.pem")).unwrap();
    assert!(ok(dir.path(), "tls cert create -server=true").contains("Saved dc1-server-consul-0.pem"));
}

#[test]
fn t3_client_and_cli_certificates() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), "tls ca create");
    let out = ok(dir.path(), "tls cert create -client");
    assert_eq!(
        out,
        "==> Using consul-agent-ca.pem and consul-agent-ca-key.pem\n==> Saved dc1-client-consul-0.pem\n==> Saved dc1-client-consul-0-key.pem\n"
    );
    let text = openssl_text(dir.path(), "dc1-client-consul-0.pem");
    assert!(text.contains("Subject: CN = client.dc1.consul"), "{text}");
    assert_eq!(
        after(&text, "X509v3 Subject Alternative Name"),
        "DNS:client.dc1.consul, DNS:localhost, IP Address:127.0.0.1"
    );
    assert_eq!(
        after(&text, "X509v3 Extended Key Usage"),
        "TLS Web Client Authentication, TLS Web Server Authentication"
    );
    assert!(openssl_verify(dir.path(), "consul-agent-ca.pem", "dc1-client-consul-0.pem"));

    ok(dir.path(), "tls cert create -cli");
    let text = openssl_text(dir.path(), "dc1-cli-consul-0.pem");
    assert!(text.contains("Subject: CN = cli.dc1.consul"), "{text}");
    assert_eq!(after(&text, "X509v3 Subject Alternative Name"), "DNS:cli.dc1.consul, DNS:localhost");
    assert!(!text.contains("Extended Key Usage"), "{text}");
    assert!(!text.contains("IP Address"), "{text}");
    assert_eq!(lifetime_days(dir.path(), "dc1-cli-consul-0.pem"), 365);
    assert!(openssl_verify(dir.path(), "consul-agent-ca.pem", "dc1-cli-consul-0.pem"));
}

#[test]
fn cert_create_errors_are_consuls() {
    let dir = tempfile::tempdir().unwrap();
    // No CA yet.
    let (code, err) = fails(dir.path(), "tls cert create -client");
    assert_eq!(code, 1);
    assert!(err.starts_with("Error reading CA: consul-agent-ca.pem: "), "{err}");
    ok(dir.path(), "tls ca create");
    for args in ["tls cert create", "tls cert create -server -client", "tls cert create -client -cli"] {
        assert_eq!(
            fails(dir.path(), args),
            (1, "Please provide either -server, -client, or -cli\n".to_owned()),
            "{args}"
        );
    }
    assert_eq!(
        fails(dir.path(), "tls cert create -client -node n1"),
        (1, "-node requires -server\n".to_owned())
    );
    // Nothing was written by the failures.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["consul-agent-ca-key.pem", "consul-agent-ca.pem"]);
}

#[test]
fn domain_dc_extra_names_and_ca_files_by_flag() {
    let dir = tempfile::tempdir().unwrap();
    assert!(ok(dir.path(), "tls ca create -domain example").contains("Saved example-agent-ca.pem"));
    std::fs::create_dir(dir.path().join("pki")).unwrap();
    std::fs::rename(dir.path().join("example-agent-ca.pem"), dir.path().join("pki/ca.pem")).unwrap();
    std::fs::rename(dir.path().join("example-agent-ca-key.pem"), dir.path().join("pki/ca-key.pem")).unwrap();
    let out = ok(
        dir.path(),
        "tls cert create -server -dc dc2 -domain example -ca pki/ca.pem -key pki/ca-key.pem \
         -additional-dnsname a.example.org -additional-dnsname b.example.org \
         -additional-ipaddress 10.0.0.5 -additional-ipaddress=::1",
    );
    assert!(
        out.contains("==> Using pki/ca.pem and pki/ca-key.pem\n==> Saved dc2-server-example-0.pem\n"),
        "{out}"
    );
    let text = openssl_text(dir.path(), "dc2-server-example-0.pem");
    assert!(text.contains("Subject: CN = server.dc2.example"), "{text}");
    assert_eq!(
        after(&text, "X509v3 Subject Alternative Name"),
        "DNS:a.example.org, DNS:b.example.org, DNS:server.dc2.example, DNS:localhost, IP Address:10.0.0.5, IP Address:0:0:0:0:0:0:0:1, IP Address:127.0.0.1"
    );
    assert!(openssl_verify(dir.path(), "pki/ca.pem", "dc2-server-example-0.pem"));
    // Without -ca the default name follows -domain.
    let (_, err) = fails(dir.path(), "tls cert create -cli -domain example");
    assert!(err.starts_with("Error reading CA: example-agent-ca.pem: "), "{err}");
}

#[test]
fn name_constrained_ca_signs_only_its_names() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), "tls ca create -name-constraint -additional-name-constraint ui.example.org");
    let text = openssl_text(dir.path(), "consul-agent-ca.pem");
    assert!(text.contains("X509v3 Name Constraints: critical"), "{text}");
    let permitted: Vec<&str> =
        text.lines().skip_while(|l| !l.contains("Permitted:")).skip(1).take(3).map(str::trim).collect();
    assert_eq!(permitted, ["DNS:ui.example.org", "DNS:consul", "DNS:localhost"]);
    ok(dir.path(), "tls cert create -server -node s1");
    assert!(openssl_verify(dir.path(), "consul-agent-ca.pem", "dc1-server-consul-0.pem"));
    let (code, err) = fails(dir.path(), "tls cert create -client -additional-dnsname evil.example.net");
    assert_eq!(code, 1);
    assert!(err.contains("does not verify against the CA"), "{err}");
    assert!(!dir.path().join("dc1-client-consul-0.pem").exists());
}

// ---- The CLI as a TLS client ----

/// Where the CLI reaches the agent over HTTPS.
struct Https {
    addr: SocketAddr,
}

/// A CA, a server certificate and a CLI certificate from `cairn tls`, and a dev agent serving
/// HTTPS with them under `verify_incoming` (a CA-signed client certificate is required).
fn tls_setup() -> (tempfile::TempDir, crate::tls_https::TlsAgent, Https) {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), "tls ca create");
    ok(dir.path(), "tls cert create -server -dc dc1");
    ok(dir.path(), "tls cert create -cli");
    let file = |f: &str| dir.path().join(f);
    let config = format!(
        r#"{{"ca_file":{:?},"cert_file":{:?},"key_file":{:?},"verify_incoming":true,"ports":{{"https":0,"http":0}}}}"#,
        file("consul-agent-ca.pem"),
        file("dc1-server-consul-0.pem"),
        file("dc1-server-consul-0-key.pem"),
    );
    let (agent, addr) =
        crate::tls_https::TlsAgent::start(&config).unwrap_or_else(|log| panic!("agent did not start: {log}"));
    (dir, agent, Https { addr })
}

#[test]
fn cli_speaks_https_with_consuls_variables_and_flags() {
    let (dir, _agent, front) = tls_setup();
    let https = format!("https://{}", front.addr);
    let tutorial = [
        ("CONSUL_HTTP_ADDR", https.as_str()),
        ("CONSUL_CACERT", "consul-agent-ca.pem"),
        ("CONSUL_CLIENT_CERT", "dc1-cli-consul-0.pem"),
        ("CONSUL_CLIENT_KEY", "dc1-cli-consul-0-key.pem"),
    ];
    let out = cairn(dir.path(), "members", &tutorial);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("Node ") && stdout.contains("node1") && stdout.contains("alive"), "{stdout}");

    // The tutorial's flags, single-dash, on `members`.
    let args = format!(
        "members -ca-file=consul-agent-ca.pem -client-cert=dc1-cli-consul-0.pem \
         -client-key=dc1-cli-consul-0-key.pem -http-addr=https://localhost:{}",
        front.addr.port()
    );
    let out = cairn(dir.path(), &args, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("node1"));

    // CONSUL_HTTP_SSL turns a bare address into https; the server name can be given.
    let bare = front.addr.to_string();
    let env = [
        ("CONSUL_HTTP_ADDR", bare.as_str()),
        ("CONSUL_HTTP_SSL", "true"),
        ("CONSUL_TLS_SERVER_NAME", "server.dc1.consul"),
        ("CONSUL_CAPATH", "."),
        ("CONSUL_CLIENT_CERT", "dc1-cli-consul-0.pem"),
        ("CONSUL_CLIENT_KEY", "dc1-cli-consul-0-key.pem"),
    ];
    let out = cairn(dir.path(), "catalog datacenters", &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "dc1\n");

    // The flags, with nothing in the environment; CAIRN_HTTP_ADDR beats CONSUL_HTTP_ADDR.
    let args = format!(
        "catalog datacenters --http-addr {https} --ca-file consul-agent-ca.pem \
         --client-cert dc1-cli-consul-0.pem --client-key dc1-cli-consul-0-key.pem --tls-server-name localhost"
    );
    let out = cairn(dir.path(), &args, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut env = tutorial.to_vec();
    env[0] = ("CONSUL_HTTP_ADDR", "http://127.0.0.1:9");
    env.push(("CAIRN_HTTP_ADDR", https.as_str()));
    let out = cairn(dir.path(), "catalog datacenters", &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // CONSUL_HTTP_SSL_VERIFY=false: no CA needed (the client certificate still is).
    let env = [
        ("CONSUL_HTTP_ADDR", https.as_str()),
        ("CONSUL_HTTP_SSL_VERIFY", "false"),
        ("CONSUL_CLIENT_CERT", "dc1-cli-consul-0.pem"),
        ("CONSUL_CLIENT_KEY", "dc1-cli-consul-0-key.pem"),
    ];
    let out = cairn(dir.path(), "catalog datacenters", &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `cairn catalog datacenters` with `env` and returns its one-line error.
fn client_error(dir: &Path, env: &[(&str, &str)]) -> String {
    let out = cairn(dir, "catalog datacenters", env);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn cli_fails_clearly_without_the_right_ca_certificate_or_name() {
    let (dir, _agent, front) = tls_setup();
    let https = format!("https://{}", front.addr);
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        let mut env = vec![("CONSUL_HTTP_ADDR", https.as_str())];
        env.extend_from_slice(extra);
        env
    };
    let cert =
        [("CONSUL_CLIENT_CERT", "dc1-cli-consul-0.pem"), ("CONSUL_CLIENT_KEY", "dc1-cli-consul-0-key.pem")];
    let ca = ("CONSUL_CACERT", "consul-agent-ca.pem");

    // No client certificate: the agent's side refuses the handshake.
    let err = client_error(dir.path(), &with(&[ca]));
    eprintln!("no client certificate: {err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // No CA: the system's roots do not know the agent's certificate.
    let err = client_error(dir.path(), &with(&cert));
    eprintln!("no CA: {err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    // The wrong name.
    let mut env = with(&cert);
    env.extend([ca, ("CONSUL_TLS_SERVER_NAME", "server.dc2.consul")]);
    let err = client_error(dir.path(), &env);
    assert!(err.contains(r#"certificate not valid for name "server.dc2.consul""#), "{err}");
    // Plain HTTP to the TLS port is no answer either.
    let plain = format!("http://{}", front.addr);
    let err = client_error(dir.path(), &[("CONSUL_HTTP_ADDR", plain.as_str())]);
    eprintln!("plain: {err}");

    // Unusable files and settings: one line naming the file, before any connection.
    let mut env = with(&cert);
    env.push(("CONSUL_CACERT", "missing-ca.pem"));
    let err = client_error(dir.path(), &env);
    assert!(err.starts_with("error: missing-ca.pem: "), "{err}");
    let mut env = with(&[ca]);
    env.extend([
        ("CONSUL_CLIENT_CERT", "dc1-cli-consul-0.pem"),
        ("CONSUL_CLIENT_KEY", "consul-agent-ca.pem"),
    ]);
    let err = client_error(dir.path(), &env);
    assert!(err.starts_with("error: consul-agent-ca.pem: no PEM private key found"), "{err}");
    let mut env = with(&[ca]);
    env.push(("CONSUL_CLIENT_CERT", "dc1-cli-consul-0.pem"));
    let err = client_error(dir.path(), &env);
    assert!(err.contains("needs both -client-cert"), "{err}");
    let err = client_error(dir.path(), &with(&[("CONSUL_HTTP_SSL_VERIFY", "maybe")]));
    assert!(err.contains("CONSUL_HTTP_SSL_VERIFY=\"maybe\" is not a boolean"), "{err}");
}

/// Consul 1.8.7 itself against cairn's files (run with `CAIRN_CONSUL_BIN=$(../shared/conformance/get-consul)`):
/// `consul tls cert create` signs with a CA `cairn tls ca create` made (SEC1 key, Go's x509),
/// and `consul members` reaches the agent over HTTPS with cairn's CA and CLI certificate.
#[test]
fn consul_uses_cairns_ca_and_certificates() {
    let Some(consul) = std::env::var_os("CAIRN_CONSUL_BIN") else {
        eprintln!("CAIRN_CONSUL_BIN unset: Consul interop not checked");
        return;
    };
    let (dir, _agent, front) = tls_setup();
    let out = Command::new(&consul)
        .current_dir(dir.path())
        .args(["tls", "cert", "create", "-client"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(openssl_verify(dir.path(), "consul-agent-ca.pem", "dc1-client-consul-0.pem"));
    let out = Command::new(&consul)
        .current_dir(dir.path())
        .arg("members")
        .env("CONSUL_HTTP_ADDR", format!("https://{}", front.addr))
        .env("CONSUL_CACERT", "consul-agent-ca.pem")
        .env("CONSUL_CLIENT_CERT", "dc1-cli-consul-0.pem")
        .env("CONSUL_CLIENT_KEY", "dc1-cli-consul-0-key.pem")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("node1") && stdout.contains("alive"), "{stdout}");
}
