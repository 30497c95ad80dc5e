"""lhco2020 loader: features against an independent computation, partition, injection, errors, caching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from hepad_bench.contracts import Progress
from hepad_bench.errors import DataError, UserError
from hepad_bench.params import build_config
from hepad_plugins.datasets import lhco2020
from hepad_plugins.datasets.lhco2020 import COLUMNS, FEATURES, LHCO2020


def fake_dijets(n_background: int, n_signal: int, seed: int = 0) -> pd.DataFrame:
    """TEST FIXTURE, not physics data: the public LHCO R&D columns (GeV) with plausible shapes:
    a falling QCD-like mjj spectrum and a W'-like bump at 3.5 TeV with 500 / 100 GeV jets."""
    rng = np.random.default_rng(seed)

    def events(n, pt, m1, m2, tau21, label, eta_spread=1.0):
        phi = rng.uniform(-np.pi, np.pi, n)
        eta1, eta2 = rng.normal(0, eta_spread, n), rng.normal(0, eta_spread, n)
        out = {}
        for k, (eta, ph, m) in enumerate(((eta1, phi, m1), (eta2, phi + np.pi, m2)), start=1):
            jet_pt = pt * rng.uniform(0.9, 1.0, n)
            out[f"pxj{k}"], out[f"pyj{k}"] = jet_pt * np.cos(ph), jet_pt * np.sin(ph)
            out[f"pzj{k}"], out[f"mj{k}"] = jet_pt * np.sinh(eta), m
            tau1 = rng.uniform(0.2, 0.8, n)
            out[f"tau1j{k}"], out[f"tau2j{k}"] = tau1, tau1 * tau21(n)
            out[f"tau3j{k}"] = out[f"tau2j{k}"] * rng.uniform(0.5, 0.9, n)
        out["label"] = np.full(n, label, dtype=float)
        return pd.DataFrame(out)

    bg = events(n_background, 1200 + rng.exponential(400, n_background), rng.exponential(80, n_background) + 10,
                rng.exponential(80, n_background) + 10, lambda n: rng.uniform(0.4, 0.95, n), 0)
    sig_m = np.where(rng.random(n_signal) < 0.5, 500.0, 100.0)
    sig = events(n_signal, np.full(n_signal, 1800.0), sig_m + rng.normal(0, 10, n_signal),
                 600.0 - sig_m + rng.normal(0, 10, n_signal), lambda n: rng.uniform(0.1, 0.4, n), 1, eta_spread=0.3)
    sig.loc[sig.index[:3], "tau1j1"] = 0.0  # the degenerate case: tau21 defined as 0
    sig.loc[sig.index[:3], "tau2j1"] = 0.0
    return pd.concat([bg, sig], ignore_index=True)[COLUMNS]


