"""The sort-based stand-ins for np.unique give what np.unique gives."""

from __future__ import annotations

import numpy as np
import pytest

from recs.core import arrays


@pytest.mark.parametrize("dtype", [np.int64, np.uint32])
@pytest.mark.parametrize("n", [0, 1, 5_000])
def test_distinct_forms_equal_np_unique(dtype, n) -> None:
    values = np.random.default_rng(n).integers(0, 300, n).astype(dtype)
    assert np.array_equal(arrays.distinct(values), np.unique(values))
    got, counts = arrays.distinct_counts(values)
    want, want_counts = np.unique(values, return_counts=True)
    assert np.array_equal(got, want) and np.array_equal(counts, want_counts)
    assert counts.dtype == np.int32
    got, inverse = arrays.distinct_inverse(values)
    want, want_inverse = np.unique(values, return_inverse=True)
    assert np.array_equal(got, want) and np.array_equal(inverse, want_inverse.ravel())
