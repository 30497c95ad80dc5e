"""CATHODE and LaCATHODE on a toy whose background x | mjj is a known Gaussian.

Background: mjj falls exponentially over 2.5-5 TeV; f1 ~ N(SLOPE (mjj - 3.5), 1)
(its mean moves with the mass, as the jet masses do), f2 ~ N(0, 1). Signal:
mjj ~ N(3.5, 0.05), (f1, f2) ~ N((2.5, 2.5), 0.3), in the 3.3-3.7 TeV signal
region. Every check compares with that analytic truth (scipy.stats) or an
independent library (sklearn's AUC, dcor's distance correlation).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score

from hepad_bench import FitContext, Progress, TrainingData, UserError
from hepad_plugins.regions import region_masks as readout_masks
from hepad_plugins.detectors import _flow_cache as flow_cache
from hepad_plugins.detectors.cathode import Cathode, CathodeConfig, LaCathode, sample_sr_masses
from hepad_plugins.detectors.weak import ClassifierConfig, CWoLa, region_masks, signal_region

SLOPE = 1.5
SR = (3.3, 3.7)
FEATURES = ["mjj", "f1", "f2"]
FAST = CathodeConfig(flow_transforms=3, flow_hidden=(32, 32), flow_epochs=60, flow_lr=3e-3, flow_patience=10,
                     epochs=20, batch_size=256, patience=5)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def background(rng, n):
    mjj = 2.5 + rng.exponential(0.6, size=3 * n)
    mjj = mjj[mjj < 5.0][:n]
    f1 = rng.normal(SLOPE * (mjj - 3.5), 1.0)
    f2 = rng.normal(0.0, 1.0, size=len(mjj))
    return np.column_stack([mjj, f1, f2]).astype(np.float32)


def signal(rng, n):
    mjj = rng.normal(3.5, 0.05, size=n)
    f = rng.normal(2.5, 0.3, size=(n, 2))
    return np.column_stack([mjj, f]).astype(np.float32)


def toy(seed=0, n_bkg=8000, n_sig=250):
    rng = np.random.default_rng(seed)

    def data(n_b, n_s):
        x = np.concatenate([background(rng, n_b), signal(rng, n_s)])
        return x, x[:, 0].astype(np.float64)

    x, mjj = data(n_bkg, n_sig)
    x_val, mjj_val = data(n_bkg // 4, n_sig // 4)
    train = TrainingData(features=FEATURES, x=x, weight=np.ones(len(x)), x_val=x_val,
                         weight_val=np.ones(len(x_val)), mjj=mjj, mjj_val=mjj_val, task="resonant",
                         meta={"signal_region": list(SR)})
    return train, rng


@pytest.fixture(scope="module")
def fitted():
    """Both detectors fitted once on the same toy (seconds each)."""
    train, rng = toy()
    dets = {}
    for cls in (Cathode, LaCathode):
        det = cls(FAST)
        det.fit(train, FitContext(seed=3))
        dets[cls.name] = det
    return train, dets, rng


def in_sr(x):
    return (x[:, 0] >= SR[0]) & (x[:, 0] < SR[1])


def test_cathode_samples_follow_the_true_sr_background(fitted):
    train, dets, _ = fitted
    det = dets["cathode"]
    sr_data = in_sr(np.concatenate([train.x, train.x_val]))
    samples, masses = det.template, det.template_mjj
    assert len(samples) == FAST.oversampling * sr_data.sum()
    assert masses.min() >= SR[0] and masses.max() <= SR[1]
    # the mass KDE follows the signal-region spectrum (background dominates it)
    sr_mjj = np.concatenate([train.mjj, train.mjj_val])[sr_data]
    assert stats.ks_2samp(masses, sr_mjj).statistic < 0.05
    # f1 given its sampled mass is N(SLOPE (m - 3.5), 1); f2 is N(0, 1): the flow never saw the SR
    resid = samples[:, 0] - SLOPE * (masses - 3.5)
    assert stats.kstest(resid, "norm").statistic < 0.05
    assert stats.kstest(samples[:, 1], "norm").statistic < 0.05
    # and it is a background template: nothing piles up where the signal sits
    near_signal = (np.abs(samples[:, 0] - 2.5) < 0.6) & (np.abs(samples[:, 1] - 2.5) < 0.6)
    assert near_signal.mean() < 0.01


def test_lacathode_latents_of_background_are_standard_normal_at_every_mass(fitted):
    _, dets, _ = fitted
    rng = np.random.default_rng(11)
    bkg = background(rng, 60000)
    z = dets["lacathode"].flow.latent(bkg[:, 1:].astype(np.float64), bkg[:, 0].astype(np.float64))
    for lo, hi in [(2.5, 2.9), (3.3, 3.7), (3.9, 4.5)]:  # lower sideband, signal region, upper sideband
        sel = (bkg[:, 0] >= lo) & (bkg[:, 0] < hi)
        assert sel.sum() > 2000
        for j in range(2):
            zj = z[sel, j]
            assert abs(zj.mean()) < 0.15 and abs(zj.std() - 1) < 0.15  # a flow blind to mjj: f1 off by ~0.9
            assert stats.kstest(zj, "norm").statistic < 0.06
        assert abs(np.corrcoef(z[sel].T)[0, 1]) < 0.1


@pytest.mark.parametrize("name", ["cathode", "lacathode"])
def test_both_separate_the_injected_signal(fitted, name):
    _, dets, _ = fitted
    rng = np.random.default_rng(12)
    bkg = background(rng, 20000)
    bkg = bkg[in_sr(bkg)]
    sig = signal(rng, 1000)
    det = dets[name]
    s_b = det.score(bkg, mjj=bkg[:, 0].astype(np.float64))
    s_s = det.score(sig, mjj=sig[:, 0].astype(np.float64))
    assert s_b.dtype == np.float64 and np.isfinite(s_b).all() and np.isfinite(s_s).all()
    auc = roc_auc_score(np.r_[np.zeros(len(s_b)), np.ones(len(s_s))], np.r_[s_b, s_s])
    assert auc > 0.9


def test_lacathode_score_does_not_learn_mjj_while_feature_space_classifiers_do(fitted):
    dcor = pytest.importorskip("dcor")
    train, dets, _ = fitted
    # background only, masses uniform over the full range so that the sidebands weigh as much as the SR
    rng = np.random.default_rng(13)
    mjj = rng.uniform(2.5, 5.0, size=3000)
    bkg = np.column_stack([mjj, rng.normal(SLOPE * (mjj - 3.5), 1.0), rng.normal(0.0, 1.0, size=len(mjj))])
    bkg = bkg.astype(np.float32)

    def dcorr(det):
        return float(dcor.distance_correlation(det.score(bkg, mjj=mjj), mjj))

    cwola = CWoLa(ClassifierConfig(k_folds=3, epochs=10, patience=5))
    cwola.fit(train, FitContext(seed=3))
    naive = dcorr(cwola)  # SR vs SB on the raw features: learns where f1 sits in the SR
    assert naive > 0.2
    assert dcorr(dets["cathode"]) > 0.2  # the feature-space score applied outside the SR sculpts too
    # (seeds 3-5 of this toy: cathode 0.26-0.34, lacathode 0.05-0.06; independent samples give ~0.03)
    assert dcorr(dets["lacathode"]) < 0.1


def test_sr_masses_stay_in_the_region_and_follow_the_data():
    rng = np.random.default_rng(0)
    m = 3.3 + rng.exponential(0.2, size=20000)
    m = m[m < 3.7]
    drawn = sample_sr_masses(m, 20000, SR, 0.01, seed=1)
    assert drawn.min() >= SR[0] and drawn.max() <= SR[1]
    assert stats.ks_2samp(drawn, m).pvalue > 0.01


def test_deterministic_for_a_seed(monkeypatch):
    monkeypatch.setenv(flow_cache.ENV_SWITCH, "0")  # every fit trains its own flow: this checks the fit itself
    train, rng = toy(seed=5, n_bkg=2000, n_sig=50)
    cfg = dataclasses.replace(FAST, flow_epochs=2, epochs=2, flow_transforms=1, flow_hidden=(8,))
    test = background(rng, 300)
    for cls in (Cathode, LaCathode):
        scores = []
        for seed in (7, 7, 8):
            det = cls(cfg)
            det.fit(train, FitContext(seed=seed))
            scores.append(det.score(test, mjj=test[:, 0].astype(np.float64)))
        np.testing.assert_array_equal(scores[0], scores[1])
        assert not np.array_equal(scores[0], scores[2])


def test_cathode_template_closes_on_held_out_sideband_background(fitted):
    """The flow fits the toy's background: its sideband samples and fresh background pass a cut alike (ratio ~ 1)."""
    from hepad_bench import ScoredSample
    from hepad_plugins.metrics.sideband import sideband_closure

    _, dets, _ = fitted
    det = dets["cathode"]
    template, template_mjj = det.background_template()
    held_out = background(np.random.default_rng(77), 60000)
    meta = {"signal_region": list(SR)}
    _, sb = readout_masks(held_out[:, 0], meta, default="adjacent")
    held_out = held_out[sb]
    data = ScoredSample(score=det.score(held_out, held_out[:, 0]), weight=np.ones(len(held_out)), mjj=held_out[:, 0])
    tmpl = ScoredSample(score=template, weight=np.ones(len(template)), mjj=template_mjj)
    closure = sideband_closure(tmpl, data, 0.1, meta)
    assert closure.n_data > 1000 and closure.n_template > 1000
    assert abs(closure.ratio - 1.0) < 3 * closure.ratio_error + 0.05


