//! Prepared queries against a live agent: `/v1/query` create/read/update/delete/execute, and
//! `.query.` DNS names (spec §1.6, §2.9, §2.13; rows 21, 22, 35, 42, 45, 68 b/c, 88) over
//! UDP and TCP.

use std::time::Duration;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::Value;

use crate::support::{Agent, Transport, rendered, srv_targets};

fn send(agent: &Agent, method: reqwest::Method, path: &str, body: &str) -> (u16, String) {
    let url = format!("http://{}{}", agent.http, path);
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let r = crate::support::http_client()
            .request(method, url)
            .body(body.to_owned())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    })
}

/// Creates a prepared query and returns its ID.
fn create(agent: &Agent, body: &str) -> String {
    let (status, text) = send(agent, reqwest::Method::POST, "/v1/query", body);
    assert_eq!(status, 200, "POST /v1/query {body}: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let id = v["ID"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    id
}

/// Node `foo` 127.0.0.1 with `db` (12345, primary), `db2` (12345, replica) and `db3`
/// (12346, replica), all named `db`; node `bar` 127.0.0.2 with `db` (tag canary) whose check
/// warns; `webv4` on foo.
fn catalog(agent: &Agent) {
    for (id, port, tag) in [("db", 12345, "primary"), ("db2", 12345, "replica"), ("db3", 12346, "replica")] {
        agent.put_ok(
            "/v1/catalog/register",
            &format!(
                r#"{{"Node":"foo","Address":"127.0.0.1",
                    "Service":{{"ID":"{id}","Service":"db","Tags":["{tag}"],"Port":{port}}}}}"#
            ),
        );
    }
    agent.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"bar","Address":"127.0.0.2","NodeMeta":{"rack":"b"},
            "Service":{"ID":"db","Service":"db","Tags":["canary"],"Port":5000},
            "Check":{"CheckID":"db-slow","ServiceID":"db","Status":"warning"}}"#,
    );
    agent.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"foo","Address":"127.0.0.1","Service":{"Service":"webv4","Port":80}}"#,
    );
}

