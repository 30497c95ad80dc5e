"""Embedded samples: build_embedded.py conversion, and the same path as the public loaders."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import polars as pl
import pytest

from hepad_bench.contracts import Progress
from hepad_bench.errors import DataError, UserError
from hepad_bench.params import build_config
from hepad_plugins.datasets import adc2021, embedded, lhco2020
from hepad_plugins.datasets.embedded import DijetPythia, L1Pythia

from test_dataset_adc2021 import fake_particles, write_adc_folder  # test fixtures in the public layout
from test_dataset_lhco2020 import fake_dijets

REPO = Path(__file__).resolve().parents[1]


def build_module():
    spec = importlib.util.spec_from_file_location("build_embedded", REPO / "datasets" / "build_embedded.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPAD_BENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def generated(tmp_path):
    """TEST FIXTURE: generator-style output (public layouts plus the generator's extras and attributes)."""
    l1 = write_adc_folder(tmp_path / "gen" / "l1", n_background=400, n_signal=120, seed=4)
    bg = l1 / adc2021.BACKGROUND_FILE
    n = 400
    weights = np.where(np.arange(n) < 300, 2.0, 6.0)  # two "processes" with different sigma x eff / N
    with h5py.File(bg, "a") as fh:
        fh.create_dataset("Weight", data=weights)
        fh.create_dataset("Process", data=(np.arange(n) >= 300).astype(np.int8))
        fh.attrs["seed"] = 1234
        fh.attrs["versions"] = json.dumps({"pythia8mc": "8.317.2"})
    dijet = tmp_path / "gen" / "dijet"
    dijet.mkdir(parents=True)
    path = dijet / lhco2020.FILE
    fake_dijets(3000, 500, seed=2).to_hdf(path, key="df", format="table")
    with pd.HDFStore(path, mode="a") as store:
        store.get_storer("df").attrs.hepad_generation = json.dumps({"seed": 99, "generator": "test fixture"})
    return tmp_path / "gen"


@pytest.fixture
def shipped(tmp_path, generated, monkeypatch):
    """Build into a temporary datasets/ folder and point the plugins at it."""
    out = tmp_path / "datasets"
    assert build_module().main(["--l1", str(generated / "l1"), "--dijet", str(generated / "dijet"),
                                "--out", str(out)]) == 0
    monkeypatch.setattr(embedded, "dataset_folder", lambda name: out / name)
    return out


def test_build_writes_parquet_and_provenance(shipped, generated):
    names = sorted(p.name for p in (shipped / "l1-pythia").iterdir())
    assert names == ["background.parquet", "provenance.json", "signal_Ato4l.parquet", "signal_hChToTauNu.parquet",
                     "signal_hToTauTau.parquet", "signal_leptoquark.parquet"]
    record = json.loads((shipped / "l1-pythia" / "provenance.json").read_text())
    src = record["sources"]["background"]
    assert src["attributes"]["seed"] == 1234 and src["attributes"]["versions"] == {"pythia8mc": "8.317.2"}
    assert src["size"] == (generated / "l1" / adc2021.BACKGROUND_FILE).stat().st_size and len(src["sha256"]) == 64
    assert "build_embedded.py" in record["command"]
    dijet = json.loads((shipped / "dijet-pythia" / "provenance.json").read_text())
    assert dijet["sources"]["events"]["attributes"]["hepad_generation"] == {"seed": 99, "generator": "test fixture"}
    assert pl.read_parquet(shipped / "dijet-pythia" / "events.parquet").columns == lhco2020.COLUMNS


def test_l1_goes_through_the_adc2021_path(shipped, generated, monkeypatch):
    opts = build_config(L1Pythia.Options, ["preprocessing=log-standard"], "l1")
    mine = L1Pythia(opts).load(None, Progress())
    public = adc2021.ADC2021(opts).load(generated / "l1", Progress())
    assert mine.features == public.features and len(mine.features) == 57
    for name, table in public.tables().items():
        other = mine.tables()[name]
        np.testing.assert_array_equal(mine.features_of(other), public.features_of(table))
    # the generator's Weight, normalised to mean 1, rides along as the background weight
    w = np.concatenate([t["weight"].to_numpy() for t in (mine.train, mine.validation, mine.test)])
    assert sorted(set(np.round(w, 6))) == [0.666667, 2.0] and w.mean() == pytest.approx(1.0)
    assert (mine.signals["Ato4l"]["weight"] == 1.0).all()
    assert mine.version == L1Pythia.version and mine.meta["provenance"]["sources"]["background"]["generation_seed"] == 1234


def test_dijet_goes_through_the_lhco2020_path(shipped, generated):
    small = ["n_signal=80", "min_region_events=20"]  # a small fixture: fewer events per window
    opts = build_config(DijetPythia.Options, small, "dijet")
    mine = DijetPythia(opts).load(None, Progress())
    public = lhco2020.LHCO2020(build_config(lhco2020.LHCO2020.Options, small, "lhco")).load(
        generated / "dijet", Progress())
    for name, table in public.tables().items():
        other = mine.tables()[name]
        np.testing.assert_array_equal(mine.features_of(other), public.features_of(table))
        np.testing.assert_array_equal(other["mjj"].to_numpy(), table["mjj"].to_numpy())
    assert mine.resonant == "mjj" and mine.meta["n_signal_injected"]["train"] == public.meta["n_signal_injected"]["train"]
    assert DijetPythia.Options().n_signal == 550 and DijetPythia.version == "2"


def test_missing_or_damaged_embedded_files_say_how_to_rebuild(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "dataset_folder", lambda name: tmp_path / name)
    for cls in (L1Pythia, DijetPythia):
        with pytest.raises(UserError, match="build_embedded.py"):
            cls().load(None, Progress())
    (tmp_path / "l1-pythia").mkdir()
    pl.DataFrame({"met_pt": [1.0]}).write_parquet(tmp_path / "l1-pythia" / "background.parquet")
    pl.DataFrame({c: np.ones(3, np.float32) for c in adc2021.FEATURES}).write_parquet(
        tmp_path / "l1-pythia" / "signal_Ato4l.parquet")
    with pytest.raises(DataError, match="missing columns met_eta.*build_embedded.py"):
        L1Pythia().load(None, Progress())


def test_build_refuses_a_sample_above_the_size_limit(tmp_path, generated, capsys):
    code = build_module().main(["--only", "l1", "--l1", str(generated / "l1"), "--out", str(tmp_path / "o"),
                                "--max-mb", "0.001"])
    assert code == 1 and "--l1-max-background" in capsys.readouterr().err
    code = build_module().main(["--only", "l1", "--l1", str(generated / "l1"), "--out", str(tmp_path / "o"),
                                "--l1-max-background", "100"])
    assert code == 0 and pl.read_parquet(tmp_path / "o" / "l1-pythia" / "background.parquet").height == 100


def test_build_validates_the_generated_files(tmp_path, generated):
    bad = generated / "l1" / adc2021.BACKGROUND_FILE
    bad.unlink()
    with h5py.File(bad, "w") as fh:
        fh.create_dataset("Particles", data=fake_particles(10, np.random.default_rng(0))[:, :18])
    with pytest.raises(DataError, match="shape"):
        build_module().main(["--only", "l1", "--l1", str(generated / "l1"), "--out", str(tmp_path / "o")])


def test_shipped_l1_pythia_sample_is_intact_and_loads():
    from hepad_plugins._resources import dataset_folder
    from hepad_plugins.datasets._common import sha256_of

    folder = dataset_folder("l1-pythia")
    record = json.loads((folder / "provenance.json").read_text())
    total = 0
    for info in record["outputs"].values():  # the files are the ones the provenance describes
        path = folder / info["file"]
        assert path.stat().st_size == info["size"] and sha256_of(path) == info["sha256"]
        total += info["size"]
    assert total <= 25e6
    bench = L1Pythia().load(None, Progress())
    assert len(bench.features) == 57 and sorted(bench.signals) == sorted(adc2021.SIGNALS)
    assert bench.train.height + bench.validation.height + bench.test.height == record["outputs"]["background"]["events"]
    x = bench.features_of(bench.train)
    assert np.isfinite(x).all() and np.allclose(x.mean(0), 0, atol=1e-3)  # standardised on the training set
    assert "NOT the ADC2021 challenge data" in L1Pythia.card
    # physical normalisation from the recorded cross sections (hand check: W + Z + ttbar sigma x eff, 2e34 cm^-2 s^-1)
    processes = record["sources"]["background"]["attributes"]["processes"].values()
    sigma_b = sum(p["sigma_gen_pb"] * p["filter_efficiency"] for p in processes)
    assert bench.meta["background_rate_hz"] == pytest.approx(sigma_b * 2e34 * 1e-36, rel=1e-9)
    assert sorted(bench.meta["n_signal_expected"]) == sorted(adc2021.SIGNALS)
    assert json.loads(json.dumps(bench.meta)) == bench.meta  # run.json records it as it is
