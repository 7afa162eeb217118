"""py-consul against cairn's KV store, sessions and transactions (spec §4.8-4.10), and a
Patroni-style leader election: three processes contend for one lock through sessions."""

import base64
import multiprocessing
import signal
import threading
import time

import consul
import pytest


def test_kv_put_get_flags_recurse_keys_delete(agent):
    c = agent.client
    assert c.kv.put("app/config/a", "1", flags=7) is True
    assert c.kv.put("app/config/b", b"\x00\xffbin") is True
    assert c.kv.put("app/other", "x") is True
    index, item = c.kv.get("app/config/a")
    assert (item["Key"], item["Value"], item["Flags"], item["LockIndex"]) == ("app/config/a", b"1", 7, 0)
    assert int(index) == item["ModifyIndex"]
    assert c.kv.get("app/config/b")[1]["Value"] == b"\x00\xffbin"
    _, items = c.kv.get("app/", recurse=True)
    assert [i["Key"] for i in items] == ["app/config/a", "app/config/b", "app/other"]
    _, keys = c.kv.get("app/", keys=True, separator="/")
    assert keys == ["app/config/", "app/other"]
    assert c.kv.get("app/missing") == (c.kv.get("app/missing")[0], None)
    assert c.kv.delete("app/config/", recurse=True) is True
    assert c.kv.get("app/config/", recurse=True)[1] is None
    assert c.kv.get("app/other")[1]["Value"] == b"x"


def test_kv_cas_and_delete_cas(agent):
    c = agent.client
    assert c.kv.put("cas/k", "v1", cas=0) is True
    assert c.kv.put("cas/k", "again", cas=0) is False
    _, item = c.kv.get("cas/k")
    assert c.kv.put("cas/k", "v2", cas=item["ModifyIndex"]) is True
    assert c.kv.put("cas/k", "v3", cas=item["ModifyIndex"]) is False
    _, item = c.kv.get("cas/k")
    assert item["Value"] == b"v2"
    assert c.kv.delete("cas/k", cas=item["ModifyIndex"] + 100) is False
    assert c.kv.delete("cas/k", cas=item["ModifyIndex"]) is True
    assert c.kv.get("cas/k")[1] is None


def test_kv_blocking_get_wakes_on_write_and_on_delete(agent):
    c = agent.client
    c.kv.put("watch/k", "v1")
    index, _ = c.kv.get("watch/", recurse=True)
    got = {}

    def watch():
        got["r"] = c.kv.get("watch/", recurse=True, index=index, wait="10s")

    t = threading.Thread(target=watch)
    t.start()
    time.sleep(0.3)
    c.kv.put("unrelated/k", "x")  # another prefix: the watcher keeps waiting
    time.sleep(0.3)
    assert t.is_alive()
    c.kv.put("watch/k", "v2")
    t.join(10)
    new_index, items = got["r"]
    assert int(new_index) > int(index) and items[0]["Value"] == b"v2"

    def watch_delete():
        got["d"] = c.kv.get("watch/", recurse=True, index=new_index, wait="10s")

    t = threading.Thread(target=watch_delete)
    t.start()
    time.sleep(0.3)
    c.kv.delete("watch/k")
    t.join(10)
    assert int(got["d"][0]) > int(new_index) and got["d"][1] is None