#[test]
fn http_create_read_update_delete_and_execute() {
    let agent = Agent::dev(&[]);
    catalog(&agent);
    let id = create(
        &agent,
        r#"{"Name":"my-query","Session":"","Token":"",
            "Service":{"Service":"db","OnlyPassing":false,"Tags":["!replica"],"Near":"_agent",
                       "Failover":{"NearestN":3,"Datacenters":["dc2"]}},
            "DNS":{"TTL":"10s"}}"#,
    );

    let (status, list) = agent.get("/v1/query").unwrap();
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (status, one) = agent.get(&format!("/v1/query/{id}")).unwrap();
    assert_eq!(status, 200);
    let q = &one[0];
    assert_eq!(q["ID"], id.as_str());
    assert_eq!(q["Name"], "my-query");
    assert_eq!(q["Service"]["Service"], "db");
    assert_eq!(q["Service"]["Tags"], serde_json::json!(["!replica"]));
    assert_eq!(q["Service"]["Near"], "_agent");
    assert_eq!(q["Service"]["Failover"]["NearestN"], 3);
    assert_eq!(q["DNS"]["TTL"], "10s");
    let created = q["CreateIndex"].as_u64().unwrap();
    assert_eq!(q["ModifyIndex"].as_u64(), Some(created));

    // Execute by name: `!replica` leaves foo/db (primary) and bar/db (canary, warning).
    let (status, ex) = agent.get("/v1/query/MY-QUERY/execute").unwrap();
    assert_eq!(status, 200, "{ex}");
    assert_eq!(ex["Service"], "db");
    assert_eq!(ex["DNS"]["TTL"], "10s");
    assert_eq!(ex["Datacenter"], "dc1");
    assert_eq!(ex["Failovers"], 0);
    let mut nodes: Vec<String> = ex["Nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Node"]["Node"].as_str().unwrap().to_owned())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["bar", "foo"]);
    assert!(ex["Nodes"][0]["Checks"].is_array());

    // Update: OnlyPassing drops bar's warning instance, unless its check is ignored.
    let (status, text) = send(
        &agent,
        reqwest::Method::PUT,
        &format!("/v1/query/{id}"),
        r#"{"Name":"my-query","Service":{"Service":"db","OnlyPassing":true,"Tags":["!replica"]}}"#,
    );
    assert_eq!(status, 200, "{text}");
    let (_, one) = agent.get(&format!("/v1/query/{id}")).unwrap();
    assert_eq!(one[0]["CreateIndex"].as_u64(), Some(created));
    assert!(one[0]["ModifyIndex"].as_u64().unwrap() > created);
    let (_, ex) = agent.get(&format!("/v1/query/{id}/execute")).unwrap();
    assert_eq!(ex["Nodes"].as_array().map(Vec::len), Some(1), "{ex}");
    assert_eq!(ex["Nodes"][0]["Node"]["Node"], "foo");
    send(
        &agent,
        reqwest::Method::PUT,
        &format!("/v1/query/{id}"),
        r#"{"Service":{"Service":"db","OnlyPassing":true,"IgnoreCheckIDs":["db-slow"],
                       "NodeMeta":{"rack":"b"}}}"#,
    );
    let (_, ex) = agent.get(&format!("/v1/query/{id}/execute")).unwrap();
    assert_eq!(ex["Nodes"].as_array().map(Vec::len), Some(1), "{ex}");
    assert_eq!(ex["Nodes"][0]["Node"]["Node"], "bar");

    // Consul's rules.
    let (status, text) = send(&agent, reqwest::Method::POST, "/v1/query", r#"{"Name":"x","Service":{}}"#);
    assert_eq!((status, text.as_str()), (500, "Must provide a Service name to query"));
    create(&agent, r#"{"Name":"taken","Service":{"Service":"db"}}"#);
    let (status, text) =
        send(&agent, reqwest::Method::POST, "/v1/query", r#"{"Name":"TAKEN","Service":{"Service":"db"}}"#);
    assert_eq!((status, text.as_str()), (500, "name 'TAKEN' aliases an existing query name"));
    let (status, _) =
        send(&agent, reqwest::Method::POST, "/v1/query", r#"{"Service":{"Service":"db"},"Bogus":1}"#);
    assert_eq!(status, 400);
    let (status, text) = send(
        &agent,
        reqwest::Method::POST,
        "/v1/query",
        &format!(r#"{{"ID":"{id}","Service":{{"Service":"db"}}}}"#),
    );
    assert_eq!((status, text.as_str()), (500, "ID must be empty when creating a new prepared query"));
    let (status, text) = send(
        &agent,
        reqwest::Method::PUT,
        "/v1/query/00000000-0000-0000-0000-000000000000",
        r#"{"Service":{"Service":"db"}}"#,
    );
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("Cannot modify non-existent prepared query"), "{text}");

    // Delete.
    let (status, _) = send(&agent, reqwest::Method::DELETE, &format!("/v1/query/{id}"), "");
    assert_eq!(status, 200);
    let (status, _, body) = agent.get_full(&format!("/v1/query/{id}")).unwrap();
    assert_eq!((status, body.as_str()), (404, "Query not found"));
    let (status, _, _) = agent.get_full(&format!("/v1/query/{id}/execute")).unwrap();
    assert_eq!(status, 404);
    let (_, list) = agent.get("/v1/query").unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}

/// A UDP query with EDNS and a Client Subnet option.
fn ecs_query(agent: &Agent, name: &str, addr: &str, prefix: u8) -> Message {
    let mut msg = Message::query();
    msg.metadata.id = 0x5eed;
    msg.add_query(hickory_proto::op::Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(addr.parse().unwrap(), prefix, 0)));
    msg.set_edns(edns);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(&msg.to_vec().unwrap(), agent.dns).unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

fn ecs_scope(msg: &Message) -> Option<(u8, u8)> {
    match msg.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.source_prefix(), s.scope_prefix())),
        _ => None,
    }
}

