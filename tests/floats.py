"""Float comparisons that hold on any x86-64 or ARM CPU.

float32 results differ in the last bits between CPUs (FMA or not, the kernel oneDNN
picks) and between batch sizes (a matmul over 32 rows may take another path than
over one): a row decoded in a batch of 32 differed from the same row decoded alone by
1.16e-6 on an AMD EPYC. So model outputs are compared within these tolerances, which
are also what the README promises ("within 1e-5"). Exact comparisons are kept only
where equality holds by construction (the same bytes stored and read back, integer
valued fakes), each saying so; tokens are always compared exactly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

RTOL = 1e-5
ATOL = 1e-5


def assert_close(actual: npt.ArrayLike, desired: npt.ArrayLike, what: str = "") -> None:
    np.testing.assert_allclose(actual, desired, rtol=RTOL, atol=ATOL, err_msg=what)


def close(actual: npt.ArrayLike, desired: npt.ArrayLike) -> bool:
    return bool(np.allclose(actual, desired, rtol=RTOL, atol=ATOL))
