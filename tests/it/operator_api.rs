//! `/v1/operator/autopilot/*` and `DELETE /v1/operator/raft/peer` on real agents: autopilot's
//! configuration through Raft (Consul's defaults, check-and-set, errors, kept across a
//! restart), server health from each server's Raft statistics, and on a three-server cluster
//! a killed server turning unhealthy, kept while `CleanupDeadServers` is off, then removed by
//! hand.

use std::time::Duration;

use serde_json::Value;

use crate::cluster::{Cluster, wait_until};
use crate::support::{Agent, block, eventually, http_client};

fn delete(agent: &Agent, path: &str) -> (u16, String) {
    block(async {
        let r = http_client().delete(format!("http://{}{path}", agent.http)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

fn config(agent: &Agent) -> Value {
    let (status, body) = agent.get("/v1/operator/autopilot/configuration").unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn autopilot_configuration_goes_through_raft_with_consuls_defaults_and_cas() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::server(dir.path(), &[]);
    // The leader stores the agent's settings once.
    eventually("the leader stores the autopilot configuration", || {
        config(&agent)["CreateIndex"].as_u64() > Some(0)
    });
    let c = config(&agent);
    assert_eq!(c["CleanupDeadServers"], true);
    assert_eq!(c["LastContactThreshold"], "200ms");
    assert_eq!(c["MaxTrailingLogs"], 250);
    assert_eq!(c["MinQuorum"], 0);
    assert_eq!(c["ServerStabilizationTime"], "10s");
    assert_eq!(c["RedundancyZoneTag"], "");
    assert_eq!(c["DisableUpgradeMigration"], false);
    assert_eq!(c["UpgradeVersionTag"], "");
    let index = c["ModifyIndex"].as_u64().unwrap();

    // A PUT replaces the whole configuration.
    assert_eq!(
        agent.put_ok("/v1/operator/autopilot/configuration", r#"{"CleanupDeadServers":false}"#),
        "true"
    );
    let c = config(&agent);
    assert_eq!(
        (c["CleanupDeadServers"].clone(), c["LastContactThreshold"].clone()),
        (false.into(), "0s".into())
    );
    assert!(c["ModifyIndex"].as_u64().unwrap() > index);
    assert_eq!(c["CreateIndex"].as_u64().unwrap(), index);
    let index = c["ModifyIndex"].as_u64().unwrap();

    // Check-and-set: a stale index answers false and changes nothing.
    let body = r#"{"CleanupDeadServers":true,"LastContactThreshold":"1s","MaxTrailingLogs":10,"ServerStabilizationTime":5000000000}"#;
    let stale = format!("/v1/operator/autopilot/configuration?cas={}", index - 1);
    assert_eq!(agent.put_ok(&stale, body), "false");
    assert_eq!(config(&agent)["ModifyIndex"].as_u64().unwrap(), index);
    assert_eq!(agent.put_ok(&format!("/v1/operator/autopilot/configuration?cas={index}"), body), "true");
    let c = config(&agent);
    assert_eq!(c["CleanupDeadServers"], true);
    assert_eq!(c["LastContactThreshold"], "1s");
    assert_eq!(c["MaxTrailingLogs"], 10);
    assert_eq!(c["ServerStabilizationTime"], "5s");

    // Consul's errors.
    let (status, text) = agent.put("/v1/operator/autopilot/configuration?cas=abc", "{}");
    assert_eq!(
        (status, text.as_str()),
        (400, r#"Bad request: Error parsing cas value: strconv.ParseUint: parsing "abc": invalid syntax"#)
    );
    let (status, text) =
        agent.put("/v1/operator/autopilot/configuration", r#"{"LastContactThreshold":"bad"}"#);
    assert_eq!(
        (status, text.as_str()),
        (400, r#"Bad request: Error parsing autopilot config: time: invalid duration "bad""#)
    );
    let (status, text) = agent.put("/v1/operator/autopilot/configuration", "xx");
    assert_eq!(
        (status, text.as_str()),
        (
            400,
            "Bad request: Error parsing autopilot config: invalid character 'x' looking for beginning of value"
        )
    );
    // `state` is not in Consul 1.8.7 either.
    assert_eq!(agent.get("/v1/operator/autopilot/state").unwrap().0, 404);

    // Kept across a restart (the LMDB row, or the log replayed).
    let before = config(&agent);
    drop(agent);
    let agent = Agent::server(dir.path(), &[]);
    assert_eq!(config(&agent), before);
}

#[test]
fn a_single_server_is_healthy_and_unknown_peers_get_consuls_errors() {
    let agent = Agent::dev(&[]);
    let mut health = Value::Null;
    eventually("the server is healthy", || {
        health = agent.get("/v1/operator/autopilot/health").unwrap().1;
        health["Healthy"] == true
    });
    assert_eq!(health["FailureTolerance"], 0);
    let servers = health["Servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1, "{health}");
    let s = &servers[0];
    assert_eq!((s["Name"].as_str(), s["SerfStatus"].as_str()), (Some("node1"), Some("alive")));
    assert_eq!(
        (s["Leader"].clone(), s["Voter"].clone(), s["Healthy"].clone()),
        (true.into(), true.into(), true.into())
    );
    assert_eq!(s["LastContact"], "0s");
    assert!(s["LastTerm"].as_u64().unwrap() >= 1 && s["LastIndex"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["StableSince"].as_str().unwrap().ends_with('Z'), "{s}");
    let node_id = agent.get("/v1/agent/self").unwrap().1["Config"]["NodeID"].clone();
    assert_eq!(s["ID"], node_id, "the node ID, as in raft/configuration");

    let (status, text) = delete(&agent, "/v1/operator/raft/peer?address=nope");
    assert_eq!((status, text.as_str()), (500, r#"address "nope" was not found in the Raft configuration"#));
    let (status, text) = delete(&agent, "/v1/operator/raft/peer?id=nope");
    assert_eq!((status, text.as_str()), (500, r#"id "nope" was not found in the Raft configuration"#));
    let (status, text) = delete(&agent, "/v1/operator/raft/peer");
    assert_eq!(
        (status, text.as_str()),
        (
            400,
            "Bad request: Must specify either ?id with the server's ID or ?address with IP:port of peer to remove"
        )
    );
}

fn servers_health(agent: &Agent) -> Value {
    agent.get("/v1/operator/autopilot/health").unwrap().1
}

fn server<'a>(health: &'a Value, name: &str) -> Option<&'a Value> {
    health["Servers"].as_array()?.iter().find(|s| s["Name"] == name)
}

#[test]
fn a_dead_server_turns_unhealthy_stays_while_cleanup_is_off_and_is_removed_by_hand() {
    let mut c = Cluster::start(3, &[]);
    let l = c.leader();
    let leader = c.server(l);
    wait_until(
        Duration::from_secs(30),
        "three healthy servers",
        || {
            let h = servers_health(leader);
            h["Healthy"] == true
                && h["Servers"].as_array().is_some_and(|s| s.len() == 3)
                && h["FailureTolerance"] == 1
        },
        || format!("{}\n{}", servers_health(leader), c.logs()),
    );
    // Every server answers the same view (each asks every server for its statistics).
    let other = (l + 1) % 3;
    assert_eq!(servers_health(c.server(other))["Servers"].as_array().unwrap().len(), 3);

    assert_eq!(
        c.server(l).put_ok(
            "/v1/operator/autopilot/configuration",
            r#"{"CleanupDeadServers":false,"LastContactThreshold":"200ms","MaxTrailingLogs":250}"#
        ),
        "true"
    );
    let victim = (l + 2) % 3;
    let victim_name = format!("s{victim}");
    let victim_addr = format!("127.0.0.1:{}", c.ports[victim]);
    c.kill9(victim);
    let leader = c.server(l);
    wait_until(
        Duration::from_secs(30),
        "the killed server turns unhealthy",
        || {
            let h = servers_health(leader);
            h["Healthy"] == false
                && h["FailureTolerance"] == 0
                && server(&h, &victim_name)
                    .is_some_and(|s| s["Healthy"] == false && s["SerfStatus"] == "failed")
        },
        || format!("{}\n{}", servers_health(leader), c.logs()),
    );
    // Cleanup is off: after well over autopilot's delay it is still a peer.
    std::thread::sleep(Duration::from_secs(12));
    let peers = leader.get("/v1/operator/raft/configuration").unwrap().1;
    assert_eq!(peers["Servers"].as_array().unwrap().len(), 3, "{peers}");

    let (status, text) = delete(leader, &format!("/v1/operator/raft/peer?address={victim_addr}"));
    assert_eq!((status, text.as_str()), (200, ""));
    wait_until(
        Duration::from_secs(10),
        "two peers left",
        || {
            leader.get("/v1/operator/raft/configuration").unwrap().1["Servers"]
                .as_array()
                .is_some_and(|s| s.len() == 2)
        },
        || c.logs(),
    );
    wait_until(
        Duration::from_secs(10),
        "two healthy servers",
        || {
            let h = servers_health(leader);
            h["Healthy"] == true && h["Servers"].as_array().is_some_and(|s| s.len() == 2)
        },
        || format!("{}", servers_health(leader)),
    );
}

/// One request as `token` (none when empty); (status, body).
fn as_token(agent: &Agent, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    block(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = http_client().request(method, format!("http://{}{path}", agent.http));
        if !token.is_empty() {
            r = r.header("X-Consul-Token", token);
        }
        let r = r.body(body.to_owned()).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

#[test]
fn acls_guard_autopilot_peers_events_and_coordinates() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("acl.json");
    std::fs::write(&config, r#"{"acl":{"enabled":true,"default_policy":"deny"}}"#).unwrap();
    let agent = Agent::server(&dir.path().join("data"), &["--config-file", config.to_str().unwrap()]);
    let (status, body) = agent.put("/v1/acl/bootstrap", "");
    assert_eq!(status, 200, "{body}");
    let mgmt = serde_json::from_str::<Value>(&body).unwrap()["SecretID"].as_str().unwrap().to_owned();
    let rules = r#"operator = "read"
event "deploy" { policy = "write" }"#;
    let policy = serde_json::json!({"Name": "ops", "Rules": rules}).to_string();
    assert_eq!(as_token(&agent, "PUT", "/v1/acl/policy", &mgmt, &policy).0, 200);
    let (status, body) = as_token(&agent, "PUT", "/v1/acl/token", &mgmt, r#"{"Policies":[{"Name":"ops"}]}"#);
    assert_eq!(status, 200, "{body}");
    let ops = serde_json::from_str::<Value>(&body).unwrap()["SecretID"].as_str().unwrap().to_owned();

    let coord =
        r#"{"Node":"node1","Coord":{"Vec":[0,0,0,0,0,0,0,0],"Error":1.5,"Adjustment":0,"Height":0.5}}"#;
    let writes = [
        ("PUT", "/v1/operator/autopilot/configuration", r#"{"CleanupDeadServers":false}"#),
        ("DELETE", "/v1/operator/raft/peer?address=nope", ""),
        ("PUT", "/v1/event/fire/other", ""),
        ("PUT", "/v1/coordinate/update", coord),
    ];
    for token in ["", ops.as_str()] {
        for (method, path, body) in writes {
            assert_eq!(
                as_token(&agent, method, path, token, body),
                (403, "Permission denied".into()),
                "{method} {path}"
            );
        }
    }
    for path in ["/v1/operator/autopilot/configuration", "/v1/operator/autopilot/health"] {
        assert_eq!(as_token(&agent, "GET", path, "", "").0, 403, "{path}");
        assert_eq!(as_token(&agent, "GET", path, &ops, "").0, 200, "{path}");
    }
    assert_eq!(as_token(&agent, "PUT", "/v1/coordinate/update", &mgmt, coord).0, 200);
    assert_eq!(as_token(&agent, "PUT", "/v1/event/fire/deploy", &ops, "").0, 200);
    assert_eq!(as_token(&agent, "PUT", "/v1/event/fire/secret", &mgmt, "").0, 200);
    eventually("management lists both events", || {
        let (_, body) = as_token(&agent, "GET", "/v1/event/list", &mgmt, "");
        body.contains("deploy") && body.contains("secret")
    });
    // Reads are filtered: `ops` may read (write) only `deploy` events, and no node.
    let (status, body) = as_token(&agent, "GET", "/v1/event/list", &ops, "");
    assert!(status == 200 && body.contains("deploy") && !body.contains("secret"), "{body}");
    assert_eq!(as_token(&agent, "GET", "/v1/coordinate/nodes", &ops, ""), (200, "[]".into()));
    let (status, body) = as_token(&agent, "GET", "/v1/coordinate/nodes", &mgmt, "");
    assert!(status == 200 && body.contains("node1"), "{body}");
}
