"""l1 version 3 (l+X@HLT-like): pile-up with charged-hadron subtraction, the HLT record, b tagging, the
21 l+X@HLT features by hand, and physics on small generated samples (pile-up in isolation, Z peak, mixture)."""

from __future__ import annotations

import json
from dataclasses import replace

import h5py
import numpy as np
import pytest

from hepad_plugins.datasets import lx_hlt
from hepad_plugins.generators import detector_sim as ds
from hepad_plugins.generators import l1
from hepad_plugins.generators.pythia_util import heavy_flavour

NO_SMEAR = ds.DetectorConfig(smear=False, iso_max=0.5)
#: V3 with a small pile-up pool: the physics is the same, the pool costs a second instead of five.
SMALL_V3 = replace(l1.V3, pileup_pool=40)
COL = {name: i for i, name in enumerate(ds.HLT_COLUMNS)}


def particle(event, pid, pt, eta, phi, m=0.0, pileup=False):
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return (event, pid, px, py, pz, np.sqrt(px * px + py * py + pz * pz + m * m), pileup)


def batch(rows):
    a = np.array(sorted(rows, key=lambda r: r[0]), dtype=float)
    return ds.Particles(a[:, 0].astype(int), a[:, 1].astype(int), a[:, 2], a[:, 3], a[:, 4], a[:, 5],
                        a[:, 6].astype(bool))


# ---- detector: pile-up and the HLT record by hand ------------------------------------------------------

def test_charged_pileup_is_subtracted_neutral_pileup_enters_isolation():
    rows = [
        particle(0, 11, 40.0, 0.0, 0.0),                               # the trigger electron (e-: charge -1)
        particle(0, 211, 1.5, 0.25, 0.0, 0.14),                        # hard pi+ in the cone: charged sum 1.5
        particle(0, 211, 3.0, 0.1, 0.0, 0.14, pileup=True),            # pile-up pi+ in the tracker: subtracted
        particle(0, 2112, 2.0, 0.0, 0.2, 0.94, pileup=True),           # pile-up neutron: neutral-hadron sum 2
        particle(0, 22, 1.0, -0.15, 0.0, pileup=True),                 # pile-up photon: photon sum 1
        particle(0, 111, 0.5, 0.0, -0.1, 0.135),                       # pi0 counts as photons: 1.5 in all
        particle(0, 321, 4.0, 2.8, 1.0, 0.49, pileup=True),            # outside the tracker: not subtracted
    ]
    out, trig, hlt = ds.simulate_hlt(batch(rows), 1, np.random.default_rng(0), NO_SMEAR)
    assert trig.tolist() == [True]
    assert hlt[0, COL["lep_charge"]] == -1
    assert hlt[0, COL["iso_charged"]] == pytest.approx(1.5)
    assert hlt[0, COL["iso_neutral_hadron"]] == pytest.approx(2.0)
    assert hlt[0, COL["iso_photon"]] == pytest.approx(1.5)
    # Charged hadrons (pT > 0.5, |eta| < 2.5): both pi+ (pile-up counts); the K+ is at eta 2.8. One neutron.
    assert hlt[0, COL["n_charged_hadrons"]] == 2
    assert hlt[0, COL["n_neutral_hadrons"]] == 1
    # MET is minus the sum of EVERY visible particle, subtracted pile-up included.
    a = np.array(rows, dtype=float)
    expected = np.hypot(a[:, 2].sum(), a[:, 3].sum())
    assert out[0, 0, 0] == pytest.approx(expected, rel=1e-5)
    # Relative isolation (1.5 + 2 + 1.5) / 40 = 0.125: kept at 0.5, lost at the v2 cut 0.1.
    _, trig_tight, _ = ds.simulate_hlt(batch(rows), 1, np.random.default_rng(0), replace(NO_SMEAR, iso_max=0.1))
    assert trig_tight.tolist() == [False]


