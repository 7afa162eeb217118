//! Connect's catalog side on a live agent, against shapes taken from Consul 1.8.7: proxy and
//! gateway kinds registered through the agent and the catalog, sidecars from
//! `Connect.SidecarService` (IDs, ports, defaults, the two checks, removal with the parent),
//! `/v1/catalog/connect`, `/v1/health/connect`, `/v1/health/ingress`,
//! `/v1/catalog/gateway-services`, Consul's validation messages, and `.connect.` /
//! `.ingress.` DNS names.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

use crate::support::{Agent, Transport, eventually, rendered, srv_targets};

fn get(agent: &Agent, path: &str) -> Value {
    let (status, v) = agent.get(path).unwrap();
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

#[test]
fn sidecar_registration_has_consuls_defaults_and_leaves_with_its_parent() {
    let agent = Agent::dev(&[]);
    agent.put_ok(
        "/v1/agent/service/register",
        r#"{"Name":"web","Port":8080,"Connect":{"SidecarService":{}}}"#,
    );
    agent.put_ok(
        "/v1/agent/service/register",
        r#"{"Name":"api","ID":"api-1","Tags":["a"],"Meta":{"k":"v"},"Port":9000,"Address":"10.0.0.5",
            "Connect":{"SidecarService":{"Proxy":{"Upstreams":[{"DestinationName":"db","LocalBindPort":9191}]}}}}"#,
    );
    let services = get(&agent, "/v1/agent/services");
    let web = &services["web-sidecar-proxy"];
    assert_eq!(web["Kind"], "connect-proxy");
    assert_eq!(web["ID"], "web-sidecar-proxy");
    assert_eq!(web["Service"], "web-sidecar-proxy");
    assert_eq!(web["Port"], 21000);
    assert_eq!(
        web["Proxy"],
        json!({"DestinationServiceName":"web","DestinationServiceID":"web","LocalServiceAddress":"127.0.0.1",
               "LocalServicePort":8080,"MeshGateway":{},"Expose":{}})
    );
    assert!(services["web"].get("Proxy").is_none() && services["web"].get("Kind").is_none(), "{services}");
    // The second sidecar takes the next free port and inherits tags, meta and address.
    let api = &services["api-1-sidecar-proxy"];
    assert_eq!((api["Port"].clone(), api["Service"].clone()), (json!(21001), json!("api-sidecar-proxy")));
    assert_eq!((api["Tags"].clone(), api["Meta"].clone()), (json!(["a"]), json!({"k":"v"})));
    assert_eq!(api["Address"], "10.0.0.5");
    assert_eq!(
        api["Proxy"]["Upstreams"],
        json!([{"DestinationType":"service","DestinationName":"db","LocalBindPort":9191,"MeshGateway":{}}])
    );

    let checks = get(&agent, "/v1/agent/checks");
    let listening = &checks["service:web-sidecar-proxy:1"];
    assert_eq!(listening["Name"], "Connect Sidecar Listening");
    assert_eq!(listening["Type"], "tcp");
    assert_eq!(listening["ServiceID"], "web-sidecar-proxy");
    let aliasing = &checks["service:web-sidecar-proxy:2"];
    assert_eq!(aliasing["Name"], "Connect Sidecar Aliasing web");
    assert_eq!(aliasing["Type"], "alias");
    // The alias mirrors `web`, which has no failing check.
    eventually("the alias check passes", || {
        get(&agent, "/v1/agent/checks")["service:web-sidecar-proxy:2"]["Status"] == "passing"
    });
    assert_eq!(
        get(&agent, "/v1/catalog/service/api-sidecar-proxy")[0]["ServiceProxy"]["Upstreams"],
        json!([{"DestinationType":"service","DestinationName":"db","Datacenter":"","LocalBindPort":9191,
                "Config":null,"MeshGateway":{}}])
    );
    let sidecar = get(&agent, "/v1/catalog/service/web-sidecar-proxy");
    assert_eq!(sidecar[0]["ServiceKind"], "connect-proxy");
    assert_eq!(sidecar[0]["ServiceProxy"]["DestinationServiceID"], "web");
    assert_eq!(sidecar[0]["ServiceConnect"], json!({}));

    // Re-registering keeps the port.
    agent.put_ok(
        "/v1/agent/service/register",
        r#"{"Name":"web","Port":8081,"Connect":{"SidecarService":{}}}"#,
    );
    let again = get(&agent, "/v1/agent/service/web-sidecar-proxy");
    assert_eq!(
        (again["Port"].clone(), again["Proxy"]["LocalServicePort"].clone()),
        (json!(21000), json!(8081))
    );

    agent.put_ok("/v1/agent/service/deregister/web", "");
    let services = get(&agent, "/v1/agent/services");
    assert!(services.get("web").is_none() && services.get("web-sidecar-proxy").is_none(), "{services}");
    assert!(services.get("api-1-sidecar-proxy").is_some());
    assert_eq!(get(&agent, "/v1/catalog/service/web-sidecar-proxy"), json!([]));
}

