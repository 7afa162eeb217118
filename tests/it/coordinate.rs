//! Network coordinates on real agents: each agent's own Vivaldi coordinate reaches the catalog
//! (and moves off the origin once gossip probes measured round trips to another agent),
//! `PUT /v1/coordinate/update` round-trips Consul's shape exactly, unknown nodes get 404, and
//! a deregistered node's coordinate goes with it.

use serde_json::{Value, json};

use crate::cluster::{Cluster, wait_until};
use crate::support::{Agent, eventually};

fn node_coord(agent: &Agent, node: &str) -> Option<Value> {
    let (status, body) = agent.get(&format!("/v1/coordinate/node/{node}")).unwrap();
    (status == 200).then(|| body[0].clone())
}

#[test]
fn updates_round_trip_and_every_agent_reports_its_own_coordinate() {
    let agent = Agent::dev(&[]);
    // The agent's own coordinate: Vivaldi's start (origin, error 1.5, height 10 µs) alone.
    let mut own = None;
    wait_until(
        std::time::Duration::from_secs(20),
        "the agent's coordinate",
        || {
            own = node_coord(&agent, "node1");
            own.is_some()
        },
        || agent.log(),
    );
    let own = own.unwrap();
    assert_eq!(own["Node"], "node1");
    assert_eq!(own["Segment"], "");
    assert_eq!(own["Coord"]["Vec"].as_array().unwrap().len(), 8);
    assert_eq!(own["Coord"]["Error"], 1.5);
    assert_eq!(own["Coord"]["Height"], 1.0e-5);

    let (status, dcs) = agent.get("/v1/coordinate/datacenters").unwrap();
    assert_eq!(status, 200);
    assert_eq!(dcs[0]["Datacenter"], "dc1");
    assert_eq!(dcs[0]["AreaID"], "wan");
    assert_eq!(dcs[0]["Coordinates"][0]["Node"], "node1", "the server's coordinate");

    // Consul's Go test: a catalog node, a fresh coordinate with height 0.5, read back equal.
    agent.put_ok("/v1/catalog/register", r#"{"Node":"foo","Address":"1.1.1.1"}"#);
    let entry = json!({"Node":"foo","Segment":"","Coord":{"Vec":[0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0],"Error":1.5,"Adjustment":0.0,"Height":0.5}});
    agent.put_ok("/v1/coordinate/update", &entry.to_string());
    let (status, headers, body) = agent.get_full("/v1/coordinate/node/foo").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!([entry]));
    let index: u64 = headers["X-Consul-Index"].to_str().unwrap().parse().unwrap();
    let nodes = agent.get("/v1/coordinate/nodes").unwrap().1;
    let names: Vec<&str> = nodes.as_array().unwrap().iter().map(|e| e["Node"].as_str().unwrap()).collect();
    assert_eq!(names, ["foo", "node1"]);

    // Errors: a coordinate of the wrong dimensionality, a node with none.
    let bad = json!({"Node":"foo","Coord":{"Vec":[0.0,0.0,0.0],"Error":1.5,"Adjustment":0.0,"Height":0.5}});
    assert_eq!(
        agent.put("/v1/coordinate/update", &bad.to_string()),
        (500, "incompatible coordinate".to_owned())
    );
    assert_eq!(agent.get("/v1/coordinate/node/nope").unwrap().0, 404);
    // A coordinate for a node the catalog does not know is dropped.
    agent.put_ok("/v1/coordinate/update", &json!({"Node":"ghost","Coord":entry["Coord"]}).to_string());
    assert_eq!(agent.get("/v1/coordinate/node/ghost").unwrap().0, 404);
    // Without a node or a coordinate: Consul's 200, and nothing stored.
    agent.put_ok("/v1/coordinate/update", r#"{"Coord":{"Vec":[0,0,0,0,0,0,0,0]}}"#);
    agent.put_ok("/v1/coordinate/update", r#"{"Node":"foo"}"#);

    // Deregistering the node removes its coordinate (and moves the index: a blocking read wakes).
    agent.put_ok("/v1/catalog/deregister", r#"{"Node":"foo"}"#);
    let (_, headers, _) = agent.get_full(&format!("/v1/coordinate/nodes?index={index}&wait=5s")).unwrap();
    assert!(headers["X-Consul-Index"].to_str().unwrap().parse::<u64>().unwrap() > index);
    assert_eq!(agent.get("/v1/coordinate/node/foo").unwrap().0, 404);
}

#[test]
fn gossip_probes_move_the_coordinates_off_the_origin() {
    let c = Cluster::start(3, &[]);
    let l = c.leader();
    let leader = c.server(l);
    wait_until(
        std::time::Duration::from_secs(40),
        "three coordinates estimated from probe round trips",
        || {
            let nodes = leader.get("/v1/coordinate/nodes").unwrap().1;
            let rows = nodes.as_array().cloned().unwrap_or_default();
            rows.len() == 3
                && rows.iter().all(|r| {
                    r["Coord"]["Error"].as_f64().is_some_and(|e| e < 1.5)
                        && r["Coord"]["Vec"].as_array().unwrap().iter().any(|v| v.as_f64() != Some(0.0))
                })
        },
        || format!("{}\n{}", leader.get("/v1/coordinate/nodes").unwrap().1, c.logs()),
    );
    eventually("the same on every server", || {
        c.live()
            .all(|(_, s)| s.get("/v1/coordinate/nodes").unwrap().1.as_array().is_some_and(|r| r.len() == 3))
    });
}
