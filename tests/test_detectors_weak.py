"""CWoLa hunting and the idealised anomaly detector on a small resonant toy.

The toy (also used by the ANODE tests): background mjj ~ 2.5 TeV + exponential
(scale 0.5 TeV) cut at 5 TeV, four standard-normal features independent of
mjj; signal mjj ~ N(3.5, 0.1) TeV with every feature's mean shifted by
``shift``; signal region 3.3-3.7 TeV. Held-out test sets are signal-region
background and signal, as the runner scores them.

Note on "no signal": the area under the ROC curve is invariant under any
monotonic rescaling, so a classifier that learnt (almost) nothing still ranks
the shifted signal by whatever tiny random slope it has; its AUC then scatters
widely around 0.5 (0.1-0.75 on this toy). The scale-aware statement is that
the learnt log-likelihood ratio is flat: the mean score of signal and
background differ by ~0 instead of by more than one unit, and the regions
cannot be told apart out of fold.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from hepad_bench import FitContext, TrainingData, UserError
from hepad_plugins.detectors.weak import (
    ClassifierConfig,
    CWoLa,
    Idealised,
    assign_folds,
    fold_roles,
    kfold_classifier,
    region_masks,
)

SR = (3.3, 3.7)
FEATURES = ["mjj", "f1", "f2", "f3", "f4"]
FAST = ClassifierConfig(hidden=(32, 32), epochs=20)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


# -- the toy -------------------------------------------------------------------------------
def _background(rng, n):
    mjj = 2.5 + rng.exponential(0.5, size=4 * n)
    return mjj[mjj < 5.0][:n], rng.normal(size=(n, 4))


def _signal(rng, n, shift):
    return rng.normal(3.5, 0.1, size=n), rng.normal(loc=shift, size=(n, 4))


def _in_sr(mjj):
    return (mjj >= SR[0]) & (mjj < SR[1])


def _table(mjj, f):
    return np.column_stack([mjj, f]).astype(np.float32)  # mjj first, as in the LHCO features


def _data(rng, n_bkg, n_sig, shift):
    mb, fb = _background(rng, n_bkg)
    ms, fs = _signal(rng, n_sig, shift)
    mjj = np.r_[mb, ms]
    order = rng.permutation(len(mjj))
    return _table(mjj, np.r_[fb, fs])[order], mjj[order]


def _sr_sample(rng, draw, n):
    mjj, f = draw(rng, 40 * n)
    sel = _in_sr(mjj)
    return _table(mjj[sel][:n], f[sel][:n])


def resonant_toy(seed=0, n_bkg=4000, n_sig=300, shift=1.0, n_test=1500, meta=None):
    """(TrainingData, held-out signal-region {"background", "signal"} feature matrices)."""
    rng = np.random.default_rng(seed)
    x, mjj = _data(rng, n_bkg, n_sig, shift)
    x_val, mjj_val = _data(rng, n_bkg // 4, n_sig // 4, shift)
    model = _sr_sample(rng, _background, n_test)
    test_bkg = _sr_sample(rng, _background, n_test)
    test_sig = _sr_sample(rng, lambda r, n: _signal(r, n, shift), n_test)
    train = TrainingData(
        features=list(FEATURES), x=x, weight=np.ones(len(x)), x_val=x_val, weight_val=np.ones(len(x_val)),
        mjj=mjj, mjj_val=mjj_val, task="resonant",
        extra={"background_model": model, "background_model_mjj": model[:, 0].astype(np.float64),
               "background_model_weight": np.ones(len(model))},
        meta={"sr_low": SR[0], "sr_high": SR[1]} if meta is None else meta,
    )
    return train, {"background": test_bkg, "signal": test_sig}


def auc(score_bkg, score_sig):
    return roc_auc_score(np.r_[np.zeros(len(score_bkg)), np.ones(len(score_sig))], np.r_[score_bkg, score_sig])


def fit_and_score(cls, train, held, config=FAST, seed=0):
    det = cls(config)
    det.fit(train, FitContext(seed=seed))
    scores = {k: det.score(v, mjj=v[:, 0].astype(np.float64)) for k, v in held.items()}
    return det, scores["background"], scores["signal"]


# -- regions -------------------------------------------------------------------------------
def test_region_masks_by_hand():
    mjj = np.array([2.0, 3.29, 3.3, 3.5, 3.7, 4.5, 6.0])
    sr, sb = region_masks(mjj, {"sr_low": 3.3, "sr_high": 3.7})
    assert sr.tolist() == [False, False, True, True, False, False, False]
    assert sb.tolist() == [True, True, False, False, True, True, True]
    _, sb = region_masks(mjj, {"sr_low": 3.3, "sr_high": 3.7, "sb_low": 2.5, "sb_high": 5.0})
    assert sb.tolist() == [False, True, False, False, True, True, False]
    # the LHCO loaders' form: signal_region [low, high], sidebands [[low, high], ...] with open ends
    sr, sb = region_masks(mjj, {"signal_region": [3.3, 3.7], "sidebands": [[None, 3.3], [3.7, None]]})
    assert sr.tolist() == [False, False, True, True, False, False, False]
    assert sb.tolist() == [True, True, False, False, True, True, True]
    _, sb = region_masks(mjj, {"signal_region": [3.3, 3.7], "sidebands": [[3.0, 3.3], [3.7, 5.0]]})
    assert sb.tolist() == [False, True, False, False, True, True, False]


def test_missing_signal_region_is_a_user_error():
    train, _ = resonant_toy(n_bkg=500, n_sig=0, n_test=50, meta={})
    with pytest.raises(UserError, match="signal region"):
        CWoLa(FAST).fit(train, FitContext(seed=0))


# -- physics -------------------------------------------------------------------------------
def test_cwola_finds_injected_signal():
    train, held = resonant_toy(seed=0, n_sig=300)
    det, s_bkg, s_sig = fit_and_score(CWoLa, train, held)
    assert s_bkg.dtype == np.float64 and np.isfinite(s_bkg).all() and np.isfinite(s_sig).all()
    assert auc(s_bkg, s_sig) > 0.8
    assert s_sig.mean() - s_bkg.mean() > 0.7  # learnt log likelihood ratio rises towards the signal
    # out of fold, the classifier separates signal region from sidebands (the signal sits in the SR)
    x, mjj = np.r_[train.x, train.x_val], np.r_[train.mjj, train.mjj_val]
    sr, sb = region_masks(mjj, train.meta, default="adjacent")
    oof = det.training_scores()
    assert len(oof) == len(x)  # one value per pool row: train then validation
    assert np.isnan(oof[~(sr | sb)]).all() and np.isfinite(oof[sr | sb]).all()  # trained on SR + adjacent SBs only
    assert ((mjj[sb] >= 3.1) & (mjj[sb] < 3.9)).all()  # CWoLa hunting's 0.2 TeV windows
    np.testing.assert_array_equal(oof[sr | sb], det.result.oof_logit)
    assert roc_auc_score(sr[sr | sb], oof[sr | sb]) > 0.56


def test_cwola_without_signal_learns_a_flat_ratio():
    train, held = resonant_toy(seed=1, n_sig=0)
    det, s_bkg, s_sig = fit_and_score(CWoLa, train, held)
    assert abs(s_sig.mean() - s_bkg.mean()) < 0.15
    assert s_bkg.std() < 0.15
    oof = det.training_scores()
    sr, sb = region_masks(np.r_[train.mjj, train.mjj_val], train.meta, default="adjacent")
    assert abs(roc_auc_score(sr[sr | sb], oof[sr | sb]) - 0.5) < 0.06


def test_idealised_finds_injected_signal():
    train, held = resonant_toy(seed=2, n_sig=300)
    _, s_bkg, s_sig = fit_and_score(Idealised, train, held)
    assert auc(s_bkg, s_sig) > 0.8
    assert s_sig.mean() - s_bkg.mean() > 0.7


def test_idealised_needs_the_background_model():
    train, _ = resonant_toy(n_bkg=500, n_sig=0, n_test=50)
    train.extra = {}
    with pytest.raises(UserError, match="background_model"):
        Idealised(FAST).fit(train, FitContext(seed=0))


def test_mjj_column_is_not_a_classifier_input():
    # a feature named mjj must be dropped: a classifier fed mjj would separate SR/SB perfectly
    train, _ = resonant_toy(seed=3, n_bkg=1500, n_sig=0, n_test=50)
    det = CWoLa(ClassifierConfig(hidden=(16,), epochs=3))
    det.fit(train, FitContext(seed=0))
    assert det.result.models[0][0].in_features == 4
    x = train.x.copy()
    x[:, 0] = 100.0  # the mjj column may change arbitrarily without changing the score
    np.testing.assert_array_equal(det.score(x), det.score(train.x))


# -- k-folding -----------------------------------------------------------------------------
def test_fold_assignment_and_roles():
    fold = assign_folds(103, 5, np.random.default_rng(0))
    assert sorted(np.bincount(fold).tolist()) == [20, 20, 21, 21, 21]
    for j in range(5):
        tr, va, held = fold_roles(fold, j, 5)
        assert (held == (fold == j)).all() and (va == (fold == (j + 1) % 5)).all()
        assert not (tr & (held | va)).any() and (tr | va | held).all()


def test_each_event_is_scored_by_the_model_that_did_not_see_it():
    # Random labels: only memorisation can fit them. Each fold model must
    # memorise its own training folds yet know nothing of its held-out fold.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 4))
    y = (rng.random(300) < 0.5).astype(np.float32)
    cfg = ClassifierConfig(k_folds=5, hidden=(64, 64), epochs=80, batch_size=64, lr=1e-2,
                           weight_decay=0.0, patience=0)
    ctx = FitContext(seed=0)
    res = kfold_classifier(x, y, np.ones(300), cfg, ctx, "memorise")
    np.testing.assert_array_equal(res.fold, assign_folds(300, 5, ctx.rng(101)))
    xs = torch.as_tensor((x - res.mean) / res.scale, dtype=torch.float32)
    for j, model in enumerate(res.models):
        with torch.inference_mode():
            logit = model(xs).squeeze(-1).double().numpy()
        tr, _, held = fold_roles(res.fold, j, 5)
        np.testing.assert_allclose(res.oof_logit[held], logit[held], rtol=1e-6, atol=1e-6)
        assert roc_auc_score(y[tr], logit[tr]) > 0.95  # memorised what it saw
    # ... and nothing it did not see (chance AUC has a spread of ~0.033 for 300 events)
    assert abs(roc_auc_score(y, res.oof_logit) - 0.5) < 0.12


# -- conventions ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [CWoLa, Idealised])
def test_deterministic_for_a_seed(cls):
    train, held = resonant_toy(seed=4, n_bkg=1500, n_sig=100, n_test=200)
    cfg = ClassifierConfig(hidden=(16,), epochs=4)
    _, a, _ = fit_and_score(cls, train, held, cfg, seed=7)
    _, b, _ = fit_and_score(cls, train, held, cfg, seed=7)
    _, c, _ = fit_and_score(cls, train, held, cfg, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_config_validation():
    with pytest.raises(ValueError):
        ClassifierConfig(k_folds=2)


def test_model_cost_counts_all_k_fold_models_of_the_ensemble():
    train, held = resonant_toy(seed=1, n_bkg=1500, n_sig=100, n_test=100)
    cfg = ClassifierConfig(k_folds=4, hidden=(8, 6), epochs=1)
    det, _, _ = fit_and_score(CWoLa, train, held, cfg)
    widths = [len(FEATURES) - 1, 8, 6, 1]  # mjj is not an input
    macs = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    cost = det.model_cost(held["background"], held["background"][:, 0].astype(np.float64))
    assert cost.macs_per_event == 4 * macs and cost.parameters == 4 * (macs + sum(widths[1:]))