#[test]
fn proxy_and_gateway_kinds_are_stored_and_validated_with_consuls_messages() {
    let agent = Agent::dev(&[]);
    let cases = [
        (
            r#"{"Name":"p","Kind":"connect-proxy"}"#,
            "2 errors occurred:\n\t* Proxy.DestinationServiceName must be non-empty for Connect proxy services\n\t* Port must be set for a Connect proxy\n\n",
        ),
        (
            r#"{"Name":"g","Kind":"mesh-gateway"}"#,
            "1 error occurred:\n\t* Port must be non-zero for a mesh-gateway\n\n",
        ),
        (
            r#"{"Name":"i","Kind":"ingress-gateway","Connect":{"SidecarService":{}}}"#,
            "1 error occurred:\n\t* A ingress-gateway cannot have a sidecar service defined\n\n",
        ),
        (
            r#"{"Name":"s","Port":1,"Connect":{"SidecarService":{"ID":"x"}}}"#,
            "1 error occurred:\n\t* A SidecarService cannot specify an ID as this is managed by the agent\n\n",
        ),
        (
            r#"{"Name":"p","Kind":"connect-proxy","Port":5,"Proxy":{"DestinationServiceName":"x","Upstreams":[{"DestinationName":"a"}]}}"#,
            "1 error occurred:\n\t* upstream local bind port cannot be zero\n\n",
        ),
        (
            r#"{"Name":"p","Kind":"connect-proxy","Port":5,"Proxy":{"DestinationServiceName":"x","TransparentProxy":{}}}"#,
            "Request decode failed: json: unknown field \"TransparentProxy\"",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(agent.put("/v1/agent/service/register", body), (400, want.to_owned()), "{body}");
    }
    agent.put_ok(
        "/v1/agent/service/register",
        r#"{"Kind":"mesh-gateway","Name":"mesh-gateway","Address":"10.1.2.3","Port":8443,"Proxy":{"Config":{"foo":"bar"}}}"#,
    );
    let gw = get(&agent, "/v1/agent/service/mesh-gateway");
    assert_eq!(gw["Kind"], "mesh-gateway");
    assert_eq!(gw["Proxy"], json!({"Config":{"foo":"bar"},"MeshGateway":{},"Expose":{}}));
    agent.put_ok(
        "/v1/agent/service/register",
        r#"{"Kind":"connect-proxy","Name":"expose-proxy","Port":8443,"Proxy":{"DestinationServiceName":"expose",
            "Expose":{"Checks":true,"Paths":[{"LocalPathPort":8080,"ListenerPort":21500,"Path":"/metrics","Protocol":"http2"}]}}}"#,
    );
    assert_eq!(
        get(&agent, "/v1/agent/service/expose-proxy")["Proxy"]["Expose"],
        json!({"Checks":true,"Paths":[{"ListenerPort":21500,"Path":"/metrics","LocalPathPort":8080,
               "Protocol":"http2","ParsedFromCheck":false}]})
    );
    // The catalog endpoint answers rule violations as Consul's RPC errors (500).
    let (status, text) = agent.put(
        "/v1/catalog/register",
        r#"{"Node":"n1","Address":"1.1.1.1","Service":{"Service":"p","Kind":"connect-proxy","Port":3}}"#,
    );
    assert_eq!(
        (status, text.as_str()),
        (
            500,
            "1 error occurred:\n\t* Proxy.DestinationServiceName must be non-empty for Connect proxy services\n\n"
        )
    );
}

/// Node `foobar` with `web1` (web, passing check) and the unmanaged proxy `web-proxy1` for it
/// (the Go api tests' fixture), and node `n2` with a Connect-native `web` instance.
fn connect_catalog(agent: &Agent) {
    agent.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"foobar","Address":"192.168.10.10","Service":{"ID":"web1","Service":"web","Port":8000},
            "Check":{"CheckID":"service:web1","Name":"web","Status":"passing","ServiceID":"web1"}}"#,
    );
    agent.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"foobar","Address":"192.168.10.10","Service":{"Kind":"connect-proxy","ID":"web-proxy1",
            "Service":"web-proxy","Port":8001,"Proxy":{"DestinationServiceName":"web","DestinationServiceID":"web1",
            "LocalServiceAddress":"127.0.0.2","LocalServicePort":8080,
            "Upstreams":[{"DestinationName":"db","LocalBindPort":9191,"Config":{"connect_timeout_ms":1000}},
                         {"DestinationType":"prepared_query","DestinationName":"geo-cache","LocalBindPort":8181}]}}}"#,
    );
    agent.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"n2","Address":"192.168.10.11","Service":{"ID":"web-native","Service":"web","Port":7000,
            "Connect":{"Native":true}}}"#,
    );
}

