"""Fixtures: a real cairn agent process (server with a data dir) on free ports."""

import os
import signal
import subprocess
import tempfile
import time

import consul
import pytest


class Agent:
    """One `cairn agent` process; its ports come from its own startup lines (port 0)."""

    def __init__(self, data_dir, extra=()):
        self.data_dir = data_dir
        self.extra = list(extra)
        self.proc = None
        self.http = self.dns = None

    def start(self):
        args = [os.environ["CAIRN_BIN"], "agent", "--server", "--bootstrap-expect", "1",
                "--node", "py1", "--data-dir", self.data_dir,
                "--http-port", "0", "--dns-port", "0", "--server-port", "0",
                "--serf-lan-port", "0", "--serf-wan-port", "0", *self.extra]
        self.log = open(os.path.join(self.data_dir, "agent.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        deadline = time.time() + 30
        while self.http is None or self.dns is None:
            line = self.proc.stdout.readline()
            assert line, "agent exited before printing its addresses"
            line = line.strip()
            if line.startswith("HTTP: "):
                self.http = line.split()[1]
            if line.startswith("DNS: "):
                self.dns = line.split()[1]
            assert time.time() < deadline
        host, port = self.http.rsplit(":", 1)
        self.client = consul.Consul(host=host, port=int(port))
        while not self.client.status.leader():
            assert time.time() < deadline, "no leader"
            time.sleep(0.05)
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)
            self.proc.stdout.close()
            self.proc = None
            self.http = self.dns = None
            self.log.close()


@pytest.fixture
def agent():
    with tempfile.TemporaryDirectory(prefix="cairn-py-") as d:
        a = Agent(d).start()
        yield a
        a.stop(signal.SIGKILL)


@pytest.fixture
def acl_agent():
    """An agent with ACLs on and `default_policy = "deny"` (not yet bootstrapped)."""
    with tempfile.TemporaryDirectory(prefix="cairn-py-acl-") as d:
        config = os.path.join(d, "acl.json")
        with open(config, "w") as f:
            f.write('{"acl":{"enabled":true,"default_policy":"deny"}}')
        a = Agent(os.path.join(d, "data"), ["--config-file", config])
        os.makedirs(a.data_dir)
        a.start()
        yield a
        a.stop(signal.SIGKILL)
