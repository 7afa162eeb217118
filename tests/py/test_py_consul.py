"""py-consul (criteo/py-consul) against cairn: what a Python service owner does day to day."""

import signal
import threading
import time

import dns.message
import dns.query
import dns.rdatatype


def srv(agent, name):
    """SRV answers for `name` as (port, target) pairs, via dnspython over UDP."""
    host, port = agent.dns.rsplit(":", 1)
    q = dns.message.make_query(name, dns.rdatatype.SRV)
    r = dns.query.udp(q, host, port=int(port), timeout=5)
    return sorted((rr.port, rr.target.to_text()) for rrset in r.answer for rr in rrset)


def wait_for(what, f, timeout=10):
    deadline = time.time() + timeout
    while not f():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_register_and_read_catalog_and_health(agent):
    c = agent.client
    c.agent.service.register("web", service_id="web-1", port=8080, tags=["v1"],
                             check={"TTL": "30s", "CheckID": "web-ttl"})
    assert "web-1" in c.agent.services()
    index, services = c.catalog.services()
    assert services["web"] == ["v1"] and "consul" in services
    assert int(index) > 0
    _, nodes = c.catalog.service("web")
    assert [(n["ServiceID"], n["ServicePort"], n["Node"]) for n in nodes] == [("web-1", 8080, "py1")]
    _, health = c.health.service("web")
    assert health[0]["Service"]["ID"] == "web-1"
    assert {ch["CheckID"] for ch in health[0]["Checks"]} == {"serfHealth", "web-ttl"}
    _, passing = c.health.service("web", passing=True)
    assert passing == []  # TTL checks start critical, as in Consul
    _, checks = c.health.checks("web")
    assert checks[0]["Status"] == "critical"
    _, node = c.catalog.node("py1")
    assert "web-1" in node["Services"]
    assert c.status.leader()
    assert len(c.status.peers()) == 1
    assert c.catalog.datacenters() == ["dc1"]


def test_ttl_pass_and_fail_move_the_instance_in_and_out_of_dns(agent):
    c = agent.client
    c.agent.service.register("api", service_id="api-1", port=9000, check={"TTL": "30s", "CheckID": "api-ttl"})
    assert srv(agent, "api.service.consul.") == []
    c.agent.check.ttl_pass("api-ttl", notes="ok")
    wait_for("passing instance in DNS", lambda: srv(agent, "api.service.consul.") == [(9000, "py1.node.dc1.consul.")])
    c.agent.check.ttl_fail("api-ttl", notes="broken")
    wait_for("critical instance out of DNS", lambda: srv(agent, "api.service.consul.") == [])
    _, state = c.health.state("critical")
    assert any(ch["CheckID"] == "api-ttl" and ch["Output"] == "broken" for ch in state)
    c.agent.check.ttl_pass("api-ttl")
    wait_for("instance back in DNS", lambda: len(srv(agent, "api.service.consul.")) == 1)
    c.agent.service.deregister("api-1")
    wait_for("deregistered", lambda: srv(agent, "api.service.consul.") == [])


def test_blocking_query_is_woken_by_a_change(agent):
    c = agent.client
    c.agent.service.register("queue", service_id="queue-1", port=5672)
    index, _ = c.health.service("queue")
    result = {}

    def watch():
        start = time.time()
        result["index"], result["nodes"] = c.health.service("queue", index=index, wait="30s")
        result["elapsed"] = time.time() - start

    t = threading.Thread(target=watch)
    t.start()
    time.sleep(0.5)
    c.agent.service.register("queue", service_id="queue-2", port=5673)
    t.join(timeout=40)
    assert int(result["index"]) > int(index)
    assert sorted(n["Service"]["ID"] for n in result["nodes"]) == ["queue-1", "queue-2"]
    assert result["elapsed"] < 20


def test_restart_keeps_registrations(agent):
    c = agent.client
    c.catalog.register("ext1", "192.0.2.10", service={"Service": "legacy", "Port": 25})
    c.agent.service.register("kept", service_id="kept-1", port=7000)
    agent.stop(signal.SIGKILL)
    agent.start()
    c = agent.client
    _, nodes = c.catalog.service("legacy")
    assert [(n["Node"], n["Address"]) for n in nodes] == [("ext1", "192.0.2.10")]
    assert "kept-1" in c.agent.services()
    assert srv(agent, "kept.service.consul.") == [(7000, "py1.node.dc1.consul.")]


def test_http_check_and_maintenance_mode(agent):
    """An HTTP check built with consul.Check.http follows a real local server; py-consul's
    maintenance calls take the instance out of DNS and back."""
    import http.server

    import consul

    healthy = {"ok": True}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if healthy["ok"] else 503)
            self.end_headers()
            self.wfile.write(b"hi")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        c = agent.client
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        c.agent.service.register("www", service_id="www-1", port=7000,
                                 check=consul.Check.http(url, interval="1s", timeout="500ms"))
        in_dns = lambda: srv(agent, "www.service.consul.") == [(7000, "py1.node.dc1.consul.")]
        wait_for("HTTP check passing", in_dns)
        healthy["ok"] = False
        wait_for("HTTP check critical", lambda: srv(agent, "www.service.consul.") == [])
        healthy["ok"] = True
        wait_for("HTTP check passing again", in_dns)

        assert c.agent.service.maintenance("www-1", True, reason="deploy")
        wait_for("service maintenance", lambda: srv(agent, "www.service.consul.") == [])
        checks = c.agent.checks()
        assert checks["_service_maintenance:www-1"]["Notes"] == "deploy"
        assert c.agent.service.maintenance("www-1", False)
        wait_for("service maintenance off", in_dns)
        assert c.agent.maintenance(True)
        wait_for("node maintenance", lambda: srv(agent, "www.service.consul.") == [])
        assert c.agent.maintenance(False)
        wait_for("node maintenance off", in_dns)
    finally:
        server.shutdown()
