//! The legacy (pre-1.4) ACL API and rules translation on a real agent with `default_policy =
//! "deny"` and master token `root`, as Consul 1.8.7 answers them [live]: `/v1/acl/create`,
//! `update`, `info`, `clone`, `list`, `destroy`; legacy tokens seen through the current API
//! (`Rules`, `Legacy`) and enforced with their legacy rules (`key "x"` is a prefix);
//! `/v1/acl/rules/translate[/:accessor]` and `cairn acl translate-rules`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Agent, block, cairn_bin, eventually, http_client};

const MASTER: &str = "root";

fn legacy_server(dir: &Path) -> Agent {
    let config = dir.join("acl.json");
    let acl =
        serde_json::json!({"acl": {"enabled": true, "default_policy": "deny", "tokens": {"master": MASTER}}});
    std::fs::write(&config, acl.to_string()).unwrap();
    let agent = Agent::server(&dir.join("data"), &["--config-file", config.to_str().unwrap()]);
    eventually("the leader creates the master token", || {
        call(&agent, reqwest::Method::GET, "/v1/acl/token/self", MASTER, "").0 == 200
    });
    agent
}

/// A request with `X-Consul-Token` (none when empty): (status, headers, body).
fn call(
    agent: &Agent,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    block(async {
        let mut req =
            http_client().request(method, format!("http://{}{}", agent.http, path)).body(body.to_owned());
        if !token.is_empty() {
            req = req.header("X-Consul-Token", token);
        }
        let r = req.timeout(Duration::from_secs(30)).send().await.unwrap();
        (r.status().as_u16(), r.headers().clone(), r.text().await.unwrap())
    })
}

fn put(agent: &Agent, path: &str, token: &str, body: &str) -> (u16, String) {
    let (s, _, b) = call(agent, reqwest::Method::PUT, path, token, body);
    (s, b)
}