def test_subtracted_pileup_stays_out_of_jets():
    hard = [particle(0, 13, 30.0, -1.0, 0.0), particle(0, 211, 40.0, 1.0, 2.0, 0.14)]
    with_pu = hard + [particle(0, 211, 10.0, 1.1, 2.0, 0.14, pileup=True),       # subtracted
                      particle(0, 130, 6.0, 0.9, 2.0, 0.5, pileup=True)]         # neutral: joins the jet
    jet_pt = []
    for rows in (hard, with_pu):
        out, _, _ = ds.simulate_hlt(batch(rows), 1, np.random.default_rng(0), NO_SMEAR)
        jet_pt.append(out[0, ds.JET_ROWS.start, 0])
    assert jet_pt[0] == pytest.approx(40.0, rel=1e-3)
    assert jet_pt[1] == pytest.approx(46.0, rel=2e-3)


def test_b_tagging_by_flavour_label():
    rows = [particle(0, 11, 40.0, 0.0, 0.0),
            particle(0, 211, 50.0, 1.0, 2.0, 0.14),    # b jet (a B hadron 0.1 away)
            particle(0, 211, 45.0, -1.0, -2.0, 0.14),  # light jet
            particle(0, 211, 20.0, 0.0, 3.0, 0.14)]    # b jet below 30 GeV: not counted
    heavy = ds.HeavyHadrons(np.array([0, 0]), np.array([5, 5]), np.array([1.1, 0.0]), np.array([2.0, 3.0]))
    certain = replace(NO_SMEAR, btag_eff_b=1.0, btag_mistag=0.0)
    _, _, hlt = ds.simulate_hlt(batch(rows), 1, np.random.default_rng(0), certain, heavy)
    assert hlt[0, COL["n_b"]] == 1
    all_tagged = replace(certain, btag_mistag=1.0)
    _, _, hlt = ds.simulate_hlt(batch(rows), 1, np.random.default_rng(0), all_tagged, heavy)
    assert hlt[0, COL["n_b"]] == 2  # the light jet too; the 20 GeV one stays out of the S_T jets
    _, _, hlt = ds.simulate_hlt(batch(rows), 1, np.random.default_rng(0), certain, None)
    assert hlt[0, COL["n_b"]] == 0  # no flavour labels, no mistags


@pytest.mark.parametrize("pid,flavour", [(511, 5), (-521, 5), (531, 5), (553, 5), (5122, 5), (-5232, 5),
                                         (421, 4), (443, 4), (4122, 4), (-431, 4), (211, 0), (2212, 0),
                                         (3122, 0), (15, 0), (5, 0), (1000022, 0), (2101, 0)])
def test_heavy_flavour_of_pdg_codes(pid, flavour):
    assert heavy_flavour(pid) == flavour


def test_particle_categories_agree_with_pythia_charges():
    pytest.importorskip("pythia8mc")
    from hepad_plugins.generators.pythia_util import make_pythia

    pythia = make_pythia(("HardQCD:hardbbbar = on", "PhaseSpace:pTHatMin = 20"), 3)
    pids = set()
    while len(pids) < 20:
        if pythia.next():
            pids |= {p.id() for p in pythia.event.particles() if p.isFinal()}
    pids = np.array(sorted(pids))
    cat = ds.particle_category(np.abs(pids))
    data = pythia.particleData
    charged = np.array([data.charge(int(p)) != 0 for p in pids])
    assert np.all((cat == 0) == charged), pids[(cat == 0) != charged]


def test_natural_taus_drop_the_forced_decays():
    h0 = "hToTauTau_13TeV_PU20_filtered"
    assert any(line.startswith("15:") for line in l1.settings_for(h0))
    assert not any(line.startswith("15:") for line in l1.settings_for(h0, natural_taus=True))
    assert "25:onIfMatch = 15 -15" in l1.settings_for(h0, natural_taus=True)
    assert l1.forced_branching(h0, l1.V3) == 1.0 and l1.forced_branching(h0, l1.L1Config()) == pytest.approx(0.352)


# ---- the 21 l+X@HLT features of a hand-worked event ------------------------------------------------------

