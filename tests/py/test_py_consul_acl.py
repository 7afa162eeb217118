"""py-consul with ACL tokens against cairn in default-deny mode: the management token from
bootstrap makes a policy and a token with py-consul's own ACL calls; KV with the token is
allowed, without it (or outside its rules) py-consul raises ACLPermissionDenied (403)."""

import consul
import pytest


def test_kv_with_a_token_is_allowed_and_refused_without(acl_agent):
    c = acl_agent.client
    mgmt = c.acl.bootstrap()["SecretID"]
    policy = c.acl.policy.create("app-kv", token=mgmt, rules={"key_prefix": {"app/": {"policy": "write"}}})
    assert policy["Name"] == "app-kv"
    secret = c.acl.token.create(token=mgmt, policies_name=["app-kv"], description="app")["SecretID"]

    # Per call, and as the client's own token (X-Consul-Token either way).
    assert c.kv.put("app/config", "v1", token=secret) is True
    assert c.kv.get("app/config", token=secret)[1]["Value"] == b"v1"
    app = consul.Consul(host=c.http.host, port=c.http.port, token=secret)
    assert app.kv.put("app/other", "v2") is True
    _, keys = app.kv.get("app/", keys=True)
    assert keys == ["app/config", "app/other"]
    assert app.acl.token.read_self()["Description"] == "app"

    with pytest.raises(consul.ACLPermissionDenied, match="Permission denied"):
        c.kv.put("app/config", "anonymous")
    with pytest.raises(consul.ACLPermissionDenied, match="Permission denied"):
        c.kv.get("app/config")
    with pytest.raises(consul.ACLPermissionDenied, match="Permission denied"):
        app.kv.put("other/key", "outside the rules")
    with pytest.raises(consul.ACLPermissionDenied, match="ACL not found"):
        c.kv.get("app/config", token="00000000-1111-2222-3333-444444444444")
    assert c.kv.get("app/config", token=mgmt)[1]["Value"] == b"v1", "the refused writes changed nothing"