def test_session_lifecycle_and_locks(agent):
    c = agent.client
    sid = c.session.create(name="leader", ttl=30, lock_delay=0)
    _, info = c.session.info(sid)
    assert (info["ID"], info["Name"], info["Node"], info["Behavior"], info["TTL"]) == (sid, "leader", "py1", "release", "30s")
    assert info["NodeChecks"] == ["serfHealth"] and info["LockDelay"] == 0
    assert sid in [s["ID"] for s in c.session.list()[1]]
    assert sid in [s["ID"] for s in c.session.node("py1")[1]]
    assert c.session.renew(sid)["ID"] == sid

    other = c.session.create(lock_delay=0)
    assert c.kv.put("service/leader", "me", acquire=sid) is True
    assert c.kv.put("service/leader", "me", acquire=sid) is True  # the holder may re-acquire
    assert c.kv.put("service/leader", "them", acquire=other) is False
    _, item = c.kv.get("service/leader")
    assert (item["Session"], item["LockIndex"], item["Value"]) == (sid, 1, b"me")
    assert c.kv.put("service/leader", "them", release=other) is False
    assert c.kv.put("service/leader", "bye", release=sid) is True
    _, item = c.kv.get("service/leader")
    assert "Session" not in item and item["LockIndex"] == 1
    assert c.kv.put("service/leader", "them", acquire=other) is True
    assert c.kv.get("service/leader")[1]["LockIndex"] == 2
    assert c.session.destroy(other) is True
    assert "Session" not in c.kv.get("service/leader")[1]
    assert c.session.info(other)[1] is None
    assert c.session.destroy(other) is True  # idempotent


def test_session_behavior_delete_and_validation(agent):
    c = agent.client
    sid = c.session.create(behavior="delete", lock_delay=0)
    assert c.kv.put("ephemeral/k", "v", acquire=sid) is True
    c.session.destroy(sid)
    assert c.kv.get("ephemeral/k")[1] is None
    with pytest.raises(consul.ConsulException):
        c.session.create(checks=["no-such-check"])
    with pytest.raises(consul.ConsulException):
        c.session.create(node="no-such-node")
    with pytest.raises(consul.ConsulException):
        c.kv.put("k", "v", acquire="00000000-0000-0000-0000-000000000000")


def test_session_bound_to_a_check_dies_when_it_goes_critical(agent):
    c = agent.client
    c.agent.check.register("guard", check=consul.Check.ttl("60s"), check_id="guard")
    c.agent.check.ttl_pass("guard")
    sid = c.session.create(checks=["serfHealth", "guard"], lock_delay=0)
    assert c.kv.put("guarded", "v", acquire=sid) is True
    c.agent.check.ttl_fail("guard")
    assert c.session.info(sid)[1] is None
    assert "Session" not in c.kv.get("guarded")[1]


def test_txn_commits_all_or_nothing(agent):
    c = agent.client
    b64 = lambda s: base64.b64encode(s).decode()
    r = c.txn.put([
        {"KV": {"Verb": "set", "Key": "txn/a", "Value": b64(b"1")}},
        {"KV": {"Verb": "set", "Key": "txn/b", "Value": b64(b"2"), "Flags": 3}},
        {"KV": {"Verb": "get-tree", "Key": "txn/"}},
    ])
    assert r["Errors"] is None
    assert [x["KV"]["Key"] for x in r["Results"]] == ["txn/a", "txn/b", "txn/a", "txn/b"]
    assert base64.b64decode(r["Results"][3]["KV"]["Value"]) == b"2"
    index = r["Results"][0]["KV"]["ModifyIndex"]
    with pytest.raises(consul.ConsulException):
        c.txn.put([
            {"KV": {"Verb": "set", "Key": "txn/c", "Value": b64(b"3")}},
            {"KV": {"Verb": "check-index", "Key": "txn/a", "Index": index + 100}},
        ])
    assert c.kv.get("txn/c")[1] is None
    r = c.txn.put([
        {"KV": {"Verb": "check-index", "Key": "txn/a", "Index": index}},
        {"KV": {"Verb": "delete-cas", "Key": "txn/a", "Index": index}},
        {"KV": {"Verb": "check-not-exists", "Key": "txn/zzz"}},
        {"Node": {"Verb": "get", "Node": {"Node": "py1"}}},
    ])
    assert r["Errors"] is None and r["Results"][-1]["Node"]["Node"] == "py1"
    assert c.kv.get("txn/a")[1] is None


