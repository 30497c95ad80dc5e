"""The LHCO raw (constituent) layout: round trip through lhco2020 and dijet-pythia with features=ganae42."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from hepad_bench.contracts import Progress
from hepad_bench.errors import DataError, UserError
from hepad_bench.params import build_config
from hepad_plugins.datasets import embedded, lhco2020, lhco_raw
from hepad_plugins.datasets._common import sha256_of
from hepad_plugins.datasets.embedded import DijetPythia
from hepad_plugins.datasets.lhco2020 import LHCO2020
from hepad_plugins.generators import jet_features as jf

from test_dataset_embedded import build_module  # the datasets/build_embedded.py script
from test_dataset_lhco2020 import fake_dijets


def toy_events(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """TEST FIXTURE, not physics: two back-to-back sprays of particles per event (pT GeV, eta, phi);
    label 1 events have two narrow prongs per jet, label 0 one wide spray. Jet pT spreads mjj over ~2.5-4.5 TeV.
    The first two events are two single particles (jets with known features)."""
    rng = np.random.default_rng(seed)
    width = 40
    pt, eta, phi = (np.zeros((n, width)) for _ in range(3))
    label = (rng.random(n) < 0.3).astype(float)
    for i in range(n):
        jet_pt = rng.uniform(1300, 2200)
        axis_phi = rng.uniform(-np.pi, np.pi)
        k = 0
        for sign in (0, 1):
            centre_eta, centre_phi = rng.normal(0, 0.5), axis_phi + sign * np.pi
            m = 18
            if label[i]:
                prong = rng.integers(0, 2, m)
                d_eta = np.where(prong, 0.15, -0.15) + rng.normal(0, 0.02, m)
                d_phi = rng.normal(0, 0.02, m)
            else:
                d_eta, d_phi = rng.normal(0, 0.15, m), rng.normal(0, 0.15, m)
            share = rng.dirichlet(np.ones(m)) * jet_pt * (0.9 if sign else 1.0)
            pt[i, k:k + m], eta[i, k:k + m] = share, centre_eta + d_eta
            phi[i, k:k + m] = np.angle(np.exp(1j * (centre_phi + d_phi)))
            k += m
    for i, (p1, p2) in enumerate(((1500.0, 1400.0), (1800.0, 1700.0))):
        pt[i], eta[i], phi[i] = 0, 0, 0
        pt[i, :2], eta[i, :2], phi[i, :2] = (p2, p1), (-0.3, 0.2), (1.0 - np.pi, 1.0)
    return pt, eta, phi, label


def write_raw_file(folder: Path, n: int = 900, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pt, eta, phi, label = toy_events(n, seed)
    path = folder / lhco_raw.RAW_FILE
    lhco_raw.write_raw(path, lhco_raw.raw_matrix(pt, eta, phi, label))
    return path


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPAD_BENCH_CACHE", str(tmp_path / "cache"))


def load(cls, data_dir, **options):
    opts = build_config(cls.Options, {k: str(v) for k, v in options.items()}, cls.name)
    return cls(opts).load(data_dir, Progress())


def test_raw_matrix_is_the_lhco_layout():
    pt = np.array([[5.0, 0.0, 7.0, 1.0]])
    m = lhco_raw.raw_matrix(pt, np.array([[0.5, 0.0, -1.0, 2.0]]), np.array([[0.1, 0.0, 0.2, 0.3]]), np.array([1]))
    assert m.shape == (1, 2101) and m.dtype == np.float32
    assert m[0, :9].tolist() == pytest.approx([7.0, -1.0, 0.2, 5.0, 0.5, 0.1, 1.0, 2.0, 0.3])  # pT-ordered triplets
    assert not m[0, 9:2100].any() and m[0, 2100] == 1.0  # zero padding, then the label
    many = np.arange(1, 801, dtype=float)[None, :]
    kept = lhco_raw.raw_matrix(many, np.zeros_like(many), np.zeros_like(many), np.array([0]))
    assert kept[0, 0:2100:3].tolist() == list(range(800, 100, -1))  # the 700 hardest


def test_features_survive_the_raw_file_round_trip(tmp_path):
    pt, eta, phi, label = toy_events(60, seed=1)
    path = tmp_path / lhco_raw.RAW_FILE
    lhco_raw.write_raw(path, lhco_raw.raw_matrix(pt, eta, phi, label))
    table = lhco_raw.read_raw_features(path, block_events=7)  # several blocks
    direct = jf.ganae_features(pt, eta, phi)  # unsorted, float64, unpadded
    assert table["label"].to_list() == label.astype(int).tolist()
    for name in [*jf.GANAE42, "mjj"]:
        np.testing.assert_allclose(table[name].to_numpy(), direct[name], rtol=2e-5, atol=2e-6, err_msg=name)
    # event 0 by hand: two single particles, 1500 GeV at (0.2, 1.0) and 1400 GeV at (-0.3, 1 - pi)
    row = table.row(0, named=True)
    assert row["pt_1"] == pytest.approx(1.5) and row["eta_1"] == pytest.approx(0.2)
    assert row["pt_2"] == pytest.approx(1.4) and row["mass_1"] == pytest.approx(0.0, abs=1e-4)
    assert row["mjj"] == pytest.approx(np.sqrt(2 * 1500 * 1400 * (np.cosh(0.5) + 1)) / 1000, rel=1e-6)
    assert row["eRing0_1"] == pytest.approx(1.0) and row["nisj_1"] == 1 and row["tau21_1"] == 0
    # the CATHODE columns come from the same jets
    light = np.minimum(table["mass_1"].to_numpy(), table["mass_2"].to_numpy())
    np.testing.assert_allclose(table["mj_light"].to_numpy(), light, rtol=1e-6)


def test_lhco2020_ganae42_reads_the_raw_file(tmp_path):
    write_raw_file(tmp_path / "d")
    b = load(LHCO2020, tmp_path / "d", features="ganae42", n_signal=40, min_region_events=10)
    assert b.features == jf.GANAE42 and b.resonant == "mjj" and b.meta["feature_set"] == "ganae42"
    x = b.features_of(b.train)
    assert x.shape[1] == 42
    spread = x.std(axis=0) > 0
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-4)  # standardised on the training data
    np.testing.assert_allclose(x.std(axis=0)[spread], 1, rtol=1e-3)
    assert b.meta["options"]["features"] == "ganae42" and b.meta["options"]["preprocessing"] == "standard"
    assert set(b.meta["preprocessing"]["mean"]) == set(jf.GANAE42)
    # n_signal is per full background sample: train, validation and hunt share the 40 in proportion
    assert 0 < b.meta["n_signal_injected"]["train"] + b.meta["n_signal_injected"]["validation"] < 40
    assert sum(b.meta["n_signal_injected"].values()) <= 40
    sr = b.signals["wprime"]["mjj"].to_numpy()
    assert len(sr) and ((sr >= 3.3) & (sr < 3.7)).all()  # mjj in TeV, never standardised
    raw = load(LHCO2020, tmp_path / "d", features="ganae42", preprocessing="none", n_signal=40, min_region_events=10)
    assert raw.train.height == b.train.height
    assert raw.train["pt_1"].min() > 0.5  # TeV, as computed
    # signal jets have two narrow prongs: lower tau21 than the one-spray background, as the toy was built
    t = raw.train
    assert t.filter(pl.col("label") == 1)["tau21_1"].mean() < t.filter(pl.col("label") == 0)["tau21_1"].mean() - 0.1


def test_ganae42_errors_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(UserError) as err:
        load(LHCO2020, tmp_path, features="ganae42")
    msg = str(err.value)
    assert "zenodo.org/records/4536377/files/events_anomalydetection_v2.h5" in msg
    assert "hepad-bench datasets fetch lhco2020 -o features=ganae42" in msg and "\n" not in msg
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.DataFrame(np.zeros((5, 2100), dtype=np.float32)).to_hdf(bad / lhco_raw.RAW_FILE, key="df")
    with pytest.raises(DataError, match="2100 columns, expected 2101") as err:
        load(LHCO2020, bad, features="ganae42")
    assert "\n" not in str(err.value)
    monkeypatch.setitem(sys.modules, "fastjet", None)  # as if FastJet were not installed
    with pytest.raises(UserError, match=r"pip install 'hepad-bench\[generate\]'"):
        load(LHCO2020, bad, features="ganae42")


def test_fetch_takes_the_raw_file_for_ganae42(monkeypatch):
    import pooch

    seen = []
    monkeypatch.setattr(pooch, "retrieve", lambda url, known_hash, fname, path, progressbar:
                        seen.append(url) or str(Path(path) / fname))
    opts = build_config(LHCO2020.Options, {"features": "ganae42"}, "lhco2020")
    (path,) = LHCO2020(opts).fetch(Progress())
    assert path.name == "events_anomalydetection_v2.h5"
    assert seen == ["https://zenodo.org/records/4536377/files/events_anomalydetection_v2.h5?download=1"]


def test_dijet_pythia_ganae42_is_built_from_the_constituents(tmp_path, monkeypatch):
    # generator-style folder: the features file and the constituent file, rows matching by label
    gen = tmp_path / "gen" / "dijet"
    raw_path = write_raw_file(gen, n=700, seed=5)
    labels = pd.read_hdf(raw_path).to_numpy()[:, -1]
    frame = fake_dijets(int((labels == 0).sum()), int((labels == 1).sum()), seed=2)
    rows = np.empty(len(labels), dtype=int)  # frame row shown at each position of the constituent file
    rows[labels == 0], rows[labels == 1] = np.flatnonzero(frame.label == 0), np.flatnonzero(frame.label == 1)
    frame.iloc[rows].reset_index(drop=True).to_hdf(gen / lhco2020.FILE, key="df", format="table")
    with pd.HDFStore(gen / lhco2020.FILE, mode="a") as store:
        store.get_storer("df").attrs.hepad_generation = json.dumps({"seed": 99, "generator": "test fixture"})
    out = tmp_path / "datasets"
    monkeypatch.setattr(embedded, "dataset_folder", lambda name: out / name)
    with pytest.raises(UserError, match="events_ganae42.parquet"):
        load(DijetPythia, None, features="ganae42")
    # the v1 table (events.parquet) first, from the features file alone, as the shipped sample was built
    assert build_module().main(["--only", "dijet", "--dijet", str(gen), "--out", str(out),
                                "--dijet-table", "events"]) == 0
    v1 = (out / "dijet-pythia" / embedded.DIJET_EVENTS).read_bytes()
    v1_record = json.loads((out / "dijet-pythia" / "provenance.json").read_text())
    assert not (out / "dijet-pythia" / embedded.DIJET_GANAE).exists()
    # the folder has constituents: the default builds the ganae42 table only and leaves events.parquet alone
    assert build_module().main(["--only", "dijet", "--dijet", str(gen), "--out", str(out)]) == 0
    assert (out / "dijet-pythia" / embedded.DIJET_EVENTS).read_bytes() == v1
    record = json.loads((out / "dijet-pythia" / "provenance.json").read_text())
    assert {k: v for k, v in record.items() if k != "ganae42"} == v1_record  # the v1 record is untouched
    part = record["ganae42"]
    assert part["outputs"]["ganae42"]["events"] == 700 and "constituents" in part["sources"]
    table = pl.read_parquet(out / "dijet-pythia" / embedded.DIJET_GANAE)
    assert part["outputs"]["ganae42"]["sha256"] == sha256_of(out / "dijet-pythia" / embedded.DIJET_GANAE)
    direct = lhco_raw.read_raw_features(raw_path)
    assert table.equals(direct)
    b = load(DijetPythia, None, features="ganae42", n_signal=30, min_region_events=10)
    assert b.features == jf.GANAE42 and b.features_of(b.test).shape[1] == 42
    assert b.meta["provenance"]["sources"]["constituents"]["sha256"] == part["sources"]["constituents"]["sha256"]
    c = load(DijetPythia, None, n_signal=30, min_region_events=10)  # the default feature set still reads events.parquet
    assert c.features == lhco2020.FEATURES and "constituents" not in c.meta["provenance"]["sources"]
    # cathode4-v2: the CATHODE features of the v2 events, split exactly like ganae42 (same rows, same mjj)
    v = load(DijetPythia, None, features="cathode4-v2", n_signal=30, min_region_events=10)
    assert v.features == lhco2020.FEATURES and v.meta["feature_set"] == "cathode4-v2"
    assert v.train.height == b.train.height and v.test.height == b.test.height
    np.testing.assert_array_equal(v.train[lhco2020.RESONANT].to_numpy(), b.train[lhco2020.RESONANT].to_numpy())
    raw = load(DijetPythia, None, features="cathode4-v2", n_signal=30, min_region_events=10, preprocessing="none")
    bg = direct.filter(pl.col("label") == 0)
    for name in lhco2020.FEATURES:  # the values are the table's own CATHODE columns, row by row (matched on mjj)
        lookup = dict(zip(bg["mjj"].to_list(), bg[name].to_list()))
        assert raw.test[name].to_list() == [lookup[m] for m in raw.test["mjj"].to_list()]
    # a rebuild of events.parquet keeps the ganae42 record (its file is untouched)
    assert build_module().main(["--only", "dijet", "--dijet", str(gen), "--out", str(out),
                                "--dijet-table", "events"]) == 0
    assert json.loads((out / "dijet-pythia" / "provenance.json").read_text())["ganae42"] == part
    # float16 on disk: smaller, read back as float32 within float16 rounding (2^-11 relative)
    size32 = (out / "dijet-pythia" / embedded.DIJET_GANAE).stat().st_size
    assert build_module().main(["--only", "dijet", "--dijet", str(gen), "--out", str(out), "--dijet-float16"]) == 0
    half = pl.read_parquet(out / "dijet-pythia" / embedded.DIJET_GANAE)
    assert half["pt_1"].dtype == pl.Float16 and (out / "dijet-pythia" / embedded.DIJET_GANAE).stat().st_size < size32
    for name in ["mjj", *jf.GANAE42]:
        np.testing.assert_allclose(half[name].cast(pl.Float64).to_numpy(), direct[name].to_numpy(),
                                   rtol=2**-11, atol=1e-7, err_msg=name)
    b16 = load(DijetPythia, None, features="ganae42", n_signal=30, min_region_events=10)
    assert b16.features_of(b16.train).dtype == np.float32 and b16.train.height == b.train.height
