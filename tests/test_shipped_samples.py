"""The shipped samples hold every event once, and no event sits in two splits.

Version 1 of l1-pythia failed this: the generator's pilot run replayed events
of its main run, so some test events were also training events.
"""

import numpy as np
import pytest

from hepad_bench.plugins import load_registry

BOOKKEEPING = {"process", "label", "weight"}


def _event_keys(table, columns):
    rows = np.ascontiguousarray(table.select(columns).to_numpy())
    return [row.tobytes() for row in rows]


@pytest.mark.parametrize("name", ["l1-pythia", "dijet-pythia"])
def test_events_are_unique_and_splits_disjoint(name):
    bench = load_registry(warn=lambda m: None).dataset(name)().load(None, None)
    columns = [c for c in bench.train.columns if c not in BOOKKEEPING]
    seen: dict[bytes, str] = {}
    for split, table in bench.tables().items():
        for key in _event_keys(table, columns):
            assert key not in seen, f"an event of {split} is also in {seen[key]}"
            seen[key] = split
