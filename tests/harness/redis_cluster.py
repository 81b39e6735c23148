"""A real Redis Cluster on loopback: six redis-servers (three masters, each with one
replica) made into a cluster by `redis-cli --cluster create`, as an operator would.

`cluster-node-timeout` is 1 s by default, so a killed master's replica takes over
within a few seconds (`wait_promoted` waits for it).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

from tests.harness.ports import free_ports
from tests.harness.redis import RedisServer

NODE_TIMEOUT_MS = 1000


class RedisCluster:
    def __init__(self, nodes: int = 6, node_timeout_ms: int = NODE_TIMEOUT_MS):
        ports = free_ports(2 * nodes)  # each node's, and its cluster bus's
        self.nodes = [
            RedisServer(
                port=ports[2 * i],
                options=(
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(node_timeout_ms),
                    # the bus port, else port + 10000 (over 65535 for ports > 55535)
                    "--cluster-port", str(ports[2 * i + 1]),
                    # a master down stops its own slots only, not the whole cluster
                    "--cluster-require-full-coverage", "no",
                    # a replica's first sync at once (Redis waits 5 s for more replicas)
                    "--repl-diskless-sync-delay", "0",
                )
            )
            for i in range(nodes)
        ]  # fmt: skip

    @property
    def url(self) -> str:
        """SERVICE_REDIS_URL: every node as a start-up node."""
        return ",".join(f"redis://127.0.0.1:{n.port}" for n in self.nodes)

    def cli(self, port: int, *args: str, timeout: float = 30) -> str:
        binary = shutil.which("redis-cli")
        if binary is None:
            raise RuntimeError("redis-cli is not installed (Debian's redis-tools)")
        done = subprocess.run(
            [binary, "-p", str(port), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return done.stdout

    def start(self, timeout: float = 60) -> RedisCluster:
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            self.cli(
                self.nodes[0].port,
                "--cluster", "create", *addresses,
                "--cluster-replicas", "1", "--cluster-yes",
            )  # fmt: skip
            self.wait_ok(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def live(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None]

    def wait_ok(self, timeout: float = 60) -> None:
        """Until every live node says the cluster is ok and sees three masters that
        cover the slots, and every replica is in sync with its master."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(self._ok(n.port) for n in self.live()):
                    return
            except subprocess.SubprocessError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not become ok")
            time.sleep(0.05)

    def _ok(self, port: int) -> bool:
        info = self.cli(port, "cluster", "info")
        if "cluster_state:ok" not in info:
            return False
        replication = self.cli(port, "info", "replication")
        if "role:slave" in replication and "master_link_status:up" not in replication:
            return False  # a replica still syncing (a WAIT would time out)
        masters = self._masters(port)
        return len(masters) == 3 and all(len(row) > 8 for row, _ in masters)

    def table(self, port: int) -> list[list[str]]:
        """CLUSTER NODES as rows: id, address, flags, master id, ..., slot ranges."""
        return [line.split() for line in self.cli(port, "cluster", "nodes").splitlines() if line]

    def _masters(self, port: int) -> list[tuple[list[str], RedisServer]]:
        """As the node on `port` sees them: the live masters not flagged failed, each
        with its CLUSTER NODES row."""
        by_port = {n.port: n for n in self.live()}
        return [
            (row, by_port[_port(row)])
            for row in self.table(port)
            if "master" in row[2] and "fail" not in row[2] and _port(row) in by_port
        ]

    def masters(self) -> list[RedisServer]:
        """The live nodes that are masters now."""
        return [node for _, node in self._masters(self.live()[0].port)]

    def master_of(self, key: str) -> RedisServer:
        """The live master that serves `key`'s slot now."""
        port = self.live()[0].port
        slot = int(self.cli(port, "cluster", "keyslot", key))
        for row, node in self._masters(port):
            for span in row[8:]:
                first, _, last = span.partition("-")
                if first.isdigit() and int(first) <= slot <= int(last or first):
                    return node
        raise LookupError(f"no live master serves slot {slot}")

    def wait_promoted(self, dead: RedisServer, timeout: float = 60) -> None:
        """Until the live nodes have flagged `dead` as failed and one of them serves
        its slots as a master."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.table(self.live()[0].port)
            flagged = any(_port(r) == dead.port and "fail" in r[2] for r in rows)
            if flagged and all(self._ok(n.port) for n in self.live()):
                return
            time.sleep(0.05)
        raise TimeoutError(f"no replica took over from the master on port {dead.port}")

    def kill_master(self, master: RedisServer) -> None:
        """SIGKILL one master (no clean shutdown), as a crashed host would."""
        assert master.process is not None
        master.process.send_signal(signal.SIGKILL)
        master.process.wait(timeout=30)
        master.process = None

    def close(self) -> None:
        for node in self.nodes:
            node.close()


def _port(row: list[str]) -> int:
    """The port of a CLUSTER NODES row (its address is host:port@bus-port)."""
    return int(row[1].split("@")[0].rsplit(":", 1)[1])