def hand_event():
    p = np.zeros((1, ds.N_ROWS, 4), dtype=np.float32)
    p[0, 0] = (20.0, 0.0, np.pi / 3, 1)                 # MET 20 GeV at phi pi/3
    p[0, 1] = (40.0, 0.0, 0.0, 2)                       # trigger electron
    p[0, 2] = (10.0, 0.0, np.pi, 2)                     # second electron, back to back
    p[0, 5] = (32.0, 1.0, np.pi / 2, 3)                 # a muon
    j = ds.JET_ROWS.start
    p[0, j] = (50.0, 0.5, np.pi, 4)
    p[0, j + 1] = (40.0, 3.0, 0.0, 4)                   # |eta| > 2.6: not an S_T jet
    p[0, j + 2] = (35.0, -1.0, -np.pi / 2, 4)
    p[0, j + 3] = (25.0, 0.0, 1.0, 4)                   # below 30 GeV
    hlt = np.array([[1.0, 0.5, 0.25, 0.75, 1.0, 120.0, 15.0]], dtype=np.float32)
    return p, hlt


def test_lx_hlt_features_by_hand():
    f = lx_hlt.lx_hlt_features(*hand_event()).row(0, named=True)
    assert list(lx_hlt.lx_hlt_features(*hand_event()).columns) == lx_hlt.FEATURES and len(lx_hlt.FEATURES) == 21
    assert f["lep_pt"] == 40 and f["is_electron"] == 1 and f["lep_charge"] == 1
    assert (f["iso_charged"], f["iso_neutral_hadron"], f["iso_photon"]) == (0.5, 0.25, 0.75)
    assert f["s_t"] == pytest.approx(40 + 32 + 50 + 35)           # the 10 GeV electron and two jets are out
    assert f["n_jets"] == 2 and f["n_b"] == 1
    # massless dijet: m^2 = 2 pT1 pT2 (cosh d_eta - cos d_phi), d_eta 1.5, d_phi 3 pi / 2
    assert f["m_jets"] == pytest.approx(np.sqrt(2 * 50 * 35 * (np.cosh(1.5) - np.cos(1.5 * np.pi))), rel=1e-5)
    assert f["met_parallel"] == pytest.approx(10.0, abs=1e-4)
    assert f["met_perpendicular"] == pytest.approx(20 * np.sin(np.pi / 3), rel=1e-5)
    assert f["m_t"] == pytest.approx(np.sqrt(2 * 40 * 20 * 0.5), rel=1e-5)
    assert (f["n_mu"], f["m_mu"], f["pt_mu_total"]) == pytest.approx((1, 0, 32), abs=1e-3)
    # e+e back to back: m = sqrt(2 * 40 * 10 * 2) = 40, vector pT sum 30
    assert (f["n_e"], f["m_e"], f["pt_e_total"]) == pytest.approx((2, 40, 30), rel=1e-5)
    assert (f["n_charged_hadrons"], f["n_neutral_hadrons"]) == (120, 15)


def test_lx_hlt_features_pick_the_muon_when_it_leads():
    p, hlt = hand_event()
    p[0, 5, 0] = 60.0
    f = lx_hlt.lx_hlt_features(p, hlt).row(0, named=True)
    assert f["is_electron"] == 0 and f["lep_pt"] == 60
    # lepton at phi pi/2, MET at pi/3: dphi = -pi/6
    assert f["met_perpendicular"] == pytest.approx(-10.0, abs=1e-4)


def test_lx_hlt_features_reject_a_wrong_shape():
    from hepad_bench.errors import DataError

    p, hlt = hand_event()
    with pytest.raises(DataError, match="HLT"):
        lx_hlt.lx_hlt_features(p, hlt[:, :5])


def test_rates_from_seed_004_table():
    rates = lx_hlt.process_rates_hz()
    assert rates["W"] == pytest.approx(110e6 / (30 * 86400))         # 42.4 Hz
    assert sum(rates.values()) == pytest.approx(185.6e6 / 2592000)    # 71.6 Hz
    # the table's event fractions (59.2 / 33.8 / 6.7 / 0.3 %) follow from its events/month
    total = sum(rates.values())
    for p, frac in {"W": 0.592, "QCD": 0.338, "Z": 0.067, "ttbar": 0.003}.items():
        assert rates[p] / total == pytest.approx(frac, abs=0.003)


# ---- generated physics (small samples) ------------------------------------------------------------------

@pytest.fixture(scope="module")
def w_pileup_pair():
    """The same W events (same seeds) with and without pile-up."""
    return (l1.pilot_chunk("W", 200, 21, config=SMALL_V3),
            l1.pilot_chunk("W", 200, 21, config=replace(SMALL_V3, pileup_mu=0.0)))


