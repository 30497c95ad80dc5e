"""The resonant search protocol: supervised reference, sideband-fit readout, null twins, scans, OOF selection.

The readout's physics is checked against independent computations: a binned
Poisson fit by scipy.optimize on the same histogram, the binomial form of
Z_Bi from scipy.stats, and background-only pseudo-experiments drawn from a
known dijet function (a calibrated test exceeds 2 sigma in ~2 % of them).
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy.optimize import minimize
from scipy.stats import binom, norm

from hepad_bench import Benchmark, ScoredSample, ScoredSignal, Unavailable
from hepad_bench.errors import UserError
from hepad_bench.plugins import load_registry
from hepad_bench.runner import Runner, RunSpec
from hepad_plugins.metrics.sideband import (
    SidebandFit,
    dijet_design,
    dijet_function,
    fit_dijet,
    readout_bins,
    sideband_readout,
    z_bi,
)

META = {"signal_region": [3.3, 3.7], "sidebands": [[None, 3.3], [3.7, None]], "sb_width": None}
TRUE = (2.0e-3, 10.0, 5.0)  # p0, p1, p2 of the dijet function used for pseudo-data (per TeV)


@pytest.fixture(scope="module")
def registry():
    return load_registry(warn=lambda m: None)


# -- the supervised reference --------------------------------------------------------------
def test_supervised_reference_takes_only_background_rows_as_background(registry, tmp_path):
    # resonant data: train holds injected signal (label 1), marked here by f0 = 99
    rng = np.random.default_rng(0)

    def table(n, label, f0=None):
        x = rng.normal(size=(n, 2)).astype(np.float32)
        if f0 is not None:
            x[:, 0] = f0
        return pl.DataFrame({"f0": x[:, 0], "f1": x[:, 1], "mjj": rng.uniform(3, 4, n), "weight": np.ones(n),
                             "process": ["x"] * n, "label": np.full(n, label, dtype=np.int8)})

    train = pl.concat([table(200, 0), table(30, 1, f0=99.0)])
    val = pl.concat([table(50, 0), table(8, 1, f0=99.0)])
    sig = table(100, 1, f0=5.0)
    bench = Benchmark("toy-res", "1", "resonant", ["f0", "f1"], train, val, table(10, 0), {"s": sig},
                      signal_train={"s": sig}, resonant="mjj")
    data = Runner(registry, tmp_path)._training_data(bench, "supervised", "s")
    background = data.x[data.y == 0]
    assert len(background) == 200 and (background[:, 0] != 99.0).all()  # no injected signal taught as background
    assert (data.x[data.y == 1][:, 0] == 5.0).all() and (data.y == 1).sum() == 80  # signal: its own split
    assert (data.x_val[data.y_val == 0][:, 0] != 99.0).all() and (data.y_val == 0).sum() == 50


# -- the dijet fit and the significance -----------------------------------------------------
def test_z_bi_matches_the_binomial_form():
    # tau = b / sigma^2 = 1, n_off = tau b = 100: Z_Bi's p is P(X >= n_on), X ~ Binomial(n_on + n_off, 1/2)
    for n_on in (100, 120, 140, 160):
        p, z = z_bi(n_on, 100.0, 10.0)
        assert p == pytest.approx(binom.sf(n_on - 1, n_on + 100, 0.5), rel=1e-9)
        assert z == pytest.approx(max(0.0, norm.isf(p)), rel=1e-9)
    p, z = z_bi(80, 100.0, 10.0)
    assert z == 0.0 and p > 0.5
    # no background uncertainty: the plain Poisson tail
    from scipy.stats import poisson

    assert z_bi(130, 100.0, 0.0)[0] == pytest.approx(poisson.sf(129, 100.0))


def _histogram(rng, excess=0.0, scale=1.0):
    edges, in_sr, in_sb = readout_bins(META)
    centres, widths = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
    mu = dijet_function(centres, *TRUE) * widths * scale
    mu = mu + excess * np.where(in_sr, np.exp(-0.5 * ((centres - 3.5) / 0.08) ** 2), 0.0)
    return edges, in_sr, in_sb, centres, widths, (mu if rng is None else rng.poisson(mu).astype(float))


def test_fit_recovers_a_known_function_and_predicts_the_sr():
    edges, in_sr, in_sb, centres, widths, counts = _histogram(None, scale=3e5)
    fit = fit_dijet(centres[in_sb], widths[in_sb], counts[in_sb], 3)
    # Asimov data of the 3-parameter function: the fit is exact, so is the SR prediction
    np.testing.assert_allclose(fit.theta, [np.log(TRUE[0] * 3e5), TRUE[1], TRUE[2]], rtol=1e-6)
    assert fit.expected(centres[in_sr], widths[in_sr]).sum() == pytest.approx(counts[in_sr].sum(), rel=1e-8)


def test_fit_agrees_with_scipy_minimize_and_a_numerical_hessian():
    rng = np.random.default_rng(3)
    _, _, in_sb, centres, widths, counts = _histogram(rng, scale=5e4)
    c, w, n = centres[in_sb], widths[in_sb], counts[in_sb]
    fit = fit_dijet(c, w, n, 3)
    g = dijet_design(c, 3)

    def nll(t):
        mu = np.exp(g @ t) * w
        return np.sum(mu - n * np.log(mu))

    ref = minimize(nll, fit.theta + np.array([0.3, -0.5, 0.2]), method="Nelder-Mead",
                   options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 40000, "maxfev": 40000})
    np.testing.assert_allclose(fit.theta, ref.x, atol=2e-4)
    # covariance = inverse of the NLL's Hessian, by central differences (compared as Hessians: the
    # parameters are strongly correlated, so inverting the numerical one would amplify its rounding)
    h, k = 1e-3, len(fit.theta)
    hess = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            e_i, e_j = np.eye(k)[i] * h, np.eye(k)[j] * h
            hess[i, j] = (nll(fit.theta + e_i + e_j) - nll(fit.theta + e_i - e_j)
                          - nll(fit.theta - e_i + e_j) + nll(fit.theta - e_i - e_j)) / (4 * h * h)
    np.testing.assert_allclose(np.linalg.inv(fit.covariance), hess, rtol=1e-4)


def _events(rng, n_bkg, n_sig):
    """Unbinned mjj from the dijet function (inverse-CDF on a fine grid) plus a Gaussian bump at 3.5 TeV."""
    grid = np.linspace(3.0, 4.0, 4001)
    cdf = np.cumsum(dijet_function(grid, *TRUE))
    cdf /= cdf[-1]
    return np.r_[np.interp(rng.random(n_bkg), cdf, grid), rng.normal(3.5, 0.08, n_sig)]


def test_background_only_pseudo_experiments_are_calibrated_and_a_bump_is_found():
    rng = np.random.default_rng(11)
    z_null, z_sig = [], []
    for _ in range(300):
        m = _events(rng, 3000, 0)
        z_null.append(sideband_readout(m, np.ones(len(m)), np.ones(len(m), bool), META).significance)
    for _ in range(30):
        m = _events(rng, 3000, 250)
        z_sig.append(sideband_readout(m, np.ones(len(m)), np.ones(len(m), bool), META).significance)
    z_null = np.array(z_null)
    assert (z_null > 2).mean() < 0.06  # a one-sided 2 sigma test: 2.3 % expected
    assert (z_null > 1).mean() > 0.05  # ... and not trivially conservative
    assert np.median(z_sig) > 2.5


# -- the metric: which events and scores it may use ------------------------------------------
def _sample(mjj, score, label=None):
    return ScoredSample(score=score, weight=np.ones(len(mjj)), mjj=mjj,
                        label=np.zeros(len(mjj), np.int8) if label is None else label)


def _scored(training=None, hunt=None, template=None, region="everywhere"):
    empty = ScoredSample(score=np.zeros(3), weight=np.ones(3))
    return ScoredSignal("s", empty, empty, task="resonant", hunt=hunt, meta=META, training=training,
                        template=template, score_region=region)


def test_out_of_fold_training_scores_are_used_when_present():
    rng = np.random.default_rng(5)
    m = _events(rng, 6000, 300)
    label = np.r_[np.zeros(6000), np.ones(300)].astype(np.int8)
    score = np.where(label == 1, 2.0, 0.0) + rng.normal(size=len(m))  # the signal scores high
    flat = _sample(_events(rng, 6000, 0), rng.normal(size=6000))  # the hunt: nothing in it
    values = SidebandFit().compute(_scored(training=_sample(m, score, label), hunt=flat, region="sr+sidebands"))
    assert values["sb_on_training"] == 1.0 and values["sb_Z@10%"] > 3
    assert values["sb_S_true@10%"] > 100
    values = SidebandFit().compute(_scored(hunt=flat, region="sr+sidebands"))
    assert values["sb_on_training"] == 0.0 and values["sb_Z@10%"] < 3


def test_sr_only_scores_need_a_background_template():
    rng = np.random.default_rng(6)
    m = _events(rng, 6000, 300)
    label = np.r_[np.zeros(6000), np.ones(300)].astype(np.int8)
    score = np.where(label == 1, 2.0, 0.0) + rng.normal(size=len(m))
    hunt = _sample(m, score, label)
    values = SidebandFit().compute(_scored(hunt=hunt, region="sr"))
    assert isinstance(values["sb_Z"], Unavailable) and "signal region only" in values["sb_Z"].reason
    # a template with the background's score distribution: B after the cut = pre-cut fit x its efficiency
    template = ScoredSample(score=rng.normal(size=20000), weight=np.ones(20000))
    values = SidebandFit().compute(_scored(hunt=hunt, template=template, region="sr"))
    assert values["sb_template"] == 1.0 and values["sb_Z@10%"] > 3
    # the same events as out-of-fold training scores: read out on them, still through the template
    on_pool = SidebandFit().compute(_scored(training=hunt, hunt=None, template=template, region="sr"))
    assert on_pool["sb_on_training"] == 1.0 and on_pool["sb_template"] == 1.0
    assert on_pool["sb_Z@10%"] == pytest.approx(values["sb_Z@10%"])
    sr = (m >= 3.3) & (m < 3.7) & (label == 0)
    true_b = (score[sr] >= np.quantile(score[(m >= 3.3) & (m < 3.7)], 0.9)).sum()
    assert values["sb_B@10%"] == pytest.approx(true_b, rel=0.25)


def test_bump_hunt_refuses_scores_trained_for_the_sr():
    from hepad_plugins.metrics.resonant import BumpHunt

    rng = np.random.default_rng(7)
    hunt = _sample(_events(rng, 3000, 100), rng.normal(size=3100))
    values = BumpHunt().compute(_scored(hunt=hunt, region="sr+sidebands"))
    assert all(isinstance(v, Unavailable) for v in values.values())


# -- null twins, scans, validation before training ---------------------------------------------
def test_every_resonant_run_gets_its_background_only_twin(registry, tmp_path):
    runner = Runner(registry, tmp_path)
    specs = runner.expand([RunSpec("dijet-pythia", "cwola", seed=3)])
    assert len(specs) == 2 and specs[1].dataset_options == (("n_signal", "0"),)
    assert specs[1].null_of == () and specs[0].null_of is None
    # the twin is the plain background-only run: same key, same splits
    assert runner.run_key(specs[1]) == runner.run_key(RunSpec("dijet-pythia", "cwola", seed=3,
                                                              dataset_options=(("n_signal", "0"),)))
    assert runner._pairing(specs[0])["null_twin"] == runner.run_key(specs[1])
    assert runner._pairing(specs[1]) == {"null_control": True, "null_control_of": runner.run_key(specs[0])}
    # a background-only run has no twin; unsupervised datasets have none; they can be switched off
    assert len(runner.expand([RunSpec("dijet-pythia", "cwola", dataset_options=(("n_signal", "0"),))])) == 1
    assert len(runner.expand([RunSpec("l1-pythia", "ae")])) == 1
    assert len(runner.expand([RunSpec("dijet-pythia", "cwola")], null_controls=False)) == 1


def test_a_scan_expands_into_windows_each_with_its_twin(registry, tmp_path):
    runner = Runner(registry, tmp_path)
    specs = runner.expand([RunSpec("dijet-pythia", "cwola", dataset_options=(("sr_scan", "3.1:3.9:0.4"),))])
    windows = [dict(s.dataset_options) for s in specs]
    assert [(w["sr_low"], w["sr_high"]) for w in windows[::2]] == [("2.9", "3.3"), ("3.3", "3.7"), ("3.7", "4.1")]
    assert all(w.get("n_signal") == "0" for w in windows[1::2])


@pytest.mark.parametrize("options, message", [
    ((("sr_low", "0.5"), ("sr_high", "0.9")), "outside the data's mjj range"),
    ((("sidebands", "3.0:3.4,3.7:3.9"),), "overlaps the signal region"),
    ((("sr_scan", "3.5:6.5:1.5"),), "holds .* training events, fewer than min_region_events"),
    ((("sb_width", "-0.1"),), "sb_width"),
])
def test_bad_regions_fail_before_any_training(registry, tmp_path, options, message):
    runner = Runner(registry, tmp_path)
    with pytest.raises(UserError, match=message) as err:
        runner.run_all([RunSpec("dijet-pythia", "cwola", dataset_options=options)])
    assert "\n" not in str(err.value)
    assert not (tmp_path / "dijet-pythia").exists()


def test_cwola_run_stores_out_of_fold_scores_and_its_null_twin(registry, tmp_path):
    params = (("epochs", "2"), ("k_folds", "3"), ("hidden", "8"))
    results = Runner(registry, tmp_path).run_all([RunSpec("dijet-pythia", "cwola", seed=1, params=params)])
    assert [r.status for r in results] == ["ok", "ok"]
    signal_run, null_run = (json.loads((r.folder / "run.json").read_text()) for r in results)
    assert signal_run["null_twin"] == null_run["key"] and null_run["null_control_of"] == signal_run["key"]
    assert signal_run["detector"]["score_region"] == "sr+sidebands"
    assert null_run["dataset_meta"]["n_signal_injected"] == {"train": 0, "validation": 0, "hunt": 0}
    scores = pl.read_parquet(results[0].folder / "scores.parquet")
    oof = scores.filter((pl.col("sample") == "training") & pl.col("score").is_not_nan())
    bench = Runner(registry, tmp_path).benchmark(RunSpec("dijet-pythia", "cwola"))
    pool = pl.concat([bench.train, bench.validation])
    mjj = pool["mjj"].to_numpy()
    # exactly the SR + adjacent 0.2 TeV sideband rows of train + validation, with their mjj and truth
    expected = np.flatnonzero((mjj >= 3.1) & (mjj < 3.9))
    np.testing.assert_array_equal(np.sort(oof["event"].to_numpy()), expected)
    np.testing.assert_allclose(oof.sort("event")["mjj"].to_numpy(), mjj[expected].astype(np.float64))
    assert oof["label"].sum() == pool["label"].to_numpy()[expected].sum() > 0
    assert scores.filter(pl.col("sample") == "training").height == pool.height  # unscored rows kept (NaN)
    metrics = json.loads((results[0].folder / "metrics.json").read_text())["wprime"]
    assert metrics["sb_on_training"] == 1.0
    assert "trained for 'sr+sidebands'" in metrics["bump_global_sig@10%"]["unavailable"]


def test_leaderboard_shows_the_fake_discovery_rate_of_the_null_twins(tmp_path):
    from hepad_bench import store
    from hepad_bench.leaderboard.collect import collect_sections
    from hepad_bench.leaderboard.resonant import write_resonant_tables

    def put(key, options, seed, metrics, **extra):
        run = {"key": key, "dataset": {"name": "d", "version": "1", "options": options, "max_events": None},
               "detector": {"name": "cwola", "version": "2", "config": {}, "kind": "weakly_supervised"},
               "seed": seed, "status": "ok", "task": "resonant", "signals": ["s"]} | extra
        no_scores = pl.DataFrame(schema=store.SCORE_SCHEMA)  # the leaderboard skips a run without a scores file
        store.write_run(tmp_path / "res" / "d" / "cwola" / key, run, no_scores, {"s": metrics})

    z_signal, z_null = [4.0, 5.0, 3.0], [0.5, 2.5, 1.9]  # one null seed above 2 sigma
    for seed, (zs, zn) in enumerate(zip(z_signal, z_null)):
        readout = {"sb_on_training": 0.0, "sb_template": 1.0, "sb_N@10%": 60.0 + seed, "sb_S_true@10%": 10.0,
                   "sb_B@10%": 50.0, "sb_closure@10%": 1.1 + 0.1 * seed}
        put(f"sig{seed}", {"n_signal": 550}, seed, {"sb_Z": zs} | readout, null_twin=f"null{seed}")
        put(f"null{seed}", {"n_signal": 0}, seed, {"sb_Z": zn, "mass_dcorr_sr": 0.1, "mass_dcorr_sb": 0.2},
            null_control=True, null_control_of=f"sig{seed}")
    written: list = []
    lines = write_resonant_tables(collect_sections(tmp_path / "res"), tmp_path / "out", written)
    table = pl.read_csv(next(p for p in written if p.name == "resonant.csv"))
    assert table.row(0, named=True) | {} == {"detector": "cwola", "signal": "s", "seeds": 3, "z_mean": 4.0,
                                             "null_runs": 3, "null_above_2sigma": 1, "null_z_max": 2.5}
    text = "\n".join(lines)
    assert "| cwola | s | 4.00 ± 1.00 | 1/3 [" in text and "0.10 ± 0.00" in text
    # the sample read, and what the 10 % cut saw there (means over seeds: N 61, S 10, B 50; closure 1.2 +- 0.1)
    assert "| 2.50 | hunt, SR template | 61 / 10 / 50 | 1.20 ± 0.10 | 0.10 ± 0.00 |" in text


def test_search_picks_the_best_window_and_corrects_for_every_window_and_cut():
    from types import SimpleNamespace

    from hepad_bench import search

    def window(low, p, status="ok"):
        run = {"dataset": {"name": "d", "options": {"sr_scan": "3.1:3.9:0.4", "sr_low": low, "sr_high": low + 0.4}},
               "detector": {"name": "cwola", "config": {}}, "seed": 1, "signals": ["s"],
               "dataset_meta": {"scan": {"spec": "3.1:3.9:0.4", "windows": 3}, "signal_region": [low, low + 0.4]}}
        metrics = {"s": {"sb_p_min": p, "sb_trials": 2.0}} if p is not None else {"s": {"sb_p_min": {"unavailable": "x"}}}
        return SimpleNamespace(run=run, metrics=metrics, status=status)

    (found,) = search.summarise([window(2.9, 0.2), window(3.3, 1e-4), window(3.7, None)])
    assert found.best.signal_region == pytest.approx((3.3, 3.7)) and found.best.z_local == pytest.approx(norm.isf(1e-4))
    assert found.trials == 4  # two windows read out, two cuts each
    assert found.p_global == pytest.approx(1 - (1 - 1e-4) ** 4)
    assert found.z_global == pytest.approx(norm.isf(1 - (1 - 1e-4) ** 4))
    assert [w.status for w in found.windows] == ["ok", "ok", "no readout"]
