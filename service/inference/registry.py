"""Loaded models by name and version; the highest version is the default."""

from __future__ import annotations

from collections.abc import Mapping

from service.errors import InvalidInput, NotFound, shown
from service.inference.base import LoadedModel


class Registry:
    def __init__(
        self, models: Mapping[str, Mapping[int, LoadedModel]], default_model: str | None = None
    ):
        self._models = {name: dict(sorted(v.items())) for name, v in sorted(models.items())}
        if default_model is None:
            seq2seq = [n for n in self._models if self.get(n).spec.manifest.kind == "seq2seq"]
            candidates = seq2seq if seq2seq else list(self._models)
            default_model = candidates[0] if len(candidates) == 1 else None
        elif default_model not in self._models:
            raise ValueError(
                f"default model '{default_model}' is not in the store "
                f"(models: {', '.join(self._models) or 'none'})"
            )
        self.default_model = default_model

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
            raise NotFound(
                f"model {shown(name)} not found; available models: {', '.join(self._models)}",
                field="model",
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
            raise NotFound(
                f"version {shown(str(version))} of model '{name}' not found; available "
                f"versions: {allowed}",
                field="version",
            )
        return versions[number]


def version_number(version: int | str) -> int | None:
    """A client's version as a store version number, or None if it cannot be one.
    Only ASCII digits count ('²'.isdigit() is true but int() refuses it), and only
    as many as a version can have (int() also refuses strings over 4,300 digits)."""
    if isinstance(version, int):
        return version
    if version.isascii() and version.isdigit() and len(version) <= 18:
        return int(version)
    return None