def write_lhco(folder: Path, n_background: int = 4000, n_signal: int = 600, seed: int = 0) -> Path:
    """TEST FIXTURE: a pandas HDF5 file in the public layout, under the public name."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / lhco2020.FILE
    fake_dijets(n_background, n_signal, seed).to_hdf(path, key="df")
    return path


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPAD_BENCH_CACHE", str(tmp_path / "cache"))


class LogProgress(Progress):
    def __init__(self):
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


def load(data_dir, progress=None, **options):
    opts = build_config(LHCO2020.Options, {k: str(v) for k, v in options.items()}, "lhco2020")
    return LHCO2020(opts).load(data_dir, progress or LogProgress())


def test_features_match_an_independent_computation(tmp_path):
    frame = fake_dijets(300, 50)
    got = lhco2020.dijet_features(pl.from_pandas(frame))
    j1 = frame[["pxj1", "pyj1", "pzj1", "mj1"]].to_numpy()
    j2 = frame[["pxj2", "pyj2", "pzj2", "mj2"]].to_numpy()
    # m^2 = m1^2 + m2^2 + 2 (E1 E2 - p1.p2): a different route than (E1+E2)^2 - |p1+p2|^2
    e1 = np.sqrt((j1[:, :3] ** 2).sum(1) + j1[:, 3] ** 2)
    e2 = np.sqrt((j2[:, :3] ** 2).sum(1) + j2[:, 3] ** 2)
    mjj = np.sqrt(j1[:, 3] ** 2 + j2[:, 3] ** 2 + 2 * (e1 * e2 - (j1[:, :3] * j2[:, :3]).sum(1))) / 1000
    np.testing.assert_allclose(got["mjj"].to_numpy(), mjj, rtol=1e-5)
    for i in range(len(frame)):  # per event, by hand: which jet is lighter
        row = frame.iloc[i]
        light, heavy = (1, 2) if row.mj1 <= row.mj2 else (2, 1)
        t21 = lambda k: row[f"tau2j{k}"] / row[f"tau1j{k}"] if row[f"tau1j{k}"] > 0 else 0.0  # noqa: E731
        assert got["mj_light"][i] == pytest.approx(row[f"mj{light}"] / 1000, rel=1e-6)
        assert got["mj_diff"][i] == pytest.approx((row[f"mj{heavy}"] - row[f"mj{light}"]) / 1000, rel=1e-5, abs=1e-7)
        assert got["tau21_light"][i] == pytest.approx(t21(light), rel=1e-6)
        assert got["tau21_heavy"][i] == pytest.approx(t21(heavy), rel=1e-6)
    assert got["label"].to_list() == frame["label"].astype(int).to_list()
    assert all(got[c].dtype == pl.Float32 for c in ["mjj", *FEATURES])
    # the signal bump sits near 3.5 TeV
    assert 3.0 < np.median(got.filter(pl.col("label") == 1)["mjj"].to_numpy()) < 3.6


def test_partition_is_disjoint_and_follows_the_options(tmp_path):
    write_lhco(tmp_path / "d")
    bench = load(tmp_path / "d", preprocessing="none", n_signal=100)
    assert bench.task == "resonant" and bench.resonant == "mjj" and bench.features == FEATURES
    sr = bench.meta["signal_region"]
    assert sr == [3.3, 3.7]
    cols = ["mjj", *FEATURES]
    everything = pl.concat([t.select(cols) for t in bench.tables().values()])
    assert everything.n_unique() == everything.height  # no event in two tables
    for name in ("test", "signal/wprime", "extra/background_model"):
        m = bench.tables()[name]["mjj"].to_numpy()
        assert ((m >= 3.3) & (m < 3.7)).all() and len(m) > 0
    assert (bench.test["label"] == 0).all() and (bench.signals["wprime"]["label"] == 1).all()
    # data covers sidebands too, with the injected count split in proportion to the background
    assert (bench.train["mjj"] < 3.3).sum() > 0 and (bench.train["mjj"] >= 3.7).sum() > 0
    # n_signal is per full background sample: each data split gets its background share of it
    inj = bench.meta["n_signal_injected"]
    assert inj == {"train": 45, "validation": 10, "hunt": 15}
    assert bench.meta["injected_s_over_b"] == pytest.approx(100 / 4000)
    for name, table in (("train", bench.train), ("validation", bench.validation), ("hunt", bench.extra["hunt"])):
        labels = table["label"].to_numpy()
        assert labels.sum() / (labels == 0).sum() == pytest.approx(100 / 4000, rel=0.05), name  # same S/B everywhere
    assert bench.train.filter(pl.col("label") == 0).height == int(4000 * 0.45)
    assert bench.extra["hunt"].filter(pl.col("label") == 0).height == int(4000 * 0.15)
    # signal held for the reference and the test, none of it injected
    assert bench.signal_train["wprime"].height == (600 - 45 - 10 - 15) // 2
    # the S/B in the SR is what the tables say
    sr_data = pl.concat([bench.train, bench.validation]).filter((pl.col("mjj") >= 3.3) & (pl.col("mjj") < 3.7))
    s = int(sr_data["label"].sum())
    assert bench.meta["signal_region_data"]["s_over_b"] == pytest.approx(s / (sr_data.height - s))
    comp = bench.meta["sr_composition"]
    hunt_sr = bench.extra["hunt"].filter((pl.col("mjj") >= 3.3) & (pl.col("mjj") < 3.7))
    s_h = int(hunt_sr["label"].sum())
    assert comp["hunt"]["signal"] == s_h and comp["hunt"]["s_over_sqrt_b"] == pytest.approx(s_h / np.sqrt(hunt_sr.height - s_h))
    assert comp["test"] == {"signal": bench.signals["wprime"].height, "background": bench.test.height,
                            "s_over_b": pytest.approx(bench.signals["wprime"].height / bench.test.height),
                            "s_over_sqrt_b": pytest.approx(bench.signals["wprime"].height / np.sqrt(bench.test.height))}
    assert json.loads(json.dumps(bench.meta)) == bench.meta  # run.json records it as it is
    # injected signal is spread through the table (head(k) keeps signal)
    assert bench.train.head(bench.train.height // 2)["label"].sum() > 0


def test_mjj_range_and_signal_region_options(tmp_path):
    write_lhco(tmp_path / "d")
    bench = load(tmp_path / "d", preprocessing="none", mjj_min=2.0, mjj_max=5.0, sr_low=3.2, sr_high=3.8)
    for t in (bench.train, bench.validation, bench.extra["hunt"]):
        assert t["mjj"].min() >= 2.0 and t["mjj"].max() < 5.0
    assert bench.test["mjj"].min() >= 3.2 and bench.test["mjj"].max() < 3.8
    assert bench.meta["sidebands"] == [[2.0, 3.2], [3.8, 5.0]]
    with pytest.raises(UserError, match="signal region"):
        build_config(LHCO2020.Options, ["mjj_max=3.5"], "dataset lhco2020")
    bench = load(tmp_path / "d", preprocessing="none", sb_width=0.3)
    assert bench.meta["sideband_override"] == [[3.0, 3.3], [3.7, pytest.approx(4.0)]]


@pytest.mark.parametrize("options, message", [
    ({"sr_low": 40.0, "sr_high": 41.0}, "outside the data's mjj range"),
    ({"sidebands": "3.0:3.2,3.6:3.9"}, "overlaps the signal region"),
    ({"sidebands": "3.0:3.3,3.9:3.8"}, "is empty"),
    ({"sb_width": 0.2, "sidebands": "3.0:3.3,3.7:3.9"}, "not both"),
    ({"sr_scan": "3.5:3.0:0.1"}, "LOW <= HIGH"),
    ({"min_region_events": 100000}, "fewer than min_region_events"),
])
def test_bad_regions_are_one_line_user_errors(tmp_path, options, message):
    write_lhco(tmp_path / "d")
    with pytest.raises(UserError, match=message) as err:
        load(tmp_path / "d", **options)
    assert "\n" not in str(err.value)


def test_scan_windows_and_null_twin_options():
    opts = build_config(LHCO2020.Options, ["sr_scan=3.0:3.4:0.2", "sr_low=3.3", "sr_high=3.5"], "lhco2020")
    assert LHCO2020(opts).scan_options() == [(("sr_low", "2.9"), ("sr_high", "3.1")), (("sr_low", "3.1"), ("sr_high", "3.3")),
                                             (("sr_low", "3.3"), ("sr_high", "3.5"))]
    assert LHCO2020().scan_options() == [] and LHCO2020.null_options == (("n_signal", "0"),)


def test_standardisation_fitted_on_training_data(tmp_path):
    write_lhco(tmp_path / "d")
    raw = load(tmp_path / "d", preprocessing="none")
    pre = load(tmp_path / "d")
    x = raw.features_of(raw.train).astype(np.float64)
    mean, std = x.mean(0), x.std(0)
    np.testing.assert_allclose(pre.features_of(pre.train), (x - mean) / std, atol=1e-5)
    xt = raw.features_of(raw.test).astype(np.float64)
    np.testing.assert_allclose(pre.features_of(pre.test), (xt - mean) / std, atol=1e-5)
    np.testing.assert_array_equal(pre.test["mjj"].to_numpy(), raw.test["mjj"].to_numpy())  # mjj untouched


def test_deterministic_splits_and_capped_injection(tmp_path, monkeypatch):
    write_lhco(tmp_path / "d", n_signal=200)
    progress = LogProgress()
    a = load(tmp_path / "d", progress)  # default n_signal=1000 > half of 200: capped
    assert sum(a.meta["n_signal_injected"].values()) <= 100
    assert any("injecting" in line for line in progress.lines)
    monkeypatch.setenv("HEPAD_BENCH_CACHE", str(tmp_path / "other-cache"))
    b = load(tmp_path / "d")
    assert a.train.equals(b.train) and a.extra["hunt"].equals(b.extra["hunt"])
    c = load(tmp_path / "d", seed=3)
    assert not a.train.equals(c.train)


def test_missing_file_and_wrong_file(tmp_path):
    with pytest.raises(UserError) as err:
        load(tmp_path)
    assert "zenodo.org/records/4536377" in str(err.value) and "hepad-bench datasets fetch lhco2020" in str(err.value)
    path = tmp_path / lhco2020.FILE
    fake_dijets(50, 10).drop(columns=["tau2j2"]).to_hdf(path, key="df")
    with pytest.raises(DataError) as err:
        load(tmp_path)
    assert str(path) in str(err.value) and "tau2j2" in str(err.value) and "\n" not in str(err.value)
    path.write_text("not hdf5")
    with pytest.raises(DataError, match="not a readable pandas HDF5"):
        load(tmp_path)


def test_second_load_reads_the_cache(tmp_path, monkeypatch):
    write_lhco(tmp_path / "d")
    first = load(tmp_path / "d")

    def refuse(*_a, **_k):
        raise AssertionError("HDF5 read on a cache hit")

    monkeypatch.setattr(pd, "read_hdf", refuse)
    again = load(tmp_path / "d")
    assert again.train.equals(first.train) and again.extra["background_model"].equals(first.extra["background_model"])
    assert load(tmp_path / "d", n_signal=20).meta["n_signal_injected"]["train"] == 9


def test_fetch_uses_the_public_url(monkeypatch):
    import pooch

    seen = []
    monkeypatch.setattr(pooch, "retrieve", lambda url, known_hash, fname, path, progressbar:
                        seen.append((url, known_hash, progressbar)) or str(Path(path) / fname))
    (path,) = LHCO2020().fetch(Progress())
    assert path.name == lhco2020.FILE
    assert seen == [("https://zenodo.org/records/4536377/files/events_anomalydetection_v2.features.h5?download=1",
                     None, True)]
