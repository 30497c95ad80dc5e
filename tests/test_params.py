from dataclasses import dataclass
from typing import Literal

import pytest

from hepad_bench.errors import UserError
from hepad_bench.params import build_config, stable_hash


@dataclass
class Cfg:
    epochs: int = 10
    lr: float = 1e-3
    hidden: tuple[int, ...] = (64, 32)
    score: Literal["total", "reco", "kl"] = "total"
    pretrain: bool = False
    note: str | None = None


def test_overrides_are_converted_to_the_declared_types():
    cfg = build_config(Cfg, ["epochs=3", "lr=0.5", "hidden=8,4,2", "score=kl", "pretrain=yes", "note=none"], "ae")
    assert cfg == Cfg(epochs=3, lr=0.5, hidden=(8, 4, 2), score="kl", pretrain=True, note=None)


def test_unknown_name_lists_valid_names_and_types():
    with pytest.raises(UserError) as err:
        build_config(Cfg, ["epoch=3"], "detector ae")
    msg = str(err.value)
    assert "no parameter 'epoch'" in msg and "epochs (int)" in msg and "score (one of total|reco|kl)" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("item, expected", [
    ("epochs=three", "expected int"), ("score=bogus", "one of total|reco|kl"),
    ("pretrain=maybe", "expected bool"), ("epochs", "expected name=value"),
])
def test_bad_values_are_one_line_errors(item, expected):
    with pytest.raises(UserError, match=expected):
        build_config(Cfg, [item], "ae")


def test_stable_hash_ignores_key_order_and_sees_values():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})
    assert len(stable_hash({"a": 1})) == 12
