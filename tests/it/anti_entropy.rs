//! Anti-entropy: the agent owns the services and checks registered on it and repairs the
//! catalog when it drifts (`PUT /v1/catalog/register|deregister` behind the agent's back, a
//! catalog that lost them across a restart), and writes nothing while in sync.
//!
//! Agents run with a short `anti_entropy_interval` (1 s here, Consul's is 1 min); waits are
//! bounded by a few intervals, a contract rather than a speed measurement.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Agent, eventually};

/// An agent config file with `anti_entropy_interval` = `interval`; returns its path.
fn config_file(dir: &Path, interval: &str) -> String {
    let path = dir.join("ae.json");
    std::fs::write(&path, json!({"anti_entropy_interval": interval}).to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn dev_agent(conf: &tempfile::TempDir, interval: &str) -> Agent {
    let file = config_file(conf.path(), interval);
    Agent::dev(&["--config-file", &file])
}

fn catalog_services(agent: &Agent, node: &str) -> Vec<String> {
    let (s, body) = agent.get(&format!("/v1/catalog/node/{node}")).unwrap();
    if s != 200 || body.is_null() {
        return Vec::new();
    }
    let mut ids: Vec<String> =
        body["Services"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    ids.sort();
    ids
}

fn check_in_catalog(agent: &Agent, node: &str, id: &str) -> Option<Value> {
    let (_, checks) = agent.get(&format!("/v1/health/node/{node}")).unwrap();
    checks.as_array()?.iter().find(|c| c["CheckID"] == id).cloned()
}

fn applied_index(agent: &Agent) -> u64 {
    let (_, me) = agent.get("/v1/agent/self").unwrap();
    me["Stats"]["raft"]["applied_index"].as_str().unwrap().parse().unwrap()
}

fn register_web(agent: &Agent) {
    let body = json!({
        "ID": "web1", "Name": "web", "Address": "127.0.0.1", "Port": 80,
        "Check": {"CheckID": "web1-ttl", "TTL": "10m", "Status": "passing"},
    });
    agent.put_ok("/v1/agent/service/register", &body.to_string());
}

#[test]
fn a_service_deregistered_behind_the_agents_back_comes_back() {
    let conf = tempfile::tempdir().unwrap();
    let agent = dev_agent(&conf, "1s");
    register_web(&agent);
    agent.put_ok("/v1/catalog/deregister", &json!({"Node": "node1", "ServiceID": "web1"}).to_string());
    assert!(!catalog_services(&agent, "node1").contains(&"web1".to_owned()));
    eventually("web1 back in the catalog", || catalog_services(&agent, "node1").contains(&"web1".to_owned()));
    eventually("its check back, passing", || {
        check_in_catalog(&agent, "node1", "web1-ttl").is_some_and(|c| c["Status"] == "passing")
    });
    assert!(agent.log().contains("anti-entropy: catalog repaired"), "{}", agent.log());
}

#[test]
fn a_check_status_changed_in_the_catalog_is_restored() {
    let conf = tempfile::tempdir().unwrap();
    let agent = dev_agent(&conf, "1s");
    register_web(&agent);
    let body = json!({
        "Node": "node1", "SkipNodeUpdate": true,
        "Check": {"CheckID": "web1-ttl", "Name": "x", "ServiceID": "web1", "Status": "critical", "Output": "forged"},
    });
    agent.put_ok("/v1/catalog/register", &body.to_string());
    assert_eq!(check_in_catalog(&agent, "node1", "web1-ttl").unwrap()["Status"], "critical");
    eventually("the agent's status and definition back", || {
        check_in_catalog(&agent, "node1", "web1-ttl")
            .is_some_and(|c| c["Status"] == "passing" && c["Output"] == "" && c["Name"] != "x")
    });
    // A TTL update after the repair still works (the check is the agent's again).
    agent.put_ok("/v1/agent/check/warn/web1-ttl?note=slow", "");
    eventually("the TTL update", || {
        check_in_catalog(&agent, "node1", "web1-ttl").is_some_and(|c| c["Status"] == "warning")
    });
}

#[test]
fn records_on_this_node_the_agent_does_not_own_are_removed() {
    let conf = tempfile::tempdir().unwrap();
    let agent = dev_agent(&conf, "1s");
    register_web(&agent);
    let body = json!({
        "Node": "node1", "SkipNodeUpdate": true,
        "Service": {"ID": "intruder", "Service": "intruder", "Port": 1},
        "Check": {"CheckID": "stray", "Name": "stray", "Status": "passing"},
    });
    agent.put_ok("/v1/catalog/register", &body.to_string());
    assert!(catalog_services(&agent, "node1").contains(&"intruder".to_owned()));
    eventually("the intruder and the stray check removed", || {
        !catalog_services(&agent, "node1").contains(&"intruder".to_owned())
            && check_in_catalog(&agent, "node1", "stray").is_none()
    });
    // What the agent manages itself stays.
    assert_eq!(catalog_services(&agent, "node1"), vec!["consul".to_owned(), "web1".to_owned()]);
    assert!(check_in_catalog(&agent, "node1", "serfHealth").is_some());
    // A node of its own elsewhere in the catalog is none of the agent's business.
    let other = json!({"Node": "ext", "Address": "10.9.9.9", "Service": {"Service": "ext", "Port": 2}});
    agent.put_ok("/v1/catalog/register", &other.to_string());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(catalog_services(&agent, "ext"), vec!["ext".to_owned()]);
}

#[test]
fn the_node_deregistered_from_the_catalog_is_registered_again() {
    let conf = tempfile::tempdir().unwrap();
    let agent = dev_agent(&conf, "1s");
    register_web(&agent);
    agent.put_ok("/v1/catalog/deregister", &json!({"Node": "node1"}).to_string());
    eventually("the node, its services and checks back", || {
        catalog_services(&agent, "node1") == ["consul", "web1"]
            && check_in_catalog(&agent, "node1", "serfHealth").is_some()
            && check_in_catalog(&agent, "node1", "web1-ttl").is_some()
    });
    let (_, node) = agent.get("/v1/catalog/node/node1").unwrap();
    assert_eq!(node["Node"]["TaggedAddresses"]["lan"], "127.0.0.1", "{node}");
    assert_eq!(node["Node"]["TaggedAddresses"]["wan"], "127.0.0.1", "{node}");
}

#[test]
fn api_registrations_survive_a_restart_even_when_the_catalog_lost_them() {
    let data = tempfile::tempdir().unwrap();
    let conf = tempfile::tempdir().unwrap();
    // An hour: only the start-up sync can bring the service back.
    let file = config_file(conf.path(), "1h");
    let mut agent = Agent::server(data.path(), &["--config-file", &file]);
    register_web(&agent);
    agent.put_ok("/v1/agent/maintenance?enable=true&reason=upgrading", "");
    agent.put_ok("/v1/catalog/deregister", &json!({"Node": "node1", "ServiceID": "web1"}).to_string());
    agent.put_ok(
        "/v1/catalog/deregister",
        &json!({"Node": "node1", "CheckID": "_node_maintenance"}).to_string(),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(!catalog_services(&agent, "node1").contains(&"web1".to_owned()));
    assert_eq!(agent.terminate(), Some(0));

    let agent = Agent::server(data.path(), &["--config-file", &file]);
    eventually("web1 back after the restart", || {
        catalog_services(&agent, "node1").contains(&"web1".to_owned())
    });
    eventually("the maintenance check back", || {
        check_in_catalog(&agent, "node1", "_node_maintenance").is_some_and(|c| c["Notes"] == "upgrading")
    });
    // Deregistering through the agent removes it for good, across restarts too.
    agent.put_ok("/v1/agent/service/deregister/web1", "");
    let mut agent = agent;
    assert_eq!(agent.terminate(), Some(0));
    let agent = Agent::server(data.path(), &["--config-file", &file]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(!catalog_services(&agent, "node1").contains(&"web1".to_owned()));
}

#[test]
fn an_agent_in_sync_writes_nothing_while_idle() {
    let conf = tempfile::tempdir().unwrap();
    let agent = dev_agent(&conf, "500ms");
    register_web(&agent);
    // Let the start-up and the first syncs settle.
    std::thread::sleep(Duration::from_secs(2));
    let before = applied_index(&agent);
    // Several intervals, jitter included.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(applied_index(&agent), before, "{}", agent.log());
    assert!(!agent.log().contains("anti-entropy: catalog repaired"), "{}", agent.log());
}

#[test]
fn a_service_removed_from_the_config_files_is_deregistered_on_reload() {
    let conf = tempfile::tempdir().unwrap();
    config_file(conf.path(), "1h");
    let svc = conf.path().join("api.json");
    std::fs::write(&svc, json!({"service": {"name": "api", "port": 9090}}).to_string()).unwrap();
    let agent = Agent::dev(&["--config-dir", conf.path().to_str().unwrap()]);
    register_web(&agent);
    assert_eq!(catalog_services(&agent, "node1"), ["api", "consul", "web1"]);
    std::fs::remove_file(&svc).unwrap();
    agent.signal("HUP");
    eventually("api deregistered, the API's web1 kept", || {
        catalog_services(&agent, "node1") == ["consul", "web1"]
    });
}

/// `n` servers on fixed free RPC ports that find each other with `--retry-join`, all with
/// `anti_entropy_interval` = 1s; returns them once each knows a leader.
fn cluster(n: usize, data: &Path, conf: &str) -> Vec<Agent> {
    let ports = crate::cluster::free_ports(n);
    let servers: Vec<Agent> = (0..n)
        .map(|i| {
            let dir = data.join(format!("s{i}")).display().to_string();
            let (node, port, expect) = (format!("s{i}"), ports[i].to_string(), n.to_string());
            let mut args = vec![
                "--server",
                "--bootstrap-expect",
                &expect,
                "--node",
                &node,
                "--data-dir",
                &dir,
                "--server-port",
                &port,
                "--config-file",
                conf,
            ]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
            for p in &ports {
                args.extend(["--retry-join".to_owned(), format!("127.0.0.1:{p}")]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Agent::spawn(&args)
        })
        .collect();
    for s in &servers {
        s.wait_ready();
    }
    servers
}

fn is_leader(agent: &Agent) -> bool {
    let (_, me) = agent.get("/v1/agent/self").unwrap();
    me["Stats"]["consul"]["leader"] == "true"
}

#[test]
fn a_follower_repairs_its_own_node_through_the_leader() {
    let data = tempfile::tempdir().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let file = config_file(conf.path(), "1s");
    let servers = cluster(3, data.path(), &file);
    let mut leader = None;
    eventually("a leader", || {
        leader = servers.iter().position(is_leader);
        leader.is_some()
    });
    let leader = &servers[leader.unwrap()];
    let (i, follower) = servers.iter().enumerate().find(|(_, s)| !is_leader(s)).unwrap();
    let node = format!("s{i}");
    register_web(follower);
    eventually("web1 on the leader", || catalog_services(leader, &node).contains(&"web1".to_owned()));
    leader.put_ok("/v1/catalog/deregister", &json!({"Node": node, "ServiceID": "web1"}).to_string());
    let stray = json!({"Node": node, "SkipNodeUpdate": true, "Service": {"ID": "stray", "Service": "stray"}});
    leader.put_ok("/v1/catalog/register", &stray.to_string());
    eventually("the follower's records back in step, as seen on the leader", || {
        catalog_services(leader, &node) == ["consul", "web1"]
    });
    // Every server's own node stays as its agent has it.
    for (j, s) in servers.iter().enumerate() {
        assert!(catalog_services(s, &format!("s{j}")).contains(&"consul".to_owned()));
    }
}