#[test]
fn connect_endpoints_list_proxies_and_native_instances() {
    let agent = Agent::dev(&[]);
    connect_catalog(&agent);
    let nodes = get(&agent, "/v1/catalog/connect/web");
    let ids: Vec<&str> = nodes.as_array().unwrap().iter().map(|n| n["ServiceID"].as_str().unwrap()).collect();
    assert_eq!(ids, ["web-proxy1", "web-native"]);
    assert_eq!(nodes[0]["ServicePort"], 8001);
    assert_eq!(
        nodes[0]["ServiceProxy"]["Upstreams"],
        // The catalog keeps an empty type as given and prints the type, datacenter and config
        // of every upstream [live on Consul 1.8.7].
        json!([{"DestinationType":"","DestinationName":"db","Datacenter":"","LocalBindPort":9191,
                "Config":{"connect_timeout_ms":1000},"MeshGateway":{}},
               {"DestinationType":"prepared_query","DestinationName":"geo-cache","Datacenter":"",
                "LocalBindPort":8181,"Config":null,"MeshGateway":{}}])
    );
    assert_eq!(nodes[1]["ServiceConnect"], json!({"Native":true}));
    assert_eq!(get(&agent, "/v1/catalog/connect/web-proxy"), json!([]));
    assert_eq!(get(&agent, "/v1/catalog/service/web-proxy")[0]["ServiceKind"], "connect-proxy");

    let entries = get(&agent, "/v1/health/connect/web");
    assert_eq!(entries.as_array().unwrap().len(), 2);
    assert_eq!(entries[0]["Service"]["Kind"], "connect-proxy");
    assert_eq!(entries[0]["Node"]["Node"], "foobar");
    // A failing check on the proxy drops it from `?passing`.
    agent.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"foobar","Address":"192.168.10.10","SkipNodeUpdate":true,
            "Check":{"CheckID":"proxy-alive","Name":"proxy","Status":"critical","ServiceID":"web-proxy1"}}"#,
    );
    let passing = get(&agent, "/v1/health/connect/web?passing");
    assert_eq!(passing.as_array().unwrap().len(), 1, "{passing}");
    assert_eq!(passing[0]["Service"]["ID"], "web-native");

    let (status, headers, body) = agent.get_full("/v1/health/ingress/web").unwrap();
    assert_eq!((status, body.as_str()), (200, "[]"));
    assert_eq!(headers["x-consul-index"], "1");
    let (status, _, body) = agent.get_full("/v1/catalog/gateway-services/gw").unwrap();
    assert_eq!((status, body.as_str()), (200, "null"));
    assert_eq!(agent.get_full("/v1/catalog/connect/").unwrap().2, "Missing service name");
    assert_eq!(agent.get_full("/v1/catalog/gateway-services/").unwrap().2, "Missing gateway name");
}

#[test]
fn connect_blocking_query_wakes_when_a_proxy_registers() {
    let agent = Agent::dev(&[]);
    connect_catalog(&agent);
    let (_, headers, _) = agent.get_full("/v1/catalog/connect/web").unwrap();
    let index: u64 = headers["x-consul-index"].to_str().unwrap().parse().unwrap();
    let http = agent.http;
    let waiter = std::thread::spawn(move || {
        let url = format!("http://{http}/v1/health/connect/web?index={index}&wait=20s");
        crate::support::block(async {
            crate::support::http_client().get(url).send().await.unwrap().text().await
        })
        .unwrap()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    agent.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"n3","Address":"192.168.10.12","Service":{"Kind":"connect-proxy","ID":"p3","Service":"web-proxy",
            "Port":8002,"Proxy":{"DestinationServiceName":"web"}}}"#,
    );
    let body: Value = serde_json::from_str(&waiter.join().unwrap()).unwrap();
    assert_eq!(body.as_array().unwrap().len(), 3, "{body}");
}

#[test]
fn connect_dns_names_answer_proxies_and_native_instances() {
    let agent = Agent::dev(&[]);
    connect_catalog(&agent);
    for name in ["web.connect.consul.", "web.connect.dc1.consul.", "x.web.connect.consul."] {
        let msg = agent.query(name, RecordType::SRV, Transport::Udp);
        assert_eq!(msg.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(
            srv_targets(&msg),
            [(7000, "n2.node.dc1.consul.".to_owned()), (8001, "foobar.node.dc1.consul.".to_owned())],
            "{name}"
        );
    }
    let a = agent.query("web.connect.consul.", RecordType::A, Transport::Tcp);
    let mut got = rendered(&a.answers);
    got.sort();
    assert_eq!(got, ["web.connect.consul. 0 A 192.168.10.10", "web.connect.consul. 0 A 192.168.10.11"]);
    // The proxy's failing check takes it out of the answer.
    agent.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"foobar","Address":"192.168.10.10","SkipNodeUpdate":true,
            "Check":{"CheckID":"proxy-alive","Name":"proxy","Status":"critical","ServiceID":"web-proxy1"}}"#,
    );
    eventually("the critical proxy leaves the answer", || {
        srv_targets(&agent.query("web.connect.consul.", RecordType::SRV, Transport::Udp)).len() == 1
    });
    for name in
        ["db.connect.consul.", "web.ingress.consul.", "web.connect.dc2.consul.", "web.connect.1.port.consul."]
    {
        let msg = agent.query(name, RecordType::A, Transport::Udp);
        assert_eq!(msg.response_code, ResponseCode::NXDomain, "{name}");
    }
}
