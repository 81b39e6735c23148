"""Drive a running compose stack through its load balancer (used by container-test)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import Counter

import httpx
import numpy as np

FIRST, SECOND = ([3, 0, 1, 2], [0, 1, 2, 3]), ([4, 0, 1, 2], [0, 1, 2, 4])


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"FAILED: {what}")
    print(f"ok: {what}", flush=True)


class Client:
    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, timeout=30)
        self.upstreams: Counter[str] = Counter()

    def call(self, method: str, path: str, body: object = None) -> httpx.Response:
        r = self.http.request(method, path, json=body)
        self.upstreams[r.headers.get("x-upstream", "?")] += 1
        return r


def round_of(client: Client, sid: str, start_steps: int) -> None:
    """The two memory sequences, one value per request, with a reset between them."""
    for inputs, expected in (FIRST, SECOND):
        got = []
        for i, value in enumerate(inputs):
            r = client.call("POST", f"/v1/sessions/{sid}/step", {"inputs": [value]})
            check_status(r, 200)
            got.append(r.json()["outputs"][0])
            if r.json()["steps"] != start_steps + i + 1:
                sys.exit(
                    f"FAILED: session {sid} steps {r.json()['steps']} != {start_steps + i + 1}"
                )
        if got != expected:
            sys.exit(f"FAILED: session {sid} answered {got} for {inputs}, expected {expected}")
        check_status(client.call("POST", f"/v1/sessions/{sid}/reset"), 200)
        start_steps = 0


def check_status(r: httpx.Response, status: int) -> None:
    if r.status_code != status:
        sys.exit(f"FAILED: {r.request.method} {r.request.url} -> {r.status_code} {r.text}")


def api_containers(project: str) -> list[str]:
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--filter",
            "label=com.docker.compose.service=api",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    client = Client(args.url)

    ready = client.call("GET", "/readyz")
    check(
        ready.status_code == 200 and ready.json()["status"] == "ready",
        f"/readyz through the load balancer: {ready.json()}",
    )
    r = client.call("POST", "/predict", {"inputs": [[20, 36, 40, 10, 34, 28]]})
    check(r.status_code == 200 and r.json()["outputs"] == [[40, 36, 20]], "/predict example")
    pages = {path: client.call("GET", path) for path in ("/docs", "/redoc")}
    assets = [
        client.call("GET", f"/docs/assets/{name}")
        for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")
    ]
    check(
        all(r.status_code == 200 for r in [*pages.values(), *assets])
        and not any("https://" in r.text for r in pages.values()),
        "/docs and /redoc, and their JavaScript and CSS, are served by the image itself",
    )
    sources = np.random.default_rng(5).integers(1, 51, size=(64, 6)).tolist()
    answers = [
        client.call("POST", "/v1/models/reverse/predict", {"inputs": [s]}).json()["outputs"][0]
        for s in sources * 2
    ]
    check(answers[:64] == answers[64:], "the same source gets the same answer on every replica")
    correct = sum(a == s[:3][::-1] for a, s in zip(answers, sources * 2, strict=True))
    check(correct == 128, f"{correct}/128 /predict answers are the reversed prefix")

    ids = []
    for _ in range(args.sessions):
        r = client.call("POST", "/v1/sessions", {"model": "memory"})
        check_status(r, 201)
        ids.append(r.json()["session_id"])
    for _ in range(args.rounds):
        for sid in ids:
            round_of(client, sid, 0)
    served = {k: v for k, v in client.upstreams.items() if k != "?"}
    check(len(served) >= 2, f"requests landed on several replicas: {served}")
    check(
        all(client.call("GET", f"/v1/sessions/{sid}").json()["steps"] == 0 for sid in ids),
        f"{args.sessions} sessions x {args.rounds} rounds answered 0,1,2,3 / 0,1,2,4",
    )

    containers = api_containers(args.project)
    check(len(containers) >= 2, f"{len(containers)} api containers running")
    read_only = subprocess.run(
        ["docker", "inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", *containers],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    check(
        read_only == ["true"] * len(containers),
        "every api container served all of the above with a read-only root filesystem",
    )
    for sid in ids:  # leave every session mid-sequence before the kill
        check_status(client.call("POST", f"/v1/sessions/{sid}/step", {"inputs": [3]}), 200)
    subprocess.run(["docker", "kill", containers[0]], check=True, capture_output=True)
    print(f"killed api container {containers[0][:12]}", flush=True)
    time.sleep(1)
    client.upstreams.clear()
    for sid in ids:  # continue each sequence where it stopped
        got = []
        for i, value in enumerate([0, 1, 2]):
            r = client.call("POST", f"/v1/sessions/{sid}/step", {"inputs": [value]})
            check_status(r, 200)
            got.append(r.json()["outputs"][0])
            if r.json()["steps"] != i + 2:
                sys.exit(f"FAILED: after the kill, session {sid} steps {r.json()['steps']}")
        if got != [1, 2, 3]:
            sys.exit(f"FAILED: after the kill, session {sid} answered {got}, expected [1, 2, 3]")
        check_status(client.call("POST", f"/v1/sessions/{sid}/reset"), 200)
        round_of(client, sid, 0)
    check(
        True,
        f"all {args.sessions} sessions continued after the kill "
        f"(served by {dict(client.upstreams)})",
    )
    r = client.call("POST", "/predict", {"inputs": [[20, 36, 40, 10, 34, 28]]})
    check(r.status_code == 200 and r.json()["outputs"] == [[40, 36, 20]], "/predict after kill")


if __name__ == "__main__":
    main()
