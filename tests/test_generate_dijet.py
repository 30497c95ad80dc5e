"""The LHCO-R&D-like dijet generator: jet glue, output table, reproducibility, physics."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from hepad_bench.contracts import Progress
from hepad_plugins.generators import dijet
from hepad_plugins.generators.nsubjettiness import nsubjettiness

LHCO_COLUMNS = (
    "pxj1 pyj1 pzj1 mj1 tau1j1 tau2j1 tau3j1 pxj2 pyj2 pzj2 mj2 tau1j2 tau2j2 tau3j2 label".split()
)


def massless(pt, y, phi):
    return [pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(y), pt * math.cosh(y)]


def invariant_mass(p):
    return math.sqrt(max(p[3] ** 2 - p[0] ** 2 - p[1] ** 2 - p[2] ** 2, 0.0))


def test_cluster_dijets_on_a_hand_made_event():
    # Two well separated groups (each fits in R = 1.0) and a soft forward particle.
    lead = [massless(800, 0.1, 0.0), massless(600, 0.2, 0.3), massless(10, -0.1, 0.1)]  # pT ~ 1400
    second = [massless(900, -0.5, 3.0), massless(300, -0.3, -3.1)]  # pT ~ 1190
    soft = [massless(30, 2.0, 1.5)]
    event = np.array(soft + second + lead)
    below_trigger = np.array([massless(1100, 0.0, 0.0), massless(1000, 0.0, 3.0)])
    out = dijet.cluster_dijets([event, below_trigger, np.array(lead[:1])])
    assert out["passed"].tolist() == [True, False, False]  # pT cut; one jet only
    for slot, group in (("1", lead), ("2", second)):
        total = np.sum(group, axis=0)
        assert [out[f"pxj{slot}"][0], out[f"pyj{slot}"][0], out[f"pzj{slot}"][0]] == pytest.approx(total[:3], rel=1e-9)
        assert out[f"mj{slot}"][0] == pytest.approx(invariant_mass(total), rel=1e-7)
        taus = nsubjettiness(np.array(group))
        assert [out[f"tau{n}j{slot}"][0] for n in (1, 2, 3)] == pytest.approx(taus.tolist(), rel=1e-9)
    assert out["tau2j2"][0] == 0.0 and out["tau1j2"][0] > 0  # two particles: a perfect 2-prong


def test_signal_settings_build_the_lhco_topology():
    settings = "\n".join(dijet.pythia_settings("signal", seed=1))
    assert "34:m0 = 3500" in settings and "37:m0 = 500" in settings and "36:m0 = 100" in settings
    assert "34:oneChannel = 1 1.0 100 37 36" in settings
    with pytest.raises(ValueError, match="unknown dijet process"):
        dijet.pythia_settings("ttbar", seed=1)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A tiny sample: 120 QCD + 120 signal events, one worker."""
    out = tmp_path_factory.mktemp("dijet")
    paths = dijet.generate(out, events=120, seed=7, signal_events=120, workers=1, progress=Progress())
    return out, paths


def test_output_table_is_the_lhco_features_layout(sample):
    out, paths = sample
    h5 = out / "events_anomalydetection_v2.features.h5"
    assert h5 in paths
    df = pd.read_hdf(h5)
    assert list(df.columns) == LHCO_COLUMNS
    assert len(df) == 240 and df["label"].value_counts().to_dict() == {0: 120, 1: 120}
    assert np.isfinite(df.to_numpy()).all()
    # Both jets exist, jet 1 is the leading-pT jet and passes the 1.2 TeV filter.
    pt1, pt2 = np.hypot(df.pxj1, df.pyj1), np.hypot(df.pxj2, df.pyj2)
    assert (pt1 > 1200).all() and (pt2 > 20).all() and (pt1 >= pt2).all()
    for j in ("j1", "j2"):
        # Exclusive-kT axes do not minimise tau_N, so tau3 > tau2 can happen; the typical jet still orders them.
        taus = df[[f"tau1{j}", f"tau2{j}", f"tau3{j}"]].to_numpy()
        assert (taus >= 0).all() and (taus[:, 0] < 1.5).all()
        assert np.mean(taus[:, 0] > 0) > 0.95  # a one-particle jet (a lone photon, say) has tau1 = 0
        assert np.mean(taus[:, 0] > taus[:, 1]) > 0.9 and np.mean(taus[:, 1] > taus[:, 2]) > 0.7
    with pd.HDFStore(h5, mode="r") as store:
        record = json.loads(store.get_storer("df").attrs.hepad_generation)
    sidecar = json.loads((out / "events_anomalydetection_v2.features.json").read_text())
    assert record == sidecar
    assert record["seed"] == 7 and record["cuts"]["generation_qcd_pTHatMin_GeV"] == dijet.PTHAT_MIN_GEV
    for name in ("qcd", "signal"):
        proc = record["processes"][name]
        assert proc["sigma_gen_mb"] > 0 and 0 < proc["filter_efficiency"] <= 1
    assert record["versions"]["pythia8mc"].startswith("8.3")


def _mjj(df):
    e1 = np.sqrt(df.pxj1**2 + df.pyj1**2 + df.pzj1**2 + df.mj1**2)
    e2 = np.sqrt(df.pxj2**2 + df.pyj2**2 + df.pzj2**2 + df.mj2**2)
    return np.sqrt((e1 + e2) ** 2 - (df.pxj1 + df.pxj2) ** 2 - (df.pyj1 + df.pyj2) ** 2 - (df.pzj1 + df.pzj2) ** 2)