fn get(agent: &Agent, path: &str, token: &str) -> (u16, String) {
    let (s, _, b) = call(agent, reqwest::Method::GET, path, token, "");
    (s, b)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Creates a legacy token; its ID (the secret).
fn create(agent: &Agent, body: Value) -> String {
    let (status, out) = put(agent, "/v1/acl/create", MASTER, &body.to_string());
    assert_eq!(status, 200, "{out}");
    let reply = json(&out);
    assert_eq!(reply.as_object().unwrap().len(), 1, "only ID: {out}");
    reply["ID"].as_str().unwrap().to_owned()
}

#[test]
fn legacy_tokens_are_created_read_listed_cloned_and_destroyed_as_in_consul() {
    let dir = tempfile::tempdir().unwrap();
    let agent = legacy_server(dir.path());
    let rules = r#"key "" { policy = "deny" }"#;
    let id = create(&agent, serde_json::json!({"Name": "API test", "Type": "client", "Rules": rules}));

    // info: no token needed (the ID is the secret); meta of a blocking read.
    let (status, headers, out) = call(&agent, reqwest::Method::GET, &format!("/v1/acl/info/{id}"), "", "");
    assert_eq!(status, 200, "{out}");
    assert!(headers["X-Consul-Index"].to_str().unwrap().parse::<u64>().unwrap() > 0);
    assert_eq!(headers["X-Consul-KnownLeader"], "true");
    let info = json(&out);
    let entry = &info[0];
    let keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6, "{entry}");
    assert_eq!((entry["ID"].as_str(), entry["Name"].as_str()), (Some(id.as_str()), Some("API test")));
    assert_eq!((entry["Type"].as_str(), entry["Rules"].as_str()), (Some("client"), Some(rules)));
    assert!(
        entry["CreateIndex"].as_u64() > Some(0)
            && entry["ModifyIndex"].as_u64() >= entry["CreateIndex"].as_u64()
    );
    assert_eq!(get(&agent, "/v1/acl/info/no-such-id", ""), (200, "[]".to_owned()));
    assert_eq!(get(&agent, "/v1/acl/info/", MASTER), (400, "Missing ACL".to_owned()));

    // The current API sees it: Rules in reads, Legacy in list stubs, an AccessorID at once.
    let (status, out) = get(&agent, "/v1/acl/token/self", &id);
    assert_eq!(status, 200, "{out}");
    let me = json(&out);
    assert_eq!((me["Rules"].as_str(), me["Description"].as_str()), (Some(rules), Some("API test")));
    assert_eq!(me["CreateTime"], "0001-01-01T00:00:00Z");
    assert!(me.get("Policies").is_none() && me.get("Legacy").is_none(), "{me}");
    let accessor = me["AccessorID"].as_str().unwrap().to_owned();
    let stubs = json(&get(&agent, "/v1/acl/tokens", MASTER).1);
    let stub = stubs.as_array().unwrap().iter().find(|t| t["AccessorID"] == accessor.as_str()).unwrap();
    assert_eq!(stub["Legacy"], true);
    assert!(stub.get("Rules").is_none(), "{stub}");

    // list: the legacy tokens (the master token among them), by AccessorID; acl:write only.
    let (status, headers, out) = call(&agent, reqwest::Method::GET, "/v1/acl/list", MASTER, "");
    assert_eq!(status, 200, "{out}");
    assert!(headers.contains_key("X-Consul-Index"));
    let list = json(&out);
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|e| e["ID"].as_str().unwrap()).collect();
    assert!(ids.contains(&MASTER) && ids.contains(&id.as_str()), "{ids:?}");
    assert!(!ids.contains(&"anonymous"), "the anonymous token is not legacy: {ids:?}");
    let master = list.as_array().unwrap().iter().find(|e| e["ID"] == MASTER).unwrap();
    assert_eq!(
        (master["Name"].as_str(), master["Type"].as_str(), master["Rules"].as_str()),
        (Some("Master Token"), Some("management"), Some(""))
    );
    assert_eq!(get(&agent, "/v1/acl/list", &id), (403, "Permission denied".to_owned()));
    assert_eq!(get(&agent, "/v1/acl/list", ""), (403, "Permission denied".to_owned()));

    // clone: same name, type and rules under a new ID, with the read meta.
    let (status, headers, out) =
        call(&agent, reqwest::Method::PUT, &format!("/v1/acl/clone/{id}"), MASTER, "");
    assert_eq!(status, 200, "{out}");
    assert!(headers.contains_key("X-Consul-Index"));
    let clone = json(&out)["ID"].as_str().unwrap().to_owned();
    assert_ne!(clone, id);
    let copy = json(&get(&agent, &format!("/v1/acl/info/{clone}"), "").1);
    assert_eq!((copy[0]["Name"].as_str(), copy[0]["Rules"].as_str()), (Some("API test"), Some(rules)));
    let (status, out) = put(&agent, "/v1/acl/clone/no-such-id", MASTER, "");
    assert_eq!((status, out.as_str()), (403, "Permission denied"));
    let (status, out) = put(&agent, &format!("/v1/acl/clone/{id}"), &id, "");
    assert_eq!((status, out.as_str()), (403, "Permission denied"));
    // The master token clones as a legacy management token, which links global-management.
    let root_clone =
        json(&put(&agent, "/v1/acl/clone/root", MASTER, "").1)["ID"].as_str().unwrap().to_owned();
    let copy = json(&get(&agent, "/v1/acl/token/self", &root_clone).1);
    assert_eq!(copy["Policies"][0]["Name"], "global-management");

    // destroy: true, also for an unknown ID; the token is gone.
    assert_eq!(put(&agent, &format!("/v1/acl/destroy/{clone}"), MASTER, ""), (200, "true".to_owned()));
    assert_eq!(get(&agent, &format!("/v1/acl/info/{clone}"), ""), (200, "[]".to_owned()));
    assert_eq!(put(&agent, "/v1/acl/destroy/no-such-id", MASTER, ""), (200, "true".to_owned()));
    assert_eq!(put(&agent, "/v1/acl/destroy/", MASTER, ""), (400, "Missing ACL".to_owned()));
    assert_eq!(put(&agent, &format!("/v1/acl/destroy/{id}"), "", "").0, 403);
}

