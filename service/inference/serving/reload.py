"""Follow the model store while serving.

Each reload scans the store and compares it with what is served. New version
directories load and warm up in a worker thread, then appear together in one registry
update, so a request sees either the old set of versions or the new one. Removed ones
leave the registry first (new requests: 404, their sessions: 410) and their engines
close once their queued and running batches are done. A version that fails to load
is refused with one log line and kept as a refusal until its files change. A model
directory that cannot be scanned is left exactly as it is served, and so is the whole
store if it cannot be listed or holds no version at all (e.g. an unmounted volume).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from anyio import to_thread

from service.inference.model.interface import LoadedModel
from service.inference.model.manifest import ManifestError
from service.inference.model.registry import Registry
from service.inference.model.store import (
    Signature,
    check_version,
    model_dirs,
    scan_model,
    signature,
)
from service.inference.serving.engine import Engines

log = logging.getLogger("service")
MAX_ERROR = 600

Load = Callable[[Path, str, int], LoadedModel]


def load_version(directory: Path, name: str, version: int) -> LoadedModel:
    """Check, load and warm up one version directory (on a worker thread)."""
    from service.inference.compiled.loader import load_model  # TensorFlow from here on

    manifest, files = check_version(directory)
    return load_model(directory, name, version, manifest, files)


@dataclass(frozen=True)
class Refusal:
    model: str
    version: str | None  # None: the model directory as a whole
    error: str


@dataclass
class ReloadReport:
    loaded: list[tuple[str, int]] = field(default_factory=list)
    unloaded: list[tuple[str, int]] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)  # all current refusals
    store_error: str | None = None  # nothing loaded or unloaded


@dataclass
class _Scan:
    found: dict[str, dict[int, Path]]  # model directories that scanned cleanly
    problems: dict[str, str]  # model directory -> why; served as they are


def _scan(root: Path) -> _Scan:
    found: dict[str, dict[int, Path]] = {}
    problems: dict[str, str] = {}
    for model_dir in model_dirs(root):
        try:
            found[model_dir.name] = scan_model(model_dir)
        except ManifestError as exc:
            problems[model_dir.name] = str(exc)
        except OSError as exc:  # e.g. a directory without read permission
            problems[model_dir.name] = f"{model_dir}: cannot scan: {exc.strerror or exc}"
    if not problems and not any(found.values()):
        raise ManifestError(f"{root}: no model versions; keeping the loaded ones")
    return _Scan(found, problems)


class Reloader:
    def __init__(
        self,
        root: Path,
        registry: Registry,
        engines: Engines,
        load: Load = load_version,
        drain_timeout: float = 30.0,
    ):
        self.root = root
        self.registry = registry
        self.engines = engines
        self._load = load
        self.drain_timeout = drain_timeout
        self._lock = asyncio.Lock()
        self._failed: dict[tuple[str, int], tuple[Signature, str]] = {}
        self._problems: dict[str, str] = {}
        self._store_error: str | None = None

    async def poll(self, interval: float) -> None:
        """Reload every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reload()
            except Exception:  # the next poll may well succeed
                log.exception("model store reload failed; next try in %.3g s", interval)

    async def reload(self) -> ReloadReport:
        async with self._lock:  # one at a time: the poller and POST /v1/admin/reload
            return await self._reload()

    async def _reload(self) -> ReloadReport:
        try:
            scan = await to_thread.run_sync(_scan, self.root)
        except (ManifestError, OSError) as exc:
            error = self._relative(str(exc))
            if error != self._store_error:
                log.error("model store not reloaded: %s", error)
            self._store_error = error
            return ReloadReport(refused=self._refusals(), store_error=error)
        self._store_error = None
        self._note_problems(scan.problems)
        served = self.registry.models()
        wanted = {
            (name, version): directory
            for name, versions in scan.found.items()
            for version, directory in versions.items()
            if version not in served.get(name, {})
        }
        removed = [
            model
            for name, versions in served.items()
            if name not in scan.problems
            for version, model in versions.items()
            if version not in scan.found.get(name, {})
        ]
        # refusals of versions gone from a cleanly scanned model directory are over
        self._failed = {
            key: value
            for key, value in self._failed.items()
            if key in wanted or key[0] in scan.problems
        }
        loaded = await self._load_new(wanted)
        if loaded or removed:
            for model in loaded:  # engines first: a request finding it must find its engine
                self.engines.add(model)
                served.setdefault(model.spec.name, {})[model.spec.version] = model
            for model in removed:
                del served[model.spec.name][model.spec.version]
            self.registry.update(served, self._by_model())
            for model in loaded:
                self._log_change("loaded", model)
            for model in removed:
                await self._unload(model)
            _settle_memory(full=bool(removed))
        else:
            self.registry.update(served, self._by_model())
        return ReloadReport(
            loaded=sorted((m.spec.name, m.spec.version) for m in loaded),
            unloaded=sorted((m.spec.name, m.spec.version) for m in removed),
            refused=self._refusals(),
        )

    async def _load_new(self, wanted: dict[tuple[str, int], Path]) -> list[LoadedModel]:
        loaded = []
        for (name, version), directory in sorted(wanted.items()):
            files = await to_thread.run_sync(signature, directory)
            failed = self._failed.get((name, version))
            if failed is not None and failed[0] == files:
                continue  # refused before, unchanged since
            try:
                model = await to_thread.run_sync(self._load, directory, name, version)
            except Exception as exc:
                error = self._relative(" ".join(str(exc).split()) or type(exc).__name__)
                if len(error) > MAX_ERROR:
                    error = error[: MAX_ERROR - 3] + "..."
                self._failed[(name, version)] = (files, error)
                log.error(
                    "refused %s version %d: %s (tried again when its files change)",
                    name,
                    version,
                    error,
                )
                continue
            self._failed.pop((name, version), None)
            loaded.append(model)
        return loaded

    async def _unload(self, model: LoadedModel) -> None:
        engine = self.engines.remove(model)
        if engine is not None:
            await engine.close(self.drain_timeout)  # queued and running batches finish
        self._log_change("unloaded", model)

    def _log_change(self, what: str, model: LoadedModel) -> None:
        name, version = model.spec.name, model.spec.version
        left = self.registry.models().get(name)
        now = f"default version {max(left)}" if left else "no versions left"
        log.info("%s %s version %d (%s)", what, name, version, now)

    def _note_problems(self, problems: dict[str, str]) -> None:
        relative = {name: self._relative(why) for name, why in problems.items()}
        for name, why in relative.items():
            if self._problems.get(name) != why:
                log.error("model directory %s left as it is: %s", name, why)
        self._problems = relative

    def _refusals(self) -> list[Refusal]:
        refusals = [Refusal(name, None, why) for name, why in self._problems.items()]
        refusals += [Refusal(n, str(v), why) for (n, v), (_, why) in self._failed.items()]
        return sorted(
            refusals, key=lambda r: (r.model, -1 if r.version is None else int(r.version))
        )

    def _by_model(self) -> dict[str, list[tuple[str | None, str]]]:
        out: dict[str, list[tuple[str | None, str]]] = {}
        for r in self._refusals():
            out.setdefault(r.model, []).append((r.version, r.error))
        return out

    def _relative(self, message: str) -> str:
        """Paths in messages relative to the store: clients need not see host paths."""
        for root in (str(self.root.resolve()), str(self.root)):
            message = message.replace(root + "/", "").replace(root, "SERVICE_MODEL_STORE")
        return message


def _settle_memory(full: bool) -> None:
    """The app freezes what start-up loaded out of the collector's sight (see app.py);
    new models join them (~1 ms). An unloaded model among them is only freed by
    unfreezing and a full collection: measured 0.3-0.4 s with the shipped models, a
    one-off stall per reload that unloads something."""
    if full:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()
