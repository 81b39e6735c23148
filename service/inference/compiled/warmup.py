"""When a model's graphs are compiled and warmed up (SERVICE_WARMUP).

all: every graph before the model is served. background: what greedy /predict and
session steps call (functions.GREEDY) before; the rest right after, on a background
thread (background.py). lazy: the rest on first use only. Any graph not compiled when a
request needs it is compiled then, once (functions.Functions.compile).

Warming a graph up runs it at batch sizes 1 and 2: the first run of a graph is
optimised by grappler (~100 ms here) and the first multi-row run costs ~25 ms more;
doing both ahead keeps those stalls out of the first requests.
"""

from __future__ import annotations

import numpy as np

from service.config import Warmup
from service.inference.compiled import background, xla, xla_plan
from service.inference.compiled.functions import GREEDY
from service.inference.compiled.keras_model import KerasCompute
from service.inference.model.interface import Sampling
from service.inference.model.manifest import ManifestError

# The policy of the models loaded from now on: the app sets it from its settings.
# Unset (a library caller, `python -m service check`): every graph, as before the setting.
_policy: Warmup = "all"


def configure(policy: Warmup) -> None:
    global _policy
    _policy = policy


def configured() -> Warmup:
    return _policy


def prepare(compute: KerasCompute, policy: Warmup | None = None) -> None:
    """Compile and warm up what `policy` (default: the configured one) wants before the
    model is served; in `background`, queue the rest for the background thread."""
    policy = policy or _policy
    first = [n for n in compute.graphs() if policy == "all" or n in GREEDY]
    for name in first:
        compile_and_warm(compute, name)
    if policy == "background":
        rest = [n for n in compute.graphs() if n not in first]
        background.queue(compute.spec.name, [_warmer(compute, n) for n in rest])
    prepare_xla(compute, policy)


def prepare_xla(compute: KerasCompute, policy: Warmup) -> None:
    """The XLA buckets (SERVICE_XLA): under `on`, one compiled now to prove XLA can (a
    model it cannot compile is refused: ManifestError); under `all` the planned ones
    compiled now, under `background` queued for the pool (started once the server is
    ready), under `lazy` none ahead. A model XLA cannot compile under `auto` is served by
    its TF graphs (xla.Xla.fail logs why)."""
    compiler = compute.xla
    if compiler is None:
        return
    plan = xla_plan.plan(compute)
    if xla.mode() == "on":
        key, args = plan[0] if plan else xla_plan.probe(compute)
        if not compiler.compile(key, args):
            raise ManifestError(
                f"model {compute.spec.name!r} cannot be compiled by XLA and SERVICE_XLA=on "
                f"requires it ({compiler.failure}); set SERVICE_XLA=auto to serve it as TF "
                "graphs"
            )
    if policy == "all":
        for key, args in plan:
            if not compiler.compile(key, args):
                break
    elif policy == "background":
        for key, args in plan:
            compiler.want(key, args, xla.PLANNED)


def compile_and_warm(compute: KerasCompute, name: str) -> None:
    """Unless a request compiled it first (and so ran it already)."""
    if compute.compile(name):
        with compute.graphs_only():
            for batch in (1, 2):
                exercise(compute, name, batch)


def _warmer(compute: KerasCompute, name: str) -> background.Work:
    def work() -> None:
        compile_and_warm(compute, name)

    return work


def exercise(compute: KerasCompute, name: str, batch: int) -> None:
    """Run graph `name` once at `batch` rows, on placeholder inputs."""
    kind, probs = name.removesuffix("_probs"), name.endswith("_probs")
    kept, kind = kind.endswith("_kv"), kind.removesuffix("_kv")
    tokens = np.zeros(batch, np.int32)
    limits = np.ones(batch, np.int32)
    alpha = np.zeros(batch, np.float32)
    sources = np.zeros((batch, compute.spec.manifest.source.length or 1), np.int32)
    sampling = Sampling(
        np.ones(batch, np.float32),
        np.zeros(batch, np.int32),
        np.ones(batch, np.float32),
        np.zeros(batch, np.uint64),
        np.zeros(batch, np.int32),
    )
    if kind in ("cache_build", "cache_start", "cached_step"):  # every loop calls them: warm
        return
    if kind == "encode":
        compute.encode(sources)
        return
    if kind in ("decode", "sample_decode"):
        compute.decode(sources, limits, probs, sampling if kind == "sample_decode" else None)
        return
    if kind == "beam_decode":
        compute.beam_decode(sources, limits, 2, alpha)
        return
    states = compute.encode(sources) if compute.seq2seq else compute.spec.zero_states(batch)
    if kept:  # the "_kv" graphs: states extended by the key/value caches
        states = compute.kv_states(states)
    if kind == "step":
        compute.step(tokens, states)
    elif kind in ("generate", "sample"):
        compute.generate(tokens, states, limits, probs, sampling if kind == "sample" else None)
    elif kind == "run":
        compute.run(tokens[:, None], states, probs)
    elif kind == "beam":
        compute.beam(tokens, states, limits, 2, alpha)
    else:
        raise ValueError(f"no warm-up for graph {name!r}")
