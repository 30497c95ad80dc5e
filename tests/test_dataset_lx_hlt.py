"""lx-hlt-pythia: built from a small generated l1 v3 sample, loaded through the adc2021 split path, with rates."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from hepad_bench.contracts import Progress
from hepad_bench.errors import UserError
from hepad_bench.params import build_config
from hepad_plugins.datasets import embedded, lx_hlt
from hepad_plugins.datasets.lx_hlt import LxHltPythia

from test_dataset_embedded import build_module, private_cache  # noqa: F401 (autouse fixture: a private cache)

SIGNAL = "Ato4l_lepFilter_13TeV_filtered"  # the quickest signal to generate


@pytest.fixture(scope="module")
def generated_v3(tmp_path_factory):
    """A small l1 version-3 sample (40 background events, 10 of one signal), generated once."""
    from hepad_plugins.generators import l1

    out = tmp_path_factory.mktemp("gen") / "l1v3"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(l1, "pilot_tries", lambda events: 60)
        mp.setattr(l1, "QCD_PILOT_FACTOR", 1)
        mp.setattr(l1, "BATCH", 50)
        mp.setattr(l1, "SIGNAL_SETTINGS", {SIGNAL: l1.SIGNAL_SETTINGS[SIGNAL]})
        l1.generate(out, 40, 9, 10, 1, Progress(), chunk_size=40, config=replace(l1.V3, pileup_pool=30, min_main_efficiency=0.05))
    return out


@pytest.fixture
def shipped(tmp_path, generated_v3, monkeypatch):
    out = tmp_path / "datasets"
    assert build_module().main(["--only", "lx-hlt", "--l1", str(generated_v3), "--out", str(out)]) == 0
    monkeypatch.setattr(lx_hlt, "dataset_folder", lambda name: out / name)
    monkeypatch.setattr(embedded, "dataset_folder", lambda name: out / name)
    return out / lx_hlt.NAME


def test_build_writes_the_21_features(shipped, generated_v3):
    bg = pl.read_parquet(shipped / lx_hlt.BACKGROUND)
    assert 25 <= bg.height <= 40 and bg.columns[:21] == lx_hlt.FEATURES  # QCD: pilot events only
    assert {"weight", "process"} <= set(bg.columns)
    assert all(bg[c].dtype == pl.Float32 for c in lx_hlt.FEATURES)
    sig = pl.read_parquet(shipped / embedded.l1_signal_file("Ato4l"))
    assert sig.height == 10
    # A -> 4 l: mostly several leptons, unlike the one-lepton background
    assert (sig["n_e"] + sig["n_mu"]).mean() > (bg["n_e"] + bg["n_mu"]).mean()
    assert (shipped / "provenance.json").is_file()


def test_loads_through_the_shared_split_path_with_rates(shipped):
    opts = build_config(LxHltPythia.Options, ["preprocessing=log-standard"], "lx")
    bench = LxHltPythia(opts).load(None, Progress())
    assert bench.features == lx_hlt.FEATURES
    n = pl.read_parquet(shipped / lx_hlt.BACKGROUND).height
    assert bench.train.height + bench.validation.height + bench.test.height == n
    assert set(bench.signals) == {"Ato4l"}
    assert bench.meta["background_rate_hz"] == pytest.approx(185.6e6 / (30 * 86400))
    assert set(bench.meta["process_rates_hz"]) == {"W", "QCD", "Z", "ttbar"}
    assert bench.meta["background_events_per_day"]["W"] == pytest.approx(110e6 / 30)
    # log-standard: the training background is standardised
    x = bench.features_of(bench.train)
    assert np.allclose(x.mean(axis=0)[np.std(x, axis=0) > 0], 0.0, atol=1e-4)


def test_without_a_shipped_sample_it_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setattr(lx_hlt, "dataset_folder", lambda name: tmp_path / name)
    with pytest.raises(UserError, match="generate l1 --version 3") as info:
        LxHltPythia(build_config(LxHltPythia.Options, [], "lx")).load(None, Progress())
    assert "\n" not in str(info.value)


def test_registered():
    from hepad_bench.plugins import load_registry

    assert load_registry(warn=lambda m: None).dataset(lx_hlt.NAME) is LxHltPythia