#[test]
fn dns_query_names_answer_like_services() {
    let agent = Agent::dev(&[]);
    catalog(&agent);
    let id =
        create(&agent, r#"{"Name":"test","Service":{"Service":"db","Tags":["!canary"]},"DNS":{"TTL":"3s"}}"#);
    create(&agent, r#"{"Name":"SomeQuery","Service":{"Service":"db","Tags":["primary"]}}"#);
    create(&agent, r#"{"Name":"query.name.with.dots","Service":{"Service":"db","Tags":["primary"]}}"#);
    create(&agent, r#"{"Name":"webv4","Service":{"Service":"webv4"}}"#);

    for transport in [Transport::Udp, Transport::Tcp] {
        // Row 21: the query's DNS.TTL on SRV and on the Additional A.
        let srv = agent.query(&format!("{id}.query.consul."), RecordType::SRV, transport);
        assert_eq!(srv.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            srv_targets(&srv),
            [(12345, "foo.node.dc1.consul.".to_owned()), (12346, "foo.node.dc1.consul.".to_owned())]
        );
        assert!(
            srv.answers.iter().chain(&srv.additionals).all(|r| r.ttl == 3),
            "{:?}",
            rendered(&srv.answers)
        );
        assert_eq!(rendered(&srv.additionals), ["foo.node.dc1.consul. 3 A 127.0.0.1"]);
        let a = agent.query(&format!("{id}.query.consul."), RecordType::A, transport);
        assert_eq!(rendered(&a.answers), [format!("{id}.query.consul. 3 A 127.0.0.1")]);

        // Row 22: an unknown query is NXDOMAIN with the SOA.
        let nx = agent.query("nope.query.consul.", RecordType::SRV, transport);
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
        assert!(nx.answers.is_empty());
        assert_eq!(nx.authorities.iter().filter(|r| r.record_type() == RecordType::SOA).count(), 1);

        // Row 42: names are case-insensitive.
        let ci = agent.query("SomeQuery.query.consul.", RecordType::SRV, transport);
        assert_eq!(ci.answers.len(), 1, "{:?}", rendered(&ci.answers));

        // Row 45: the query form de-duplicates A records per IP.
        let any = agent.query("test.query.consul.", RecordType::ANY, transport);
        assert_eq!(rendered(&any.answers), ["test.query.consul. 3 A 127.0.0.1"]);

        // Row 35's name forms: dotted names, plain and RFC 2782.
        for name in ["query.name.with.dots.query.consul.", "_query.name.with.dots._tcp.query.consul."] {
            let m = agent.query(name, RecordType::SRV, transport);
            assert_eq!(srv_targets(&m), [(12345, "foo.node.dc1.consul.".to_owned())], "{name}");
        }
        let rfc = agent.query(&format!("_{id}._tcp.query.consul."), RecordType::SRV, transport);
        assert_eq!(rfc.answers.len(), 2);

        // Row 88: a query whose instances have no address of the type is NODATA.
        let nodata = agent.query("webv4.query.consul.", RecordType::AAAA, transport);
        assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
        assert!(nodata.answers.is_empty());
        assert_eq!(nodata.authorities.iter().filter(|r| r.record_type() == RecordType::SOA).count(), 1);

        // Invalid forms.
        let pair = agent.query("test.query.dc1.dc.consul.", RecordType::A, transport);
        assert_eq!(pair.metadata.response_code, ResponseCode::NXDomain);
    }

    // Row 68: ECS scope is 0 for services and the source prefix for prepared queries.
    let svc = ecs_query(&agent, "db.service.consul.", "198.18.0.1", 32);
    assert_eq!(ecs_scope(&svc), Some((32, 0)));
    let q32 = ecs_query(&agent, "test.query.consul.", "198.18.0.1", 32);
    assert_eq!(rendered(&q32.answers), ["test.query.consul. 3 A 127.0.0.1"]);
    assert_eq!(ecs_scope(&q32), Some((32, 32)));
    let q21 = ecs_query(&agent, "test.query.consul.", "198.18.0.0", 21);
    assert_eq!(ecs_scope(&q21), Some((21, 21)));
    let nx = ecs_query(&agent, "nope.query.consul.", "198.18.0.0", 21);
    assert_eq!(ecs_scope(&nx), Some((21, 0)));
    assert!(matches!(q21.answers.first().map(|r| &r.data), Some(RData::A(_))));
}

/// A query reads back as the Go client wrote it (Consul 1.8.7: its nil lists and maps as
/// `null`, `Connect` false), so `reflect.DeepEqual` of written and read definitions holds;
/// a query for Connect-capable instances is refused rather than answered with plain ones.
#[test]
fn a_query_reads_back_with_consuls_nulls_and_connect_queries_are_refused() {
    let agent = Agent::dev(&[]);
    let id =
        create(&agent, r#"{"Name":"t2","Service":{"Service":"redis","Tags":null,"IgnoreCheckIDs":null}}"#);
    let (_, body) = send(&agent, reqwest::Method::GET, &format!("/v1/query/{id}"), "");
    let q: Value = serde_json::from_str(&body).unwrap();
    let s = &q[0]["Service"];
    for field in ["Tags", "IgnoreCheckIDs", "NodeMeta", "ServiceMeta"] {
        assert_eq!(s[field], Value::Null, "{field}: {s}");
    }
    assert_eq!((&s["Failover"]["Datacenters"], &s["Connect"]), (&Value::Null, &Value::Bool(false)));
    let (code, _) =
        send(&agent, reqwest::Method::POST, "/v1/query", r#"{"Service":{"Service":"web","Connect":true}}"#);
    assert_eq!(code, 400);
}
