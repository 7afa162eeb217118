//! User events on real agents: `PUT /v1/event/fire/:name` on a client agent listed by
//! `/v1/event/list` on the server (delivered over gossip), Consul's JSON and index, node and
//! service filters applied by each receiving agent, a blocking list woken by a new event, and
//! Consul's errors.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::free_ports;
use crate::support::{Agent, eventually};

/// A server on fixed gossip and RPC ports and a client agent that joins it.
fn server_and_client(dir: &std::path::Path) -> (Agent, Agent) {
    let ports = free_ports(2);
    let (rpc, serf) = (ports[0].to_string(), ports[1].to_string());
    let data = dir.join("s").display().to_string();
    let server = Agent::start(&[
        "--server",
        "--bootstrap-expect",
        "1",
        "--node",
        "srv",
        "--data-dir",
        &data,
        "--server-port",
        &rpc,
        "--serf-lan-port",
        &serf,
        "--serf-wan-port",
        "0",
    ]);
    let data = dir.join("c").display().to_string();
    let join = format!("127.0.0.1:{serf}");
    let client = Agent::spawn(&["--node", "cli", "--data-dir", &data, "--retry-join", &join]);
    client.wait_ready();
    eventually("both agents are members", || {
        server.get("/v1/agent/members").unwrap().1.as_array().is_some_and(|m| m.len() == 2)
    });
    (server, client)
}

fn list(agent: &Agent, query: &str) -> (Vec<Value>, u64) {
    let (status, headers, body) = agent.get_full(&format!("/v1/event/list{query}")).unwrap();
    assert_eq!(status, 200, "{body}");
    let index = headers["X-Consul-Index"].to_str().unwrap().parse().unwrap();
    (serde_json::from_str::<Value>(&body).unwrap().as_array().unwrap().clone(), index)
}

/// Consul's `IDToIndex`.
fn id_to_index(id: &str) -> u64 {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    u64::from_str_radix(&hex[..16], 16).unwrap() ^ u64::from_str_radix(&hex[16..], 16).unwrap()
}

#[test]
fn an_event_fired_on_a_client_is_listed_on_the_server_with_consuls_shape() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = server_and_client(dir.path());

    let fired: Value = serde_json::from_str(&client.put_ok("/v1/event/fire/deploy", "v1.2.3")).unwrap();
    let id = fired["ID"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "{fired}");
    assert_eq!(fired["Name"], "deploy");
    assert_eq!(fired["Payload"], "djEuMi4z", "base64 of the body");
    assert_eq!((fired["Version"].clone(), fired["LTime"].clone()), (1.into(), 0.into()));
    assert_eq!((fired["NodeFilter"].as_str(), fired["ServiceFilter"].as_str()), (Some(""), Some("")));

    let mut events = Vec::new();
    let mut index = 0;
    eventually("the server lists the event", || {
        (events, index) = list(&server, "");
        events.iter().any(|e| e["ID"] == id.as_str())
    });
    let last = events.last().unwrap();
    assert_eq!(last["ID"], id.as_str());
    assert_eq!(last["Payload"], "djEuMi4z");
    assert_eq!(index, id_to_index(&id));
    // The client keeps its own event too, with the same Lamport time.
    let (own, _) = list(&client, "");
    assert_eq!(own.last().unwrap()["LTime"], last["LTime"]);

    // An event without a body has a null payload; `?name=` filters the list.
    let other: Value = serde_json::from_str(&server.put_ok("/v1/event/fire/other", "")).unwrap();
    assert_eq!(other["Payload"], Value::Null);
    eventually("the client lists the second event", || {
        list(&client, "?name=other").0.iter().any(|e| e["ID"] == other["ID"])
    });
    let (named, _) = list(&client, "?name=deploy");
    assert!(named.iter().all(|e| e["Name"] == "deploy") && !named.is_empty());
    let (later, _) = list(&client, "");
    assert!(later.last().unwrap()["LTime"].as_u64() > last["LTime"].as_u64(), "the Lamport clock moves on");

    // Filters are applied by each receiving agent: only `srv` keeps this one.
    let only_srv: Value =
        serde_json::from_str(&client.put_ok("/v1/event/fire/targeted?node=^srv$", "")).unwrap();
    eventually("the server keeps the targeted event", || {
        list(&server, "?name=targeted").0.iter().any(|e| e["ID"] == only_srv["ID"])
    });
    assert!(list(&client, "?name=targeted").0.is_empty(), "the client is not a target");
    // A service filter: only agents with a matching service keep it.
    client.put_ok("/v1/agent/service/register", r#"{"Name":"web","Tags":["v2"],"Port":80}"#);
    let web: Value =
        serde_json::from_str(&server.put_ok("/v1/event/fire/web-only?service=we.&tag=v[0-9]", "")).unwrap();
    eventually("the client keeps the web event", || {
        list(&client, "?name=web-only").0.iter().any(|e| e["ID"] == web["ID"])
    });
    assert!(list(&server, "?name=web-only").0.is_empty(), "the server has no web service");
}

#[test]
fn a_blocking_list_returns_when_an_event_arrives_and_errors_are_consuls() {
    let agent = Agent::dev(&[]);
    let fired: Value = serde_json::from_str(&agent.put_ok("/v1/event/fire/first", "")).unwrap();
    let mut index = 0;
    eventually("the event is listed", || {
        index = list(&agent, "").1;
        index == id_to_index(fired["ID"].as_str().unwrap())
    });
    let started = Instant::now();
    let (_, same) = list(&agent, &format!("?index={index}&wait=1s"));
    assert_eq!(same, index);
    assert!(started.elapsed() >= Duration::from_millis(900), "blocked until the wait ran out");

    let waiter = {
        let http = agent.http;
        std::thread::spawn(move || {
            let url = format!("http://{http}/v1/event/list?index={index}&wait=30s");
            crate::support::block(async {
                crate::support::http_client().get(url).send().await.unwrap().text().await.unwrap()
            })
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let second: Value = serde_json::from_str(&agent.put_ok("/v1/event/fire/second", "x")).unwrap();
    let body: Value = serde_json::from_str(&waiter.join().unwrap()).unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(body.as_array().unwrap().last().unwrap()["ID"], second["ID"]);

    assert_eq!(agent.put("/v1/event/fire/", ""), (400, "Missing name".to_owned()));
    let (status, text) = agent.put("/v1/event/fire/x?node=((", "");
    assert_eq!(status, 500);
    assert!(text.starts_with("Invalid node filter: error parsing regexp: "), "{text}");
    assert_eq!(
        agent.put("/v1/event/fire/x?tag=v1", ""),
        (500, "Cannot provide tag filter without service filter".to_owned())
    );
}