def test_lacathode_may_score_outside_the_signal_region_and_cathode_reads_out_on_its_template():
    assert LaCathode.score_region == "everywhere" and Cathode.score_region == "sr"
    train, _ = toy(seed=9, n_bkg=2000, n_sig=50)
    cfg = dataclasses.replace(FAST, flow_epochs=2, epochs=2, flow_transforms=1, flow_hidden=(8,))
    det = Cathode(cfg)
    det.fit(train, FitContext(seed=1))
    mjj = np.concatenate([train.mjj, train.mjj_val])
    sr, _ = region_masks(mjj, train.meta)
    oof = det.training_scores()
    # one out-of-fold score per SR row of train + validation, none elsewhere
    assert oof.shape == mjj.shape and np.isfinite(oof[sr]).all() and np.isnan(oof[~sr]).all()
    template, template_mjj = det.background_template()
    low, high = signal_region(train.meta)
    in_sr = (template_mjj >= low) & (template_mjj <= high)
    assert len(template) == len(template_mjj) and in_sr.sum() == cfg.oversampling * int(sr.sum())
    # the rest: flow samples in the readout's adjacent sidebands, oversampling x their pool events, for the closure
    readout_sr, readout_sb = readout_masks(mjj, train.meta, default="adjacent")
    assert (~in_sr).sum() == cfg.oversampling * int(readout_sb.sum())
    _, template_sb = readout_masks(template_mjj, train.meta, default="adjacent")
    assert np.array_equal(template_sb, ~in_sr) and np.isfinite(template).all()
    # the sideband samples are scored like the held-out data they are checked against (the fold ensemble)
    x_sb = det.flow.sample(template_mjj[~in_sr], 0)  # any draw: only checks the scoring path, not the values
    assert np.isfinite(det.score(np.column_stack([template_mjj[~in_sr], x_sb]), template_mjj[~in_sr])).all()
    assert LaCathode(cfg).background_template() is None


