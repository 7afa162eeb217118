//! ACLs on a real agent (spec §1.3, §1.7, §1.8, §5.1): bootstrap once then 403 with the reset
//! index, policies with HCL rules (bad rules stored nowhere), tokens linked by policy name,
//! token/self, Consul's status codes and texts, and ACL state kept across a restart (LMDB) and
//! a snapshot save/restore. ACLs off: every ACL route is 401.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Agent, block, http_client};

const ACL_DENY: &str = r#"{"acl":{"enabled":true,"default_policy":"deny"}}"#;

fn acl_server(dir: &Path) -> Agent {
    let config = dir.join("acl.json");
    if !config.exists() {
        std::fs::write(&config, ACL_DENY).unwrap();
    }
    let data = dir.join("data");
    Agent::server(&data, &["--config-file", config.to_str().unwrap()])
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A request with `X-Consul-Token`; returns (status, body).
fn send(agent: &Agent, method: reqwest::Method, path: &str, token: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    block(async {
        let url = format!("http://{}{}", agent.http, path);
        let r = http_client()
            .request(method, url)
            .header("X-Consul-Token", token)
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    })
}

fn text(r: (u16, Vec<u8>)) -> (u16, String) {
    (r.0, String::from_utf8_lossy(&r.1).into_owned())
}

#[test]
fn bootstrap_policies_tokens_survive_restart_and_snapshot_restore() {
    let dir = tempfile::tempdir().unwrap();
    let agent = acl_server(dir.path());

    let (status, body) = agent.put("/v1/acl/bootstrap", "");
    assert_eq!(status, 200, "{body}");
    let boot = json(&body);
    let mgmt = boot["SecretID"].as_str().unwrap().to_owned();
    assert_eq!(boot["ID"], boot["SecretID"]);
    assert_eq!(boot["Description"], "Bootstrap Token (Global Management)");
    assert_eq!(boot["Policies"][0]["ID"], "00000000-0000-0000-0000-000000000001");
    assert_eq!(boot["Policies"][0]["Name"], "global-management");
    let (status, body) = agent.put("/v1/acl/bootstrap", "");
    assert_eq!(status, 403, "{body}");
    assert!(body.starts_with("Permission denied: ACL bootstrap no longer allowed (reset index: "), "{body}");
    assert_eq!(agent.get("/v1/acl/bootstrap").unwrap().0, 405);
    // The reset file re-opens bootstrap once, with the right index only.
    let reset: u64 = body.rsplit("reset index: ").next().unwrap().trim_end_matches(')').parse().unwrap();
    let reset_file = dir.path().join("data").join("acl-bootstrap-reset");
    std::fs::write(&reset_file, format!("{}", reset + 100)).unwrap();
    let (status, out) = agent.put("/v1/acl/bootstrap", "");
    assert_eq!(status, 500, "{out}");
    assert_eq!(
        out,
        format!("Invalid bootstrap reset index (specified {}, reset index: {reset})", reset + 100)
    );
    std::fs::write(&reset_file, format!("{reset}\n")).unwrap();
    let (status, out) = agent.put("/v1/acl/bootstrap", "");
    assert_eq!(status, 200, "{out}");
    assert!(!reset_file.exists(), "the reset file is used once");
    assert_eq!(agent.put("/v1/acl/bootstrap", "").0, 403);

    // Policies: HCL rules; bad rules, a bad name and a duplicate are 500s that store nothing.
    let rules = r#"key_prefix "app/" { policy = "write" }"#;
    let body = serde_json::json!({"Name": "kv-app", "Rules": rules}).to_string();
    let (status, out) = agent.put(&format!("/v1/acl/policy?token={mgmt}"), &body);
    assert_eq!(status, 200, "{out}");
    let policy = json(&out);
    assert!(
        policy["ID"].is_string() && policy["Hash"].is_string() && policy["CreateIndex"].as_u64() > Some(0)
    );
    let bad =
        serde_json::json!({"Name": "bad", "Rules": r#"key_prefix "x" { policy = "bogus" }"#}).to_string();
    let (status, out) = agent.put(&format!("/v1/acl/policy?token={mgmt}"), &bad);
    assert_eq!(status, 500, "{out}");
    let (status, out) =
        text(send(&agent, reqwest::Method::GET, "/v1/acl/policy/name/bad", &mgmt, Vec::new()));
    assert_eq!((status, out.as_str()), (403, "ACL not found"));
    let (status, out) = agent.put(&format!("/v1/acl/policy?token={mgmt}"), r#"{"Name":"bad name"}"#);
    assert_eq!(status, 500);
    assert_eq!(out, "Invalid Policy: invalid Name. Only alphanumeric characters, '-' and '_' are allowed");
    let (status, out) = agent.put(&format!("/v1/acl/policy?token={mgmt}"), &body);
    assert_eq!((status, out.as_str()), (500, "Invalid Policy: A Policy with Name \"kv-app\" already exists"));

    // Tokens linked by policy name; an unknown name is refused.
    let (status, out) = agent.put(
        &format!("/v1/acl/token?token={mgmt}"),
        r#"{"Description":"app","Policies":[{"Name":"kv-app"}]}"#,
    );
    assert_eq!(status, 200, "{out}");
    let app = json(&out);
    let app_secret = app["SecretID"].as_str().unwrap().to_owned();
    assert_eq!(app["Policies"][0]["Name"], "kv-app");
    let (status, out) =
        agent.put(&format!("/v1/acl/token?token={mgmt}"), r#"{"Policies":[{"Name":"nope"}]}"#);
    assert_eq!((status, out.as_str()), (500, "No such ACL policy with name \"nope\""));

    // token/self; unknown token; anonymous under deny; the management token lists stubs.
    let (status, out) =
        text(send(&agent, reqwest::Method::GET, "/v1/acl/token/self", &app_secret, Vec::new()));
    assert_eq!(status, 200, "{out}");
    assert_eq!(json(&out)["AccessorID"], app["AccessorID"]);
    assert_eq!(agent.get_full("/v1/acl/token/self").unwrap().2, "ACL not found");
    let unknown = "00000000-1111-2222-3333-444444444444";
    let (status, _, out) = agent.get_full(&format!("/v1/acl/tokens?token={unknown}")).unwrap();
    assert_eq!((status, out.as_str()), (403, "ACL not found"));
    let (status, _, out) = agent.get_full("/v1/acl/tokens").unwrap();
    assert_eq!((status, out.as_str()), (403, "Permission denied"));
    let (status, headers, list) = agent.get_full(&format!("/v1/acl/tokens?token={mgmt}")).unwrap();
    assert_eq!(status, 200);
    let index: u64 = headers["X-Consul-Index"].to_str().unwrap().parse().unwrap();
    assert!(index > 1, "the ACL index: {index}");
    let list = json(&list);
    let list = list.as_array().unwrap().clone();
    assert!(list.iter().all(|t| t.get("SecretID").is_none()), "{list:?}");
    assert!(list.iter().any(|t| t["AccessorID"] == "00000000-0000-0000-0000-000000000002"
        && t["Description"] == "Anonymous Token"));
    // A blocking read of the policies wakes on a policy write.
    std::thread::scope(|scope| {
        let waiter =
            scope.spawn(|| agent.get_full(&format!("/v1/acl/policies?token={mgmt}&index={index}&wait=20s")));
        std::thread::sleep(Duration::from_millis(300));
        let (status, out) = agent.put(&format!("/v1/acl/policy?token={mgmt}"), r#"{"Name":"later"}"#);
        assert_eq!(status, 200, "{out}");
        let (status, headers, out) = waiter.join().unwrap().unwrap();
        assert_eq!(status, 200);
        let woke: u64 = headers["X-Consul-Index"].to_str().unwrap().parse().unwrap();
        assert!(woke > index && out.contains("\"later\""), "{woke} {out}");
    });
    let (_, gm) = agent.get(&format!("/v1/acl/policy/name/global-management?token={mgmt}")).unwrap();
    assert!(gm["Rules"].as_str().unwrap().contains("acl = \"write\""), "{gm}");
    let (status, _) = agent.get(&format!("/v1/acl/role/{unknown}?token={mgmt}")).unwrap();
    assert_eq!(status, 404);

    // A restart keeps the ACL tables (LMDB).
    drop(agent);
    let agent = acl_server(dir.path());
    let (status, out) =
        text(send(&agent, reqwest::Method::GET, "/v1/acl/token/self", &app_secret, Vec::new()));
    assert_eq!(status, 200, "after restart: {out}");

    // A snapshot taken with the token restores it after a delete.
    let (status, snapshot) = send(&agent, reqwest::Method::GET, "/v1/snapshot", &mgmt, Vec::new());
    assert_eq!(status, 200);
    let accessor = app["AccessorID"].as_str().unwrap();
    let (status, _) =
        send(&agent, reqwest::Method::DELETE, &format!("/v1/acl/token/{accessor}"), &mgmt, Vec::new());
    assert_eq!(status, 200);
    let (status, out) =
        text(send(&agent, reqwest::Method::GET, "/v1/acl/token/self", &app_secret, Vec::new()));
    assert_eq!((status, out.as_str()), (403, "ACL not found"));
    let (status, out) = text(send(&agent, reqwest::Method::PUT, "/v1/snapshot", &mgmt, snapshot));
    assert_eq!(status, 200, "{out}");
    let (status, out) =
        text(send(&agent, reqwest::Method::GET, "/v1/acl/token/self", &app_secret, Vec::new()));
    assert_eq!(status, 200, "after restore: {out}");
}

#[test]
fn acl_routes_answer_401_when_acls_are_off() {
    let agent = Agent::dev(&[]);
    assert_eq!(agent.put("/v1/acl/bootstrap", ""), (401, "ACL support disabled".to_owned()));
    let (status, _, body) = agent.get_full("/v1/acl/tokens").unwrap();
    assert_eq!((status, body.as_str()), (401, "ACL support disabled"));
}

#[test]
fn a_bad_default_policy_refuses_the_start_with_consuls_text() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("acl.json");
    std::fs::write(&config, r#"{"acl":{"enabled":true,"default_policy":"maybe"}}"#).unwrap();
    let err = Agent::try_start(&["--dev", "--config-file", config.to_str().unwrap()]).err().unwrap();
    assert!(err.contains("Unsupported default ACL policy: maybe"), "{err}");
}

#[test]
fn the_configured_master_token_is_created_by_the_leader_and_closes_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let master = "3f1b7c1e-9a59-4c4f-8f3e-1c2d3e4f5a6b";
    let config = serde_json::json!({"acl": {"enabled": true, "default_policy": "deny",
        "tokens": {"initial_management": master}}});
    std::fs::write(dir.path().join("acl.json"), config.to_string()).unwrap();
    let agent = acl_server(dir.path());
    let mut me = Value::Null;
    crate::support::eventually("the leader creates the master token", || {
        let (status, out) =
            text(send(&agent, reqwest::Method::GET, "/v1/acl/token/self", master, Vec::new()));
        me = if status == 200 { json(&out) } else { Value::Null };
        status == 200
    });
    assert_eq!(me["Description"], "Master Token");
    assert_eq!(me["Policies"][0]["Name"], "global-management");
    let (status, body) = agent.put("/v1/acl/bootstrap", "");
    assert_eq!(status, 403, "{body}");
    assert!(body.starts_with("Permission denied: ACL bootstrap no longer allowed (reset index: "), "{body}");
}

/// Consul 1.8.7's own CLI as the client (run with
/// `CAIRN_CONSUL_BIN=$(../shared/conformance/get-consul)`): `consul acl bootstrap`, `consul acl
/// policy create -rules @file`, `consul acl token create -policy-name`, as against Consul.
#[test]
fn consuls_cli_bootstraps_and_creates_policies_and_tokens() {
    let Some(consul) = std::env::var_os("CAIRN_CONSUL_BIN") else {
        eprintln!("CAIRN_CONSUL_BIN unset: Consul CLI interop not checked");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let agent = acl_server(dir.path());
    let run = |args: &[&str], token: Option<&str>| {
        let mut cmd = std::process::Command::new(&consul);
        cmd.current_dir(dir.path()).args(args).env("CONSUL_HTTP_ADDR", agent.http.to_string());
        cmd.env_remove("CONSUL_HTTP_TOKEN");
        if let Some(t) = token {
            cmd.env("CONSUL_HTTP_TOKEN", t);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success(), stdout + &String::from_utf8_lossy(&out.stderr))
    };
    let (ok, out) = run(&["acl", "bootstrap"], None);
    assert!(ok, "{out}");
    assert!(out.contains("Bootstrap Token (Global Management)"), "{out}");
    assert!(out.contains("00000000-0000-0000-0000-000000000001 - global-management"), "{out}");
    let field = |out: &str, name: &str| {
        out.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned()).unwrap()
    };
    let mgmt = field(&out, "SecretID:");
    std::fs::write(dir.path().join("rules.hcl"), "key_prefix \"app/\" {\n  policy = \"write\"\n}\n").unwrap();
    let (ok, out) = run(&["acl", "policy", "create", "-name", "app", "-rules", "@rules.hcl"], Some(&mgmt));
    assert!(ok && out.contains("Name:         app"), "{out}");
    let (ok, out) = run(&["acl", "token", "create", "-policy-name", "app", "-description", "d"], Some(&mgmt));
    assert!(ok, "{out}");
    let policy_id = out.lines().find(|l| l.trim_end().ends_with(" - app")).unwrap_or_default().to_owned();
    assert!(!policy_id.is_empty(), "{out}");
    let app = field(&out, "SecretID:");
    let (ok, out) = run(&["acl", "token", "read", "-self"], Some(&app));
    assert!(ok && out.contains(&app), "{out}");
    let (ok, out) = run(&["acl", "bootstrap"], None);
    assert!(
        !ok && out.contains("403 (Permission denied: ACL bootstrap no longer allowed (reset index: "),
        "{out}"
    );
    let (ok, out) = run(&["acl", "token", "create", "-policy-name", "nope"], Some(&mgmt));
    assert!(!ok && out.contains("500 (No such ACL policy with name \"nope\")"), "{out}");
}

#[test]
fn agent_token_default_applies_at_once_and_persists_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"{"acl":{"enabled":true,"default_policy":"deny","enable_token_persistence":true}}"#;
    std::fs::write(dir.path().join("acl.json"), config).unwrap();
    let agent = acl_server(dir.path());
    let (status, body) = agent.put("/v1/acl/bootstrap", "");
    assert_eq!(status, 200, "{body}");
    let mgmt = json(&body)["SecretID"].as_str().unwrap().to_owned();
    let set = serde_json::json!({"Token": mgmt}).to_string().into_bytes();
    let (status, _) = send(&agent, reqwest::Method::PUT, "/v1/agent/token/default", "", set.clone());
    assert_eq!(status, 403, "no token: Permission denied");
    assert_eq!(agent.get_full("/v1/acl/tokens").unwrap().0, 403, "anonymous under deny");
    let (status, out) = text(send(&agent, reqwest::Method::PUT, "/v1/agent/token/default", &mgmt, set));
    assert_eq!(status, 200, "{out}");
    assert_eq!(agent.get_full("/v1/acl/tokens").unwrap().0, 200, "the default token now answers");
    let (status, out) =
        text(send(&agent, reqwest::Method::PUT, "/v1/agent/token/nope", &mgmt, b"{}".to_vec()));
    assert_eq!((status, out.as_str()), (404, "Token \"nope\" is unknown"));
    let file = std::fs::read_to_string(dir.path().join("data").join("acl-tokens.json")).unwrap();
    assert!(file.contains("\"default\""), "{file}");
    drop(agent);
    let agent = acl_server(dir.path());
    assert_eq!(agent.get_full("/v1/acl/tokens").unwrap().0, 200, "the persisted default token is reloaded");
}
