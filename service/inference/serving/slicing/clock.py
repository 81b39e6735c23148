"""How many steps a slice runs: about `target` seconds of compute while other work
waits for the compute thread, ALONE times that while none does, from a moving average
of the measured seconds per step at each batch size (by power of 2)."""

from __future__ import annotations

FIRST_SLICE_STEPS = 4  # before a batch size's step time is known
ALONE = 10  # slices run this many times longer while no other work waits
MEASURED_STEPS = 4  # shorter calls are mostly fixed cost: they teach nothing


class SliceClock:
    def __init__(self, target: float):
        self.target = target  # seconds; 0: loops run whole
        self._per_step: dict[int, float] = {}

    @staticmethod
    def _bucket(rows: int) -> int:
        return max(rows - 1, 0).bit_length()

    def steps(self, rows: int, contended: bool) -> int:
        per_step = self._per_step.get(self._bucket(rows))
        if per_step is None:
            return FIRST_SLICE_STEPS
        target = self.target if contended else self.target * ALONE
        return max(1, int(target / per_step))

    def record(self, rows: int, steps: int, seconds: float) -> None:
        if steps < MEASURED_STEPS:
            return
        bucket, sample = self._bucket(rows), seconds / steps
        known = self._per_step.get(bucket)
        self._per_step[bucket] = sample if known is None else 0.8 * known + 0.2 * sample
