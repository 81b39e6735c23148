"""The one harness of the tests and the benchmarks (`bench/` imports it too).

- `ports`: `free_port()`;
- `server`: a server process (`python -m service serve`, or any module that serves the
  app, such as the fakes' `python -m tests.harness.fake_server`) with its log in a file,
  `wait_ready` on `/readyz`, and `running(...)`, a ready server stopped on exit;
- `redis`: a redis-server of our own on a free port in a temporary directory;
- `redis_cluster`: six of them made into a Redis Cluster (three masters, three replicas);
- `replicas`: server processes sharing one Redis, started together;
- `threaded`: the app served by uvicorn in a thread of the test process (fakes only);
- `fake_server`: the server process on the unit tests' numpy models (no TensorFlow);
- `early`: servers and jobs started in the background once the selected tests are
  known, in the order the tests will use them;
- `jobs`: a subprocess (a model build, a training run) whose result a test reads later;
- `http`: `HTTP`, one client for the tests' one-off calls (`httpx.post` builds one per call);
- `zygote`: the suite's server and job processes forked from one that has imported
  TensorFlow and the service once (the benchmarks start theirs from scratch).
"""

from tests.harness.ports import free_port
from tests.harness.redis import RedisServer
from tests.harness.replicas import Replica, redis_env, replicas
from tests.harness.server import (
    FAKES,
    ROOT,
    SERVE,
    SHIPPED,
    STORE,
    Server,
    running,
    start_server,
    wait_ready,
)

__all__ = [
    "FAKES",
    "ROOT",
    "SERVE",
    "SHIPPED",
    "STORE",
    "RedisServer",
    "Replica",
    "Server",
    "free_port",
    "redis_env",
    "replicas",
    "running",
    "start_server",
    "wait_ready",
]