def test_bad_input_is_a_one_line_error_before_training():
    with pytest.raises(ValueError, match="oversampling"):
        CathodeConfig(oversampling=0)
    with pytest.raises(ValueError):
        CathodeConfig(k_folds=2)
    train, _ = toy(seed=6, n_bkg=500, n_sig=0)
    no_mjj = dataclasses.replace(train, mjj=None)
    with pytest.raises(UserError, match="mjj"):
        Cathode(FAST).fit(no_mjj, FitContext(seed=0))
    empty_sr = dataclasses.replace(train, meta={"signal_region": [9.0, 9.5]})
    with pytest.raises(UserError, match="signal-region"):
        LaCathode(FAST).fit(empty_sr, FitContext(seed=0))


def test_registered_through_entry_point():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="hepad_bench") if e.name == "detectors_cathode"]
    assert ep.load().hepad_detectors() == [Cathode, LaCathode]
    assert {Cathode.kind, LaCathode.kind} == {"weakly_supervised"} and Cathode.tasks == ("resonant",)


class _Warnings(Progress):
    def __init__(self):
        self.seen = []

    def warn(self, message):
        self.seen.append(message)


def _fit_scores(cls, train, cfg, test, seed=7):
    det = cls(cfg)
    progress = _Warnings()
    det.fit(train, FitContext(seed=seed, progress=progress))
    return det, det.score(test, mjj=test[:, 0].astype(np.float64)), progress.seen


