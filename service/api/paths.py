"""Path parameters that never hold ':'. Starlette's default `{name}` matches `[^/]+`, so
without this `GET /v1/models/reverse:predict` would ask the model status route for a
model named "reverse:predict" (a 404) instead of answering 405 as TF Serving's
`:predict` path should. Model names and versions never contain ':'
(service/inference/model/store.py), so nothing that exists stops matching."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from starlette.convertors import Convertor, register_url_convertor


class Segment(Convertor[str]):
    regex = "[^/:]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("segment", Segment())


# the type of a `{...:segment}` parameter: its schema says what the convertor matches
# (documented, so that clients and schema-driven tests know ':' belongs to another path)
PathSegment = Annotated[str, Path(pattern=f"^{Segment.regex}$")]