def test_kv_and_sessions_survive_restart(agent):
    c = agent.client
    sid = c.session.create(lock_delay=0)
    c.kv.put("durable/k", "v", acquire=sid)
    agent.stop(signal.SIGTERM)
    agent.start()
    c = agent.client
    _, item = c.kv.get("durable/k")
    assert (item["Value"], item["Session"]) == (b"v", sid)
    assert c.session.info(sid)[1]["ID"] == sid


def test_session_ttl_expiry_releases_the_lock(agent):
    """TTL 10 s: the leader invalidates it after 10-20 s (Consul's TTL x 2 grace)."""
    c = agent.client
    sid = c.session.create(ttl=10, lock_delay=0)
    assert c.kv.put("ttl/lock", "v", acquire=sid) is True
    time.sleep(5)
    c.session.renew(sid)
    started = time.time()
    deadline = started + 30
    while c.session.info(sid)[1] is not None:
        assert time.time() < deadline, "session did not expire"
        time.sleep(0.25)
    assert time.time() - started >= 10, "expired before its TTL"
    assert "Session" not in c.kv.get("ttl/lock")[1]


def test_cas_on_modify_index_fences_a_stale_holder(agent):
    c = agent.client
    old = c.session.create(lock_delay=1)
    assert c.kv.put("fence/leader", "old", acquire=old) is True
    stale_index = c.kv.get("fence/leader")[1]["ModifyIndex"]
    c.session.destroy(old)  # e.g. its node failed: the lock goes, with lock-delay
    new = c.session.create(lock_delay=0)
    assert c.kv.put("fence/leader", "new", acquire=new) is False  # inside lock-delay
    time.sleep(1.1)
    assert c.kv.put("fence/leader", "new", acquire=new) is True
    # The old holder still believes it leads; its write with the index it saw is refused.
    assert c.kv.put("fence/leader", "old-write", cas=stale_index) is False
    assert c.kv.get("fence/leader")[1]["Value"] == b"new"


LOCK_DELAY = 1.0


def contender(http, name, rounds, events):
    """Acquire the lock `rounds` times; hold it briefly, then give it up by release or by
    destroying the session (which starts its lock-delay)."""
    host, port = http.rsplit(":", 1)
    c = consul.Consul(host=host, port=int(port))
    for r in range(rounds):
        sid = c.session.create(name=name, lock_delay=int(LOCK_DELAY))
        while not c.kv.put("election/leader", name, acquire=sid):
            time.sleep(0.02)
        events.put(("acquired", name, time.time(), c.kv.get("election/leader")[1]["LockIndex"]))
        time.sleep(0.1)
        by_destroy = r % 2 == 0
        events.put(("releasing", name, time.time(), by_destroy))
        if by_destroy:
            c.session.destroy(sid)
        else:
            assert c.kv.put("election/leader", name, release=sid)
            c.session.destroy(sid)
        events.put(("released", name, time.time(), by_destroy))


def test_three_processes_contend_for_one_lock(agent):
    events = multiprocessing.Queue()
    rounds = 3
    procs = [multiprocessing.Process(target=contender, args=(agent.http, f"p{i}", rounds, events)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    log = []
    while not events.empty():
        log.append(events.get())
    log.sort(key=lambda e: e[2])
    acquired = [e for e in log if e[0] == "acquired"]
    assert len(acquired) == 3 * rounds
    # Mutual exclusion: a holder announces it gives the lock up before it does, so between two
    # acquisitions there is always the previous holder's "releasing".
    holder = None
    given_up = None
    lock_indexes = []
    for kind, name, t, extra in log:
        if kind == "acquired":
            assert holder is None, f"{name} acquired while {holder} held the lock"
            holder = name
            lock_indexes.append(extra)
            if given_up and given_up[1]:
                # Given up by destroying the session: the lock-delay runs from the destroy
                # (which happened after "releasing"), so nobody acquired within it.
                assert t - given_up[0] >= LOCK_DELAY - 0.01, "lock-delay not respected"
        elif kind == "releasing":
            assert holder == name
            holder = None
            given_up = (t, extra)
    assert lock_indexes == sorted(lock_indexes) and len(set(lock_indexes)) == len(lock_indexes)
