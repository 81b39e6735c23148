"""`Content-Encoding: gzip` or `deflate` request bodies (as tritonclient sends them),
inflated a bounded piece at a time: SERVICE_MAX_BODY_BYTES holds while inflating (a
few KB that would inflate to gigabytes stop at the limit), the first piece is inflated
on the event loop and the rest in a worker thread, and the compressed data must be
whole: a gzip body may be several members (read in order, as gzip -d reads them);
anything else after the end, or an end missing, is refused."""

from __future__ import annotations

import zlib

from service.api.bodies.offload import SMALL_BODY, off_loop
from service.errors import InvalidInput, PayloadTooLarge, shown

WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
GZIP_MAGIC = b"\x1f\x8b"
PIECE = 64 * 1024  # bytes inflated per zlib call


class Inflation:
    def __init__(self, raw: bytes, encoding: str, limit: int):
        self.encoding = encoding
        self.limit = limit
        self.inflater = zlib.decompressobj(WBITS[encoding])
        self.pending = raw  # compressed bytes not yet taken by the inflater
        self.pieces: list[bytes] = []
        self.size = 0

    def inflate(self, budget: int | None = None) -> bytes | None:
        """Inflates about `budget` more bytes (None: all); the body once it is whole."""
        produced = 0
        while budget is None or produced < budget:
            asked = min(PIECE, self.limit + 1 - self.size)
            try:
                piece = self.inflater.decompress(self.pending, asked)
            except zlib.error as exc:
                raise self._invalid(str(exc)) from None
            self.pending = self.inflater.unconsumed_tail
            self.pieces.append(piece)
            self.size += len(piece)
            produced += len(piece)
            if self.size > self.limit:
                raise PayloadTooLarge(
                    f"body: inflates beyond the limit of {self.limit:,} bytes "
                    "(SERVICE_MAX_BODY_BYTES)",
                    field="body",
                )
            if self.inflater.eof:
                after = self.inflater.unused_data
                if not after:
                    return b"".join(self.pieces)
                if self.encoding != "gzip" or not after.startswith(GZIP_MAGIC):
                    raise self._invalid(f"{len(after):,} bytes after the end of the data")
                self.inflater = zlib.decompressobj(WBITS["gzip"])  # the next member
                self.pending = after
            elif not self.pending and len(piece) < asked:
                raise self._invalid("it ends before the end of the compressed data")
        return None

    def _invalid(self, why: str) -> InvalidInput:
        return InvalidInput(f"body: not valid {self.encoding} data ({why})", field="body")


async def inflated(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent, or inflated as its Content-Encoding says."""
    if encoding is None or encoding.lower() == "identity":
        return raw
    if encoding.lower() not in WBITS:
        raise InvalidInput(
            f"Content-Encoding: {shown(encoding)}; allowed: gzip, deflate, identity",
            field="Content-Encoding",
        )
    inflation = Inflation(raw, encoding.lower(), limit)
    body = inflation.inflate(SMALL_BODY)
    if body is None:
        body = await off_loop(False, inflation.inflate)
    assert body is not None
    return body