def test_pileup_raises_neutral_isolation_and_counts(w_pileup_pair):
    pu, nopu = w_pileup_pair
    both = pu["passed"] & nopu["passed"]
    assert both.sum() > 30
    neutral = [c["HLT"][both][:, COL["iso_neutral_hadron"]] + c["HLT"][both][:, COL["iso_photon"]] for c in (pu, nopu)]
    # mu = 20 minimum-bias interactions put about 0.1-0.2 GeV each of neutral pT in a 0.3 cone
    assert neutral[0].mean() - neutral[1].mean() > 1.0
    assert np.mean(neutral[0] >= neutral[1] - 1e-3) > 0.9
    n_pu = pu["NPileup"][pu["passed"]]
    assert 17 < n_pu.mean() < 23 and n_pu.var() == pytest.approx(n_pu.mean(), rel=0.5)  # Poisson(20)
    assert np.all(nopu["NPileup"] == 0)
    counts = [c["HLT"][both][:, COL["n_charged_hadrons"]].mean() for c in (pu, nopu)]
    assert counts[0] > counts[1] + 100


@pytest.fixture(scope="module")
def z_v3():
    return l1.make_chunk("Z", 80, 22, config=SMALL_V3)


def test_z_peak_survives_pileup(z_v3):
    p = z_v3["Particles"]
    masses = []
    for rows in (slice(1, 3), slice(5, 7)):
        two = p[:, rows].astype(np.float64)
        ok = np.all(two[:, :, 3] > 0, axis=1)
        pt, eta, phi = two[ok][..., 0], two[ok][..., 1], two[ok][..., 2]
        px, py, pz, e = ((pt * f).sum(1) for f in (np.cos(phi), np.sin(phi), np.sinh(eta), np.cosh(eta)))
        masses.append(np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0)))
    m = np.concatenate(masses)
    assert len(m) > 25
    peak = m[(m > 70) & (m < 110)]
    assert np.median(peak) == pytest.approx(91.2, abs=2.5)
    assert len(peak) > 0.6 * len(m)


def test_v3_mixture_follows_cross_section_arithmetic(tmp_path, monkeypatch):
    """End to end: the background counts per process are total x sigma_i eff_i / sum (recomputed here)."""
    monkeypatch.setattr(l1, "pilot_tries", lambda events: 100)
    monkeypatch.setattr(l1, "QCD_PILOT_FACTOR", 1)
    monkeypatch.setattr(l1, "BATCH", 50)
    monkeypatch.setattr(l1, "SIGNAL_SETTINGS", {})
    from hepad_bench.contracts import Progress

    # QCD (filter efficiency ~1e-3) keeps its pilot events only, as in version 2: a test cannot afford more
    l1.generate(tmp_path, 50, 7, 0, 1, Progress(), chunk_size=50, config=replace(SMALL_V3, min_main_efficiency=0.05))
    with h5py.File(tmp_path / l1.BACKGROUND_FILE) as f:
        info = json.loads(f.attrs["processes"])
        names = json.loads(f.attrs["process_names"])
        procs, weights, hlt, n_pu = f["Process"][:], f["Weight"][:], f["HLT"][:], f["NPileup"][:]
        assert [n.decode() for n in f["HLT_Names"][:]] == list(ds.HLT_COLUMNS)
        assert f.attrs["pileup_mu"] == 20.0 and f.attrs["generator_version"] == 3
        particles = f["Particles"][:]
    assert particles.shape[1:] == (19, 4) and hlt.shape == (len(particles), 7) and len(particles) <= 50
    sigma_eff = {p: info[p]["sigma_gen_pb"] * info[p]["n_passed"] / info[p]["n_tried"] for p in names}
    total = sum(sigma_eff.values())
    for i, p in enumerate(names):
        n = int(np.sum(procs == i))
        # the pilot's estimate sets the counts, the record holds pilot + main: equal within their statistics
        # (a pilot-only process may fall short of its count: it has no more events)
        f_p = sigma_eff[p] / total
        near = abs(n - 50 * f_p) <= max(2.0, 3.0 * np.sqrt(50 * f_p * (1 - f_p)))
        assert n <= info[p]["n_passed"] and (near or n == info[p]["n_passed"]), (p, n, sigma_eff)
        if n:
            assert weights[procs == i].sum() == pytest.approx(sigma_eff[p], rel=1e-6)
    assert np.all(n_pu > 0)
    # every event carries its trigger lepton's charge
    assert set(np.unique(hlt[:, COL["lep_charge"]])) <= {-1.0, 1.0}
    # and the 21 features can be read from the file
    table, extras = lx_hlt.read_generated(tmp_path / l1.BACKGROUND_FILE)
    assert table.height == len(particles) and np.all(table["lep_pt"].to_numpy() > 23)
    assert np.array_equal(extras["Process"], procs)


