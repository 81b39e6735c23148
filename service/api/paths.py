"""Path parameters that never hold ':'. Starlette's default `{name}` matches `[^/]+`, so
without this `GET /v1/models/reverse:predict` would ask the model status route for a
model named "reverse:predict" (a 404) instead of answering 405 as TF Serving's
`:predict` path should. Model names and versions never contain ':'
(service/inference/model/store.py), so nothing that exists stops matching."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class Segment(Convertor[str]):
    regex = "[^/:]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("segment", Segment())
