#!/usr/bin/env python3
"""seed.py SERVER ADDR: writes bench/0..999 (100-byte values) so every GET of the benchmark
finds its key; SERVER is cairn, consul (PUT /v1/kv) or etcd (POST /v3/kv/put). KV_TOKEN, when
set, goes in X-Consul-Token (run --acl)."""

import base64
import http.client
import json
import os
import sys

server, addr = sys.argv[1], sys.argv[2]
host, port = addr.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=30)
value = b"x" * 100
for i in range(1000):
    key = f"bench/{i}"
    if server == "etcd":
        body = json.dumps({"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(value).decode()})
        conn.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
    else:
        token = os.environ.get("KV_TOKEN")
        conn.request("PUT", f"/v1/kv/{key}", value, {"X-Consul-Token": token} if token else {})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 200:
        raise SystemExit(f"seeding {server}: {key} -> {resp.status}")
