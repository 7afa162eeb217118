//! `cairn acl …` and the CLI's token (`-token`, `-token-file`, `CONSUL_HTTP_TOKEN`,
//! `CONSUL_HTTP_TOKEN_FILE`) on the real binary against a real agent with `default_policy =
//! "deny"`: Consul 1.8.7's flow (bootstrap, `policy create -rules @file`, `token create
//! -policy-name`, `kv put -token=…` refused then allowed), Consul's output shapes and error
//! lines, unique ID prefixes, `-format=json`, roles, and the token file beating the token.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{Agent, block, cairn_bin, http_client};

/// Runs `cairn ARGS` against `agent` with the extra variables `env` (none of the caller's
/// `CONSUL_HTTP_TOKEN*` leaks in).
fn cli(agent: &Agent, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(cairn_bin());
    cmd.args(args)
        .env("CAIRN_HTTP_ADDR", agent.http.to_string())
        .env_remove("CONSUL_HTTP_TOKEN")
        .env_remove("CONSUL_HTTP_TOKEN_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `cairn ARGS`, which must succeed; its stdout.
fn ok(agent: &Agent, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = cli(agent, args, env);
    assert!(out.status.success(), "cairn {args:?}: {}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

/// `cairn ARGS`, which must fail with exit status 1; its stderr.
fn fails(agent: &Agent, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = cli(agent, args, env);
    assert_eq!(out.status.code(), Some(1), "cairn {args:?}: {}{}", stdout(&out), stderr(&out));
    stderr(&out)
}

/// The value after `label` (`SecretID:` …) in Consul's pretty output.
fn field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in {text}"))
        .trim()
        .to_owned()
}

fn acl_agent(dir: &Path) -> Agent {
    let config = dir.join("acl.json");
    std::fs::write(&config, r#"{"acl":{"enabled":true,"default_policy":"deny"}}"#).unwrap();
    Agent::server(&dir.join("data"), &["--config-file", config.to_str().unwrap()])
}

#[test]
fn consuls_acl_flow_with_the_cairn_cli() {
    let dir = tempfile::tempdir().unwrap();
    let agent = acl_agent(dir.path());

    // Bootstrap once; the second time is Consul's 403 line.
    let boot = ok(&agent, &["acl", "bootstrap"], &[]);
    let mgmt = field(&boot, "SecretID:");
    assert_eq!(field(&boot, "Description:"), "Bootstrap Token (Global Management)");
    assert!(boot.contains("Local:            false\nCreate Time:      "), "{boot}");
    assert!(
        boot.ends_with("Policies:\n   00000000-0000-0000-0000-000000000001 - global-management\n\n"),
        "{boot}"
    );
    let again = fails(&agent, &["acl", "bootstrap"], &[]);
    assert!(
        again.starts_with(
            "Failed ACL bootstrapping: Unexpected response code: 403 (Permission denied: ACL bootstrap no longer allowed (reset index: "
        ),
        "{again}"
    );
    let as_mgmt = [("CONSUL_HTTP_TOKEN", mgmt.as_str())];

    // A policy from a rules file, and a token linked to it by name.
    let rules = dir.path().join("rules.hcl");
    std::fs::write(&rules, "key_prefix \"app/\" { policy = \"write\" }\n").unwrap();
    let at_rules = format!("@{}", rules.display());
    let token_flag = format!("-token={mgmt}");
    let policy = ok(
        &agent,
        &[
            "acl",
            "policy",
            "create",
            &token_flag,
            "-name",
            "app-write",
            "-description",
            "App write",
            "-rules",
            &at_rules,
        ],
        &[],
    );
    let policy_id = field(&policy, "ID:");
    assert!(
        policy.ends_with(
            "Name:         app-write\nDescription:  App write\nDatacenters:  \nRules:\nkey_prefix \"app/\" { policy = \"write\" }\n\n"
        ),
        "{policy}"
    );
    let token =
        ok(&agent, &["acl", "token", "create", "-description", "app", "-policy-name", "app-write"], &as_mgmt);
    let (accessor, secret) = (field(&token, "AccessorID:"), field(&token, "SecretID:"));
    assert!(token.contains(&format!("Policies:\n   {policy_id} - app-write\n")), "{token}");

    // Without a token the write is refused with Consul's line; with -token it is allowed.
    let refused = fails(&agent, &["kv", "put", "app/x", "1"], &[]);
    assert_eq!(refused, "Error! Failed writing data: Unexpected response code: 403 (Permission denied)\n");
    let app_token = format!("-token={secret}");
    assert_eq!(
        ok(&agent, &["kv", "put", &app_token, "app/x", "1"], &[]),
        "Success! Data written to: app/x\n"
    );
    let other = fails(&agent, &["kv", "put", &app_token, "other/x", "1"], &[]);
    assert!(other.contains("403 (Permission denied)"), "{other}");
    let denied_read = fails(&agent, &["kv", "get", "app/x"], &[]);
    assert_eq!(denied_read, "Error querying Consul agent: Unexpected response code: 403\n");

    // CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE (which beats the token, even -token), -token-file.
    assert_eq!(ok(&agent, &["kv", "get", "app/x"], &[("CONSUL_HTTP_TOKEN", &secret)]), "1\n");
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let file_s = file.to_str().unwrap();
    let env = [("CONSUL_HTTP_TOKEN", "anonymous"), ("CONSUL_HTTP_TOKEN_FILE", file_s)];
    assert_eq!(ok(&agent, &["kv", "get", "-token=anonymous", "app/x"], &env), "1\n");
    assert_eq!(ok(&agent, &["kv", "get", "-token-file", file_s, "app/x"], &[]), "1\n");
    let missing = fails(&agent, &["kv", "get", "-token-file=/nonexistent/token", "app/x"], &[]);
    assert!(missing.starts_with("error: Error loading token file: open /nonexistent/token: "), "{missing}");

    // Every HTTP verb carries the token: /v1/agent/self needs agent:read.
    let info = fails(&agent, &["info"], &[]);
    assert!(info.contains("Unexpected response code: 403 (Permission denied)"), "{info}");
    assert!(ok(&agent, &["info", &token_flag], &[]).contains("agent:"));
    assert!(ok(&agent, &["members", &token_flag], &[]).contains("node1"));
    assert!(ok(&agent, &["catalog", "nodes"], &as_mgmt).contains("node1"));

    list_read_delete(&agent, &as_mgmt, &accessor, &secret, &policy_id);
    roles_and_policy_updates(&agent, &as_mgmt, &policy_id);
}

/// `token list/read/delete` with prefixes and `-format=json`.
fn list_read_delete(agent: &Agent, as_mgmt: &[(&str, &str)], accessor: &str, secret: &str, policy_id: &str) {
    let list = ok(agent, &["acl", "token", "list"], as_mgmt);
    assert!(list.contains(&format!("AccessorID:       {accessor}\nDescription:      app\n")), "{list}");
    assert!(list.contains("Description:      Anonymous Token\n"), "{list}");
    assert!(!list.contains(secret), "a list shows no secrets: {list}");
    let prefix = &accessor[..8];
    let read = ok(agent, &["acl", "token", "read", "-id", prefix, "-meta"], as_mgmt);
    assert_eq!(field(&read, "SecretID:"), secret);
    assert!(read.contains("Create Index:     "), "{read}");
    let anon = ok(agent, &["acl", "token", "read", "-id", "anonymous"], as_mgmt);
    assert_eq!(field(&anon, "AccessorID:"), "00000000-0000-0000-0000-000000000002");
    let no_such = fails(agent, &["acl", "token", "read", "-id", "zzzz"], as_mgmt);
    assert_eq!(no_such, "Error determining token ID: No such token ID with prefix: zzzz\n");

    let json: Value =
        serde_json::from_str(&ok(agent, &["acl", "token", "read", "-id", accessor, "-format=json"], as_mgmt))
            .unwrap();
    assert_eq!(json["AccessorID"], accessor);
    assert_eq!(json["Policies"][0]["ID"], policy_id);
    assert_eq!(json["Policies"][0]["Name"], "app-write");
    let list: Value =
        serde_json::from_str(&ok(agent, &["acl", "token", "list", "-format", "json"], as_mgmt)).unwrap();
    assert!(list.as_array().unwrap().iter().all(|t| t.get("SecretID").is_none() && t["Legacy"] == false));
    let policies: Value =
        serde_json::from_str(&ok(agent, &["acl", "policy", "list", "-format=json"], as_mgmt)).unwrap();
    assert!(policies.as_array().unwrap().iter().any(|p| p["Name"] == "global-management"));
    let bad = fails(agent, &["acl", "token", "list", "-format=yaml"], as_mgmt);
    assert_eq!(bad, "Unknown format: yaml\n");

    // A token with no acl rights cannot list tokens.
    let denied = fails(agent, &["acl", "token", "list", &format!("-token={secret}")], &[]);
    assert_eq!(
        denied,
        "Failed to retrieve the token list: Unexpected response code: 403 (Permission denied)\n"
    );

    let clone = ok(agent, &["acl", "token", "clone", "-id", prefix, "-description", "copy"], as_mgmt);
    assert_eq!(field(&clone, "Description:"), "copy");
    assert!(clone.contains(&format!("   {policy_id} - app-write\n")), "{clone}");
    // Consul's own CLI sends `"Description": ""` for a clone without -description: the
    // original's description stays.
    let (status, body) = block(async {
        let url = format!("http://{}/v1/acl/token/{accessor}/clone", agent.http);
        let r = http_client()
            .put(url)
            .header("X-Consul-Token", as_mgmt[0].1)
            .body(r#"{"Description":""}"#)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["Description"], "app");
    let gone = ok(agent, &["acl", "token", "delete", "-id", prefix], as_mgmt);
    assert_eq!(gone, format!("Token \"{accessor}\" deleted successfully\n"));
    let unknown = fails(agent, &["kv", "put", &format!("-token={secret}"), "app/x", "2"], &[]);
    assert_eq!(unknown, "Error! Failed writing data: Unexpected response code: 403 (ACL not found)\n");
}

/// Roles, tokens linked to roles, and policy read/update/delete by name and prefix.
fn roles_and_policy_updates(agent: &Agent, as_mgmt: &[(&str, &str)], policy_id: &str) {
    let role = ok(
        agent,
        &[
            "acl",
            "role",
            "create",
            "-name",
            "web-role",
            "-policy-id",
            &policy_id[..8],
            "-service-identity",
            "web",
        ],
        as_mgmt,
    );
    let role_id = field(&role, "ID:");
    assert!(
        role.ends_with(&format!(
            "Name:         web-role\nDescription:  \nPolicies:\n   {policy_id} - app-write\nService Identities:\n   web (Datacenters: all)\n\n"
        )),
        "{role}"
    );
    let token = ok(agent, &["acl", "token", "create", "-role-name", "web-role"], as_mgmt);
    assert!(token.contains(&format!("Roles:\n   {role_id} - web-role\n")), "{token}");
    let read = ok(agent, &["acl", "role", "read", "-name", "web-role", "-format=json"], as_mgmt);
    let json: Value = serde_json::from_str(&read).unwrap();
    assert_eq!(json["ID"], role_id.as_str());
    let updated =
        ok(agent, &["acl", "role", "update", "-id", &role_id[..8], "-node-identity", "n1:dc1"], as_mgmt);
    assert!(updated.contains("Node Identities:\n   n1 (Datacenter: dc1)\n"), "{updated}");
    assert!(updated.contains("web (Datacenters: all)"), "merged, not replaced: {updated}");
    let missing = fails(agent, &["acl", "role", "read", "-name", "nope"], as_mgmt);
    assert_eq!(missing, "Role not found with name \"nope\"\n");
    let list = ok(agent, &["acl", "role", "list"], as_mgmt);
    assert!(list.starts_with(&format!("web-role:\n   ID:           {role_id}\n")), "{list}");

    let read = ok(agent, &["acl", "policy", "read", "-name", "app-write"], as_mgmt);
    assert_eq!(field(&read, "ID:"), policy_id);
    let updated =
        ok(agent, &["acl", "policy", "update", "-id", &policy_id[..8], "-description", "changed"], as_mgmt);
    assert!(updated.contains("Description:  changed\n"), "{updated}");
    assert!(
        updated.ends_with("Rules:\nkey_prefix \"app/\" { policy = \"write\" }\n\n"),
        "rules kept: {updated}"
    );
    let dup = fails(agent, &["acl", "policy", "create", "-name", "app-write"], as_mgmt);
    assert!(dup.starts_with("Failed to create new policy: Unexpected response code: 500 ("), "{dup}");
    let no_name = fails(agent, &["acl", "policy", "create", "-rules", "operator = \"read\""], as_mgmt);
    assert_eq!(no_name, "Missing require '-name' flag\n");
    ok(agent, &["acl", "role", "delete", "-id", &role_id], as_mgmt);
    let gone = ok(agent, &["acl", "policy", "delete", "-name", "app-write"], as_mgmt);
    assert_eq!(gone, format!("Policy \"{policy_id}\" deleted successfully\n"));
}
