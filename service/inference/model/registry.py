"""Loaded models by name and version; the highest version is the default."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from service.digits import decimal
from service.errors import InvalidInput, NotFound, shown
from service.inference.model.interface import LoadedModel

Models = Mapping[str, Mapping[int, LoadedModel]]
# Store entries that could not be loaded, per model name: (version directory or None
# for the model directory as a whole, why), messages relative to the store.
Refusals = Mapping[str, Sequence[tuple[str | None, str]]]


class Registry:
    """Replaced wholesale by `update`: requests, all on the event loop, see either the
    old set of versions or the new one, never a mix."""

    def __init__(self, models: Models, default_model: str | None = None):
        self._configured_default = default_model
        if default_model is not None and default_model not in models:
            raise ValueError(
                f"default model '{default_model}' is not in the store "
                f"(models: {', '.join(sorted(models)) or 'none'})"
            )
        self._models: dict[str, dict[int, LoadedModel]] = {}
        self._refused: dict[str, list[tuple[str | None, str]]] = {}
        self.default_model: str | None = None
        self.update(models)

    def update(self, models: Models, refused: Refusals | None = None) -> None:
        """Serve exactly `models` from now on. A configured default model stays the
        default even while it is missing (then requests for it answer 404)."""
        self._models = {name: dict(sorted(v.items())) for name, v in sorted(models.items()) if v}
        self._refused = {name: list(r) for name, r in sorted((refused or {}).items()) if r}
        default = self._configured_default
        if default is None:
            seq2seq = [n for n in self._models if self.get(n).spec.manifest.kind == "seq2seq"]
            candidates = seq2seq if seq2seq else list(self._models)
            default = candidates[0] if len(candidates) == 1 else None
        self.default_model = default

    def models(self) -> dict[str, dict[int, LoadedModel]]:
        """A copy of what is served, for building the next `update`."""
        return {name: dict(versions) for name, versions in self._models.items()}

    def refused(self, name: str) -> list[tuple[str | None, str]]:
        return list(self._refused.get(name, ()))

    def all_refused(self) -> dict[str, list[tuple[str | None, str]]]:
        return {name: list(r) for name, r in self._refused.items()}

    def all(self) -> list[LoadedModel]:
        return [m for versions in self._models.values() for m in versions.values()]

    def names(self) -> list[str]:
        return list(self._models)

    def versions(self, name: str) -> list[int]:
        return list(self._versions(name))

    def _versions(self, name: str) -> dict[int, LoadedModel]:
        try:
            return self._models[name]
        except KeyError:
            refused = "; ".join(why for _, why in self._refused.get(name, ()))
            if refused:
                message = (
                    f"model {shown(name)} is not served: its store entry was refused ({refused})"
                )
            else:
                message = f"model {shown(name)} not found"
            raise NotFound(
                f"{message}; available models: {', '.join(self._models)}", field="model"
            ) from None

    def get(self, name: str | None, version: int | str | None = None) -> LoadedModel:
        if name is None:
            if self.default_model is None:
                raise InvalidInput(
                    f"no default model is configured; set 'model' to one of: "
                    f"{', '.join(self._models)}",
                    field="model",
                )
            name = self.default_model
        versions = self._versions(name)
        if version is None:
            return versions[max(versions)]
        number = version_number(version)
        if number is None or number not in versions:
            allowed = ", ".join(str(v) for v in versions)
            why = [
                w for v, w in self._refused.get(name, ()) if number is not None and v == str(number)
            ]
            refused = f" (refused: {why[0]})" if why else ""
            raise NotFound(
                f"version {shown(str(version))} of model '{name}' not found{refused}; available "
                f"versions: {allowed}",
                field="version",
            )
        return versions[number]


def version_number(version: int | str) -> int | None:
    """A client's version as a store version number, or None if it cannot be one."""
    return version if isinstance(version, int) else decimal(version)
