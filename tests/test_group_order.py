"""ingest.group_order: the radix sort that groups a shuffled ratings file by user."""

from __future__ import annotations

import numpy as np
import pytest

from recs.stages.ingest import group_order


@pytest.mark.parametrize("top", [1, 300, 1 << 16, 200_000, 2**31 - 1])
def test_group_order_is_the_stable_argsort(top: int) -> None:
    keys = np.random.default_rng(top).integers(0, top, 50_000).astype(np.int32)
    assert np.array_equal(group_order(keys), np.argsort(keys, kind="stable"))


def test_group_order_of_nothing() -> None:
    assert group_order(np.zeros(0, np.int32)).tolist() == []