#[test]
fn legacy_writes_check_as_consul_does() {
    let dir = tempfile::tempdir().unwrap();
    let agent = legacy_server(dir.path());
    let bad = |body: Value| put(&agent, "/v1/acl/create", MASTER, &body.to_string());
    assert_eq!(bad(serde_json::json!({"Name": "x", "Type": "foo"})), (500, "Invalid ACL Type".to_owned()));
    let (status, out) = bad(serde_json::json!({"Rules": r#"key "" { policy = "nope" }"#}));
    assert_eq!(status, 500);
    assert_eq!(
        out,
        r#"ACL rule compilation failed: Invalid key policy: &acl.KeyRule{Prefix:"", Policy:"nope", EnterpriseRule:acl.EnterpriseRule{}}"#
    );
    let (status, out) = put(&agent, "/v1/acl/create", MASTER, "garbage");
    assert_eq!(status, 400);
    assert!(out.starts_with("Request decode failed: "), "{out}");
    assert_eq!(put(&agent, "/v1/acl/create", "", "{}"), (403, "Permission denied".to_owned()));
    // An ID of one's own (any text) and no Type: a client token; a second create updates it.
    assert_eq!(create(&agent, serde_json::json!({"ID": "my-own-id", "Name": "mine"})), "my-own-id");
    assert_eq!(create(&agent, serde_json::json!({"ID": "my-own-id", "Name": "mine2"})), "my-own-id");
    let info = json(&get(&agent, "/v1/acl/info/my-own-id", "").1);
    assert_eq!((info[0]["Name"].as_str(), info[0]["Type"].as_str()), (Some("mine2"), Some("client")));
    // update: needs an ID; may create; never touches a current token or a root name.
    assert_eq!(
        put(&agent, "/v1/acl/update", MASTER, r#"{"Name":"x"}"#),
        (400, "ACL ID must be set".to_owned())
    );
    let (status, out) = put(&agent, "/v1/acl/update", MASTER, r#"{"ID":"brand-new","Name":"nn"}"#);
    assert_eq!((status, json(&out)["ID"].as_str()), (200, Some("brand-new")));
    let (status, out) = put(&agent, "/v1/acl/token", MASTER, r#"{"Description":"current"}"#);
    assert_eq!(status, 200, "{out}");
    let current = json(&out)["SecretID"].as_str().unwrap().to_owned();
    let body = serde_json::json!({"ID": current, "Name": "upd"}).to_string();
    let expected = (500, "Cannot use legacy endpoint to modify a non-legacy token".to_owned());
    assert_eq!(put(&agent, "/v1/acl/update", MASTER, &body), expected);
    assert_eq!(put(&agent, "/v1/acl/update", MASTER, r#"{"ID":"root","Name":"x"}"#), expected);
    assert_eq!(get(&agent, &format!("/v1/acl/info/{current}"), ""), (200, "[]".to_owned()));
    let (status, out) = put(&agent, "/v1/acl/update", MASTER, r#"{"ID":"allow","Type":"client"}"#);
    assert_eq!((status, out.as_str()), (403, "Permission denied: Cannot modify root ACL"));
}

#[test]
fn legacy_rules_are_enforced_with_keys_as_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let agent = legacy_server(dir.path());
    assert_eq!(put(&agent, "/v1/kv/foobar", MASTER, "hi"), (200, "true".to_owned()));
    let deny = create(&agent, serde_json::json!({"Name": "d", "Rules": r#"key "" { policy = "deny" }"#}));
    let read = create(&agent, serde_json::json!({"Name": "r", "Rules": r#"key "foo" { policy = "read" }"#}));
    let none = create(&agent, serde_json::json!({"Name": "n"}));
    let acl_write =
        create(&agent, serde_json::json!({"Name": "w", "Rules": "acl = \"write\"\noperator = \"read\""}));
    assert_eq!(get(&agent, "/v1/kv/foobar?raw", &deny).0, 403);
    assert_eq!(get(&agent, "/v1/kv/foobar?raw", &read), (200, "hi".to_owned()));
    assert_eq!(get(&agent, "/v1/kv/fo?raw", &read).0, 403, "legacy key \"foo\" is a prefix, not more");
    assert_eq!(put(&agent, "/v1/kv/foobar", &read, "x").0, 403);
    assert_eq!(get(&agent, "/v1/kv/foobar?raw", &none).0, 403);
    // A legacy `acl` rule is checked but grants nothing; `operator` counts [live on 1.8.7].
    assert_eq!(put(&agent, "/v1/acl/create", &acl_write, "{}").0, 403);
    assert_eq!(get(&agent, "/v1/operator/raft/configuration", &acl_write).0, 200);
    // A legacy management token manages.
    let mgmt = create(&agent, serde_json::json!({"Name": "m", "Type": "management"}));
    assert_eq!(put(&agent, "/v1/kv/other", &mgmt, "y"), (200, "true".to_owned()));
    assert_eq!(get(&agent, "/v1/acl/list", &mgmt).0, 200);
    // Destroying the token ends its access at once.
    assert_eq!(put(&agent, &format!("/v1/acl/destroy/{read}"), MASTER, "").0, 200);
    let (status, out) = get(&agent, "/v1/kv/foobar?raw", &read);
    assert_eq!((status, out.as_str()), (403, "ACL not found"));
}

#[test]
fn rules_translate_over_http_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let agent = legacy_server(dir.path());
    let translate =
        |token: &str, body: &str| call(&agent, reqwest::Method::POST, "/v1/acl/rules/translate", token, body);
    let (status, headers, out) =
        translate(MASTER, "# c\nkey \"\" {\n   policy = \"read\"\n}\nservice \"web\" { policy = \"write\" }");
    assert_eq!(status, 200, "{out}");
    assert_eq!(headers["Content-Type"], "text/plain; charset=utf-8");
    assert_eq!(
        out,
        "# c\nkey_prefix \"\" {\n  policy = \"read\"\n}\n\nservice_prefix \"web\" {\n  policy = \"write\"\n}"
    );
    let (status, _, out) = translate(MASTER, "key \"\" {");
    assert_eq!(
        (status, out.as_str()),
        (400, "Bad request: Failed to parse rules: At 1:10: object expected closing RBRACE got: EOF")
    );
    assert_eq!(translate("", "key \"a\" {}").0, 403);

    let id = create(
        &agent,
        serde_json::json!({"Name": "t", "Rules": "key \"\" { policy = \"read\" }\nacl = \"read\""}),
    );
    let accessor = json(&get(&agent, "/v1/acl/token/self", &id).1)["AccessorID"].as_str().unwrap().to_owned();
    assert_eq!(
        get(&agent, &format!("/v1/acl/rules/translate/{accessor}"), MASTER),
        (200, "key_prefix \"\" {\n  policy = \"read\"\n}\n\nacl = \"read\"".to_owned())
    );
    assert_eq!(get(&agent, &format!("/v1/acl/rules/translate/{accessor}"), &id).0, 403);
    let (status, out) = get(&agent, "/v1/acl/rules/translate/nonexist", MASTER);
    assert_eq!(
        (status, out.as_str()),
        (500, "failed acl token lookup: index error: UUID must be 36 characters")
    );
    let (status, out) = get(&agent, "/v1/acl/rules/translate/12345678-1234-1234-1234-123456789012", MASTER);
    assert_eq!((status, out.as_str()), (403, "ACL not found"));
    let master_accessor =
        json(&get(&agent, "/v1/acl/token/self", MASTER).1)["AccessorID"].as_str().unwrap().to_owned();
    let (status, out) = get(&agent, &format!("/v1/acl/rules/translate/{master_accessor}"), MASTER);
    assert_eq!((status, out.as_str()), (500, "The specified token does not have any rules set"));
    assert_eq!(
        get(&agent, "/v1/acl/rules/translate/", MASTER),
        (400, "Bad request: Missing token ID".to_owned())
    );

    // The CLI: raw rules need no agent; token rules come from it.
    let cli = |args: &[&str]| {
        let out = Command::new(cairn_bin())
            .args(args)
            .env("CAIRN_HTTP_ADDR", agent.http.to_string())
            .env("CONSUL_HTTP_TOKEN", MASTER)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let raw = cli(&["acl", "translate-rules", "node \"n\" { policy = \"write\" }"]);
    assert_eq!(raw, (Some(0), "node_prefix \"n\" {\n  policy = \"write\"\n}\n".to_owned(), String::new()));
    let by_accessor = cli(&["acl", "translate-rules", "-token-accessor", &accessor[..8]]);
    assert_eq!(
        (by_accessor.0, by_accessor.1.as_str()),
        (Some(0), "key_prefix \"\" {\n  policy = \"read\"\n}\n\nacl = \"read\"\n")
    );
    let by_secret = cli(&["acl", "translate-rules", "-token-secret", &id]);
    assert_eq!(by_secret.1, by_accessor.1);
    let broken = cli(&["acl", "translate-rules", "key \"\" {"]);
    assert_eq!(broken.0, Some(1));
    assert_eq!(
        broken.2.trim_end(),
        "Error translating rules: Failed to parse rules: At 1:10: object expected closing RBRACE got: EOF"
    );
    assert_eq!(cli(&["acl", "translate-rules"]).2.trim_end(), "Error! Missing TRANSLATE argument");
    assert_eq!(
        cli(&["acl", "translate-rules", "a", "b"]).2.trim_end(),
        "Error! Too many arguments: expected 1 got 2"
    );
    let both = cli(&["acl", "translate-rules", "-token-secret", "-token-accessor", "x"]);
    assert_eq!(both.2.trim_end(), "Error - cannot specify both -token-secret and -token-accessor");
    let master = cli(&["acl", "translate-rules", "-token-accessor", &master_accessor]);
    assert_eq!((master.0, master.2.trim_end()), (Some(1), "Token is not a legacy token with rules"));
}
