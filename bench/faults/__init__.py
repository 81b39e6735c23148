"""Faults: Redis stopped and started again (or a Redis Cluster master killed), then a
replica killed, under mixed load.

python -m bench faults [--outage shutdown|pause] [--outage-seconds 5] [--connections 64]
python -m bench faults --cluster [--wait-replicas 1]

One redis-server (append-only file, fsync on every write) and two replicas
(`python -m service serve`, Redis session backend); 64 workers, each with a keep-alive
connection to both replicas, choosing one at random per request (no load balancer). The mix:

- predict (30%): must answer 200 in every phase, Redis or not (it needs no Redis);
- reverse sessions (10%): create, generate (checked against the unloaded predict answer),
  delete; not retried, they only add load;
- tracked memory sessions (60%): every change (step, or generate once it has an output to
  feed back) carries a fresh `Idempotency-Key`; a change without a 2xx (503, 409, a
  transport failure) is sent again with the same key and body, to the other replica after
  a transport failure, with exponential backoff (50 ms .. 1 s) within --budget seconds,
  until it is acknowledged. The worker records what was acknowledged: inputs in order
  (for a generate, the fed-back values: the previous output, then its own outputs) and
  outputs. Sessions are kept (not deleted) until the check at the end.

Phases: warm-up; Redis stopped (`shutdown`: SIGTERM, Redis's clean shutdown, then started
again with the same port and directory: an honest restart that keeps its data only
because of its persistence; `pause`: SIGSTOP, then SIGCONT: a hung Redis whose buffered
commands run after it wakes) for --outage-seconds; recovery (until each replica has served
a session call again, without restarting anything); steady; one replica SIGKILLed; more
load on the survivor; drain (pending retries finish). Then every tracked session is read
on the survivor: `steps` must equal the acknowledged count (fewer: lost; more: applied
twice), and a fresh session fed the acknowledged inputs in one request must give the
acknowledged outputs and the same state (within 1e-5). Exit status 1 if any rule fails.

`--cluster`: the sessions on a real 6-node Redis Cluster (three masters, one replica each,
`cluster-node-timeout 1000`, `cluster-require-full-coverage no`) with
SERVICE_REDIS_WAIT_REPLICAS=--wait-replicas; the outage is one master SIGKILLed: its
sessions answer 503 (the others 2xx) until its replica is promoted and, with
--wait-replicas 1, until the node, started again --outage-seconds after the kill, follows
the new master as its replica. The same check then says whether anything acknowledged
was lost.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from bench.faults.drive import drive
from bench.faults.outages import MasterKill, RedisOutage
from bench.faults.phases import FAULT_STAGES
from service.progress import Stages, bars
from tests.harness import RedisServer, replicas
from tests.harness.redis_cluster import RedisCluster


def run(args: argparse.Namespace) -> int:
    import uvloop

    logs = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    env = {
        "SERVICE_LOG_LEVEL": "warning",
        "SERVICE_ACCESS_LOG": "false",
        "SERVICE_DEFAULT_MODEL": "reverse",
        "SERVICE_WARMUP": "all",  # nothing compiles during the measurement
    }
    outage: RedisOutage | MasterKill
    if args.cluster:
        cluster = RedisCluster().start()
        outage, nodes = MasterKill(cluster), cluster.nodes
        env |= {
            "SERVICE_SESSION_BACKEND": "redis-cluster",
            "SERVICE_REDIS_URL": cluster.url,
            "SERVICE_REDIS_WAIT_REPLICAS": str(args.wait_replicas),
        }
    else:
        redis = RedisServer(persistent=True).start()
        outage, nodes = RedisOutage(redis, args.outage), [redis]
        env |= {"SERVICE_SESSION_BACKEND": "redis", "SERVICE_REDIS_URL": redis.url}
    result = 1
    try:
        with bars() as progress:
            stages = Stages(progress, f"faults ({outage.name})", FAULT_STAGES)
            stages.start("starting 2 replicas")
            # started at once (their TensorFlow loads overlap); stopped whatever happens
            with replicas(env, 2, logs, timeout=240) as group:
                result = uvloop.run(drive(outage, group, args, stages))
    finally:
        for i, node in enumerate(nodes):
            if node.log.exists():
                shutil.copy(node.log, logs / f"redis-{i}.log")
            node.close()
    if result == 0:
        shutil.rmtree(logs, ignore_errors=True)
    else:
        print(f"replica and redis logs: {logs}")
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--outage",
        choices=("shutdown", "pause"),
        default="shutdown",
        help="shutdown: SIGTERM then a new redis-server on the same port and data "
        "(append-only, fsync always); pause: SIGSTOP then SIGCONT",
    )
    parser.add_argument("--outage-seconds", type=float, default=5.0)
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="sessions on a 6-node Redis Cluster; the outage: one master SIGKILLed",
    )
    parser.add_argument(
        "--wait-replicas",
        type=int,
        default=1,
        help="with --cluster: SERVICE_REDIS_WAIT_REPLICAS (1: nothing acknowledged is lost)",
    )
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--steady", type=float, default=10.0, help="after recovery")
    parser.add_argument("--after-kill", type=float, default=10.0)
    parser.add_argument("--budget", type=float, default=60.0, help="retry budget per change")