def test_the_view_reads_the_columns_the_generator_writes():
    assert lx_hlt.HLT_COLUMNS == ds.HLT_COLUMNS


# ---- QCD with a pTHat bias (the cheaper QCD plan of the l1-pythia card) ----------------------------------

def test_qcd_bias_settings_only_for_qcd_and_in_the_chunk_key():
    biased = replace(l1.V3, qcd_bias_pow=4.0)
    assert "PhaseSpace:bias2SelectionPow = 4" in biased.settings("QCD") and biased.biased("QCD")
    assert biased.settings("W") == l1.V3.settings("W") and not biased.biased("W")
    assert l1.V3.settings("QCD") == l1.BACKGROUND_SETTINGS["QCD"]  # unbiased V3 is unchanged, and so is its key
    assert biased.key != l1.V3.key and "qb" not in l1.V3.key


def test_weighted_filter_efficiency_is_the_passing_share_of_the_weights():
    # hand-made merged metadata: 4 tried events of weights 1, 1, 2, 6; the last two pass -> eff = 8 / 10
    meta = {"_sigma_gen_mb": 2e-6, "_n_tried": 4, "_n_kept": 2, "_n_wsum_tried": 10.0, "_n_wsum_kept": 8.0}
    sigma_pb, eff = l1.filtered_sigma_pb(meta)
    assert eff == pytest.approx(0.8) and sigma_pb == pytest.approx(2e-6 * 1e9 * 0.8)
    unweighted = {k: v for k, v in meta.items() if "wsum" not in k}
    assert l1.filtered_sigma_pb(unweighted)[1] == pytest.approx(0.5)


def _hard_process_sample(config, n, seed):
    """(pTHat, weight) of ``n`` QCD hard processes only (no shower, no hadrons: fast)."""
    from hepad_plugins.generators.pythia_util import make_pythia

    pythia = make_pythia((*config.settings("QCD"), "PartonLevel:all = off", "HadronLevel:all = off"), seed)
    rows = []
    while len(rows) < n:
        if pythia.next():
            info = pythia.infoPython()  # a snapshot of this event
            rows.append((info.pTHat(), info.weight()))
    return np.array(rows), float(pythia.infoPython().sigmaGen())


def test_qcd_bias_weights_give_back_the_unbiased_pthat_spectrum_and_cross_section():
    """The card's plan rests on this: Pythia's weights undo the bias and sigmaGen stays the unbiased one."""
    pytest.importorskip("pythia8mc")
    plain, sigma_plain = _hard_process_sample(l1.V3, 3000, 21)
    biased, sigma_biased = _hard_process_sample(replace(l1.V3, qcd_bias_pow=4.0), 3000, 22)
    assert np.all(plain[:, 1] == 1.0) and biased[:, 1].std() > 0
    # the bias makes hard events common, the weights compensate: P(pTHat > 40 GeV) agrees within statistics
    p_plain = np.mean(plain[:, 0] > 40)
    assert np.mean(biased[:, 0] > 40) > 5 * p_plain
    w = biased[:, 1]
    p_weighted = w[biased[:, 0] > 40].sum() / w.sum()
    n_eff = w.sum() ** 2 / (w**2).sum()
    err = np.sqrt(p_plain * (1 - p_plain) / len(plain) + p_plain * (1 - p_plain) / n_eff)
    assert abs(p_weighted - p_plain) < 4 * err
    # the weight is 1 / (pTHat / 20 GeV)^4 up to one normalisation
    np.testing.assert_allclose(w * (biased[:, 0] / 20.0) ** 4 / np.median(w * (biased[:, 0] / 20.0) ** 4), 1.0,
                               rtol=1e-6)
    assert sigma_biased == pytest.approx(sigma_plain, rel=0.1)