def test_lacathode_reuses_cathodes_sideband_flow_with_the_scores_of_its_own_fit(monkeypatch):
    train, rng = toy(seed=6, n_bkg=2000, n_sig=50)
    cfg = dataclasses.replace(FAST, flow_epochs=3, epochs=2, flow_transforms=1, flow_hidden=(8,))
    test = np.concatenate([background(rng, 300), signal(rng, 30)])
    monkeypatch.setenv(flow_cache.ENV_SWITCH, "0")
    _, own, _ = _fit_scores(LaCathode, train, cfg, test)
    monkeypatch.delenv(flow_cache.ENV_SWITCH)
    cathode, _, _ = _fit_scores(Cathode, train, cfg, test)
    lacathode, shared, warned = _fit_scores(LaCathode, train, cfg, test)
    assert cathode.training_summary()["sideband_flow"] == "fitted"
    assert lacathode.training_summary()["sideband_flow"] == "reused"
    assert lacathode.training_summary()["sideband_flow_key"] == cathode.training_summary()["sideband_flow_key"]
    assert not warned
    np.testing.assert_array_equal(shared, own)  # bit for bit: the reused flow is the flow it would have fitted
    # another seed, or other data, is another flow
    assert _fit_scores(LaCathode, train, cfg, test, seed=8)[0].training_summary()["sideband_flow"] == "fitted"
    other, _ = toy(seed=9, n_bkg=2000, n_sig=50)
    assert _fit_scores(LaCathode, other, cfg, test)[0].training_summary()["sideband_flow"] == "fitted"


def test_a_damaged_flow_cache_entry_is_discarded_with_a_warning_and_the_flow_fitted_again():
    train, rng = toy(seed=6, n_bkg=2000, n_sig=50)
    cfg = dataclasses.replace(FAST, flow_epochs=3, epochs=2, flow_transforms=1, flow_hidden=(8,))
    test = background(rng, 300)
    first, scores, _ = _fit_scores(Cathode, train, cfg, test)
    (entry,) = flow_cache.folder().glob("*.pt")
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))
    again, rescored, warned = _fit_scores(Cathode, train, cfg, test)
    assert again.training_summary()["sideband_flow"] == "fitted"
    assert len(warned) == 1 and entry.name in warned[0] and "sha256" in warned[0]
    np.testing.assert_array_equal(rescored, scores)
    assert _fit_scores(Cathode, train, cfg, test)[0].training_summary()["sideband_flow"] == "reused"  # rewritten
