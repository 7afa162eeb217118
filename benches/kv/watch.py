#!/usr/bin/env python3
"""watch.py ADDR N: hold N blocking queries on a KV prefix, write one key, time until all return.

Prints "N <seconds to wake all> <agent RSS growth per watcher in bytes>". The agent's pid is
read from $PID (for RSS); raw HTTP/1.1 over asyncio, one connection per watcher."""

import asyncio
import os
import resource
import sys
import time

HOST, PORT = sys.argv[1].rsplit(":", 1)
N = int(sys.argv[2])


def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


async def request(method, path, body=b""):
    r, w = await asyncio.open_connection(HOST, int(PORT))
    w.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    w.close()
    return head


async def index():
    head = await request("PUT", "/v1/kv/watch/seed", b"v")
    head = await request("GET", "/v1/kv/watch/?recurse")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"x-consul-index:"):
            return int(line.split(b":")[1])
    raise SystemExit("no X-Consul-Index")


async def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, N + 1024)), hard))
    idx = await index()
    pid = int(os.environ.get("PID", "0"))
    before = rss(pid)
    conns = []
    for _ in range(N):
        conns.append(await asyncio.open_connection(HOST, int(PORT)))
    for r, w in conns:
        w.write(f"GET /v1/kv/watch/?recurse&index={idx}&wait=60s HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await asyncio.gather(*(w.drain() for _, w in conns))
    await asyncio.sleep(1.0)  # let every query park
    held = rss(pid)
    start = time.monotonic()
    await request("PUT", "/v1/kv/watch/k", b"wake")
    await asyncio.gather(*(r.readuntil(b"\r\n\r\n") for r, _ in conns))
    took = time.monotonic() - start
    for _, w in conns:
        w.close()
    per = (held - before) / N if pid and N else 0
    print(f"{N} {took:.3f} {per:.0f}")


asyncio.run(main())