def test_signal_physics(sample):
    df = pd.read_hdf(sample[0] / "events_anomalydetection_v2.features.h5")
    sig, qcd = df[df.label == 1], df[df.label == 0]
    # The W' peak: radiation out of the two R = 1 jets pulls mjj a little below 3.5 TeV.
    assert 3200 < np.median(_mjj(sig)) < 3650
    assert np.mean(np.abs(_mjj(sig) - 3500) < 300) > 0.6
    heavy = np.maximum(sig.mj1, sig.mj2)
    light = np.minimum(sig.mj1, sig.mj2)
    assert 430 < np.median(heavy) < 560  # X (500 GeV)
    assert 80 < np.median(light) < 170  # Y (100 GeV), UE and ISR add mass to a R = 1 jet
    assert np.mean(np.abs(heavy - 500) < 60) > 0.5
    # QCD: a falling mjj spectrum from the trigger threshold, light jets.
    assert np.median(_mjj(qcd)) < 3200 and np.median(np.maximum(qcd.mj1, qcd.mj2)) < 400
    # Two-prong signal jets have a lower tau21 than QCD jets.
    for j in ("j1", "j2"):
        tau21_sig = (sig[f"tau2{j}"] / sig[f"tau1{j}"]).mean()
        tau21_qcd = (qcd[f"tau2{j}"] / qcd[f"tau1{j}"]).mean()
        assert tau21_sig < tau21_qcd - 0.1


def test_same_seed_same_table_other_seed_other_table(tmp_path):
    def table(seed, where, constituents=True):
        dijet.generate(tmp_path / where, events=15, seed=seed, signal_events=10, workers=1, progress=Progress(),
                       constituents=constituents)
        return pd.read_hdf(tmp_path / where / "events_anomalydetection_v2.features.h5")

    first, again, other = table(5, "a"), table(5, "b", constituents=False), table(6, "c")
    pd.testing.assert_frame_equal(first, again, check_exact=True)  # writing the constituents changes nothing
    assert (tmp_path / "a" / "events_anomalydetection_v2.h5").is_file()
    assert not (tmp_path / "b" / "events_anomalydetection_v2.h5").exists()
    raw_a = pd.read_hdf(tmp_path / "a" / "events_anomalydetection_v2.h5")
    raw_c = pd.read_hdf(tmp_path / "c" / "events_anomalydetection_v2.h5")
    assert not np.allclose(raw_a.to_numpy(), raw_c.to_numpy())
    assert not np.allclose(first.drop(columns="label").to_numpy(), other.drop(columns="label").to_numpy())


def test_bad_event_counts_are_refused(tmp_path):
    with pytest.raises(ValueError, match="positive number of events"):
        dijet.generate(tmp_path, events=0, seed=1, signal_events=0, workers=1, progress=Progress())


def test_constituent_file_is_the_lhco_raw_layout_of_the_same_events(sample):
    from hepad_plugins.datasets import lhco_raw

    out, paths = sample
    raw_path = out / "events_anomalydetection_v2.h5"
    assert raw_path in paths
    raw = pd.read_hdf(raw_path).to_numpy()
    df = pd.read_hdf(out / "events_anomalydetection_v2.features.h5")
    assert raw.shape == (240, 2101) and raw.dtype == np.float32
    assert raw[:, -1].tolist() == df["label"].tolist()  # same rows, same order
    pt = raw[:, :-1:3]
    assert (np.diff(pt, axis=1) <= 0).all()  # pT-ordered, zero padding at the end
    n = (pt > 0).sum(axis=1)
    assert (n > 20).all() and n.max() < 700
    # Reclustering the written constituents gives back the two jets: the massless particles keep pT, y and
    # phi, so the jets' pT match the features file (float32 storage may move a rare particle on a jet edge).
    f = lhco_raw.read_raw_features(raw_path)
    for k in (1, 2):
        rel = np.abs(f[f"pt_{k}"].to_numpy() * 1000 / np.hypot(df[f"pxj{k}"], df[f"pyj{k}"]) - 1)
        assert np.mean(rel < 1e-5) > 0.97 and rel.max() < 0.03
        # massless constituents make lighter jets (E drops from mT cosh y to pT cosh y), by a few per cent
        massive = df[f"mj{k}"].to_numpy() > 1.0  # (a one-particle jet is massless either way)
        ratio = f[f"mass_{k}"].to_numpy()[massive] * 1000 / df[f"mj{k}"].to_numpy()[massive]
        assert np.mean(ratio < 1 + 1e-4) > 0.97 and 0.9 < np.median(ratio) < 1
        rings = f.select([f"eRing{i}_{k}" for i in range(10)]).to_numpy().sum(axis=1)
        assert (rings <= 1 + 1e-5).all() and np.median(rings) > 0.999
    # GAN-AE's view of the signal: the heavy X (500 GeV) jet, two-prong jets (low tau21), more subjets
    sig, qcd = f.filter(f["label"] == 1), f.filter(f["label"] == 0)
    heavy = np.maximum(sig["mass_1"].to_numpy(), sig["mass_2"].to_numpy())
    assert 0.4 < np.median(heavy) < 0.56
    assert sig["tau21_1"].mean() < qcd["tau21_1"].mean() - 0.1
