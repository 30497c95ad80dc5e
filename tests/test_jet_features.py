"""GAN-AE jet features against hand-worked events (massless particles, pT in GeV)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hepad_plugins.generators import jet_features as jf

#: The published 42-input selection (lovaslin/GAN-AE, selection/dijet_all_new2.txt), typed in from the file.
PUBLISHED = (
    "pt_1 eta_1 e_1 mass_1 nisj_1 nesj_1 tau1_1 tau2_1 tau3_1 tau32_1 tau21_1 "
    "pt_2 eta_2 e_2 mass_2 nisj_2 nesj_2 tau1_2 tau2_2 tau3_2 tau32_2 tau21_2 "
    + " ".join(f"eRing{i}_1" for i in range(10)) + " " + " ".join(f"eRing{i}_2" for i in range(10))
).split()


def event_rows(*events):
    """(pt, eta, phi) arrays (n_events, n_max) of events given as lists of (pt, eta, phi), zero-padded."""
    width = max(len(e) for e in events)
    out = np.zeros((3, len(events), width))
    for i, particles in enumerate(events):
        for j, p in enumerate(particles):
            out[:, i, j] = p
    return out[0], out[1], out[2]


def test_the_42_names_are_the_published_selection():
    assert jf.GANAE42 == PUBLISHED
    assert len(set(jf.GANAE42)) == 42


def test_ring_edges_are_log_spaced_up_to_r():
    edges = jf.RING_EDGES
    assert len(edges) == 11 and edges[0] == 0 and edges[1] == pytest.approx(0.01) and edges[-1] == pytest.approx(1.0)
    assert np.diff(np.log10(edges[1:])) == pytest.approx(np.full(9, 2 / 9))
    # the reference's table of edges (clustering-lhco DEFAULT_RINGS), to its printed precision
    assert edges[5] == pytest.approx(0.07742637, abs=1e-8) and edges[9] == pytest.approx(0.59948425, abs=1e-8)


# Jet 1: a hard core at (0, 0) and symmetric pairs in phi, so the axis stays at (0, 0); all at eta = 0,
# so E = pT. Rings by hand: +-0.005 -> ring 0, +-0.02 -> ring 2 [0.0167, 0.0278), +-0.5 -> ring 8 [0.359, 0.599).
JET1 = [(1000.0, 0.0, 0.0), (100.0, 0.0, 0.005), (100.0, 0.0, -0.005), (50.0, 0.0, 0.02), (50.0, 0.0, -0.02),
        (20.0, 0.0, 0.5), (20.0, 0.0, -0.5)]
# Jet 2: two particles back to back with jet 1, 0.3 apart in eta.
JET2 = [(700.0, 0.15, math.pi), (500.0, -0.15, math.pi)]


def test_energy_rings_by_hand_and_their_sum_is_the_jet_energy():
    f = jf.ganae_features(*event_rows(JET1 + JET2))
    total = 1000 + 200 + 100 + 40
    expected = np.zeros(10)
    expected[0], expected[2], expected[8] = 1200 / total, 100 / total, 40 / total
    got = np.array([f[f"eRing{i}_1"][0] for i in range(10)])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    # every constituent lies inside R: the rings add up to the jet energy (= its scalar pT sum here, eta = 0)
    assert got.sum() * f["e_1"][0] * 1000 == pytest.approx(total, rel=1e-9)
    assert f["pt_1"][0] * 1000 == pytest.approx(total - 2 * 20 * (1 - math.cos(0.5)) - 2 * 50 * (1 - math.cos(0.02))
                                               - 2 * 100 * (1 - math.cos(0.005)), rel=1e-9)
    # jet 2: axis eta = asinh(200 sinh(0.15) / 1200) = 0.0251, so the 700 GeV particle is 0.125 away (ring 5,
    # [0.0774, 0.129)) and the 500 GeV one 0.175 (ring 6, [0.129, 0.215)); same eta -> energy shares 7/12, 5/12
    axis = math.asinh(200 * math.sinh(0.15) / 1200)
    assert 0.0774 < 0.15 - axis < 0.1291 < 0.15 + axis < 0.2154
    rings2 = np.array([f[f"eRing{i}_2"][0] for i in range(10)])
    np.testing.assert_allclose(rings2, [0, 0, 0, 0, 0, 7 / 12, 5 / 12, 0, 0, 0], rtol=1e-9, atol=1e-12)


def test_ring_uses_the_wrapped_azimuth():
    # a jet straddling phi = +-pi: 0.004 and -0.004 around pi are 0.008 apart, not 2 pi
    jet = [(800.0, 0.0, math.pi - 0.004), (800.0, 0.0, -math.pi + 0.004)]
    f = jf.ganae_features(*event_rows(jet + [(900.0, 0.0, 0.0)]))
    assert f["eRing0_1"][0] == pytest.approx(1.0, rel=1e-9)
    assert f["pt_1"][0] * 1000 == pytest.approx(1600 * math.cos(0.004), rel=1e-9)  # the two merged: one jet


def test_subjet_counts_on_a_hand_worked_jet():
    # kT, R = 0.2: d_ij = min(pT_i^2, pT_j^2) dR^2 / 0.04, d_iB = pT^2 (GeV^2). All at eta = 0.
    # A (100, phi 0) and B (100, phi 0.0005): d_AB = 1e4 * 2.5e-7 / 0.04 = 0.0625 -> merged, below d_cut 0.1.
    # C (0.2 GeV, phi 0.5): d_CB = 0.04 < every d_Cj (>= 0.04 * 0.25 / 0.04 = 0.25) -> C is its own
    #   inclusive jet, and leaves at d = 0.04 < d_cut, so it is no exclusive jet.
    # D (50, phi -0.4): d_D,AB = 2500 * 0.16 / 0.04 = 1e4 > d_DB = 2500 -> its own jet, resolved at d_cut.
    # So: inclusive (pT > 0) = {AB, C, D} = 3; exclusive at d_cut = 0.1 GeV^2 = {AB, D} = 2.
    jet = [(100.0, 0.0, 0.0), (100.0, 0.0, 0.0005), (0.2, 0.0, 0.5), (50.0, 0.0, -0.4)]
    # second jet: two particles 0.3 apart: d_ij = 120^2 * 0.09 / 0.04 > d_iB = 120^2 -> 2 inclusive, 2 exclusive
    other = [(120.0, 0.15, math.pi), (120.0, -0.15, math.pi)]
    f = jf.ganae_features(*event_rows(jet + other))
    assert (f["nisj_1"][0], f["nesj_1"][0]) == (3, 2)
    assert (f["nisj_2"][0], f["nesj_2"][0]) == (2, 2)


def test_four_vectors_mjj_and_taus_of_one_particle_jets():
    # two single-particle jets: massless, tau = 0, all energy in ring 0
    p1, p2 = (1500.0, 0.4, 0.3), (1300.0, -0.7, 0.3 - 3.0)
    f = jf.ganae_features(*event_rows([p2, p1]))  # input order must not matter: jet 1 is the harder one
    assert f["pt_1"][0] == pytest.approx(1.5) and f["eta_1"][0] == pytest.approx(0.4)
    assert f["e_1"][0] == pytest.approx(1.5 * math.cosh(0.4)) and f["mass_1"][0] == pytest.approx(0.0, abs=1e-6)
    assert f["pt_2"][0] == pytest.approx(1.3) and f["eta_2"][0] == pytest.approx(-0.7)
    # massless pair: mjj^2 = 2 pT1 pT2 (cosh deta - cos dphi)
    mjj = math.sqrt(2 * 1500 * 1300 * (math.cosh(1.1) - math.cos(3.0))) / 1000
    assert f["mjj"][0] == pytest.approx(mjj, rel=1e-9)
    for k in (1, 2):
        assert f[f"eRing0_{k}"][0] == pytest.approx(1.0)
        assert [f[f"{t}_{k}"][0] for t in ("tau1", "tau2", "tau3", "tau21", "tau32")] == [0, 0, 0, 0, 0]
        assert (f[f"nisj_{k}"][0], f[f"nesj_{k}"][0]) == (1, 1)


def test_events_with_fewer_than_two_jets_get_zeros():
    pt, eta, phi = event_rows([(1000.0, 0.0, 0.0)], [(0.0, 0.0, 0.0)])
    f = jf.ganae_features(pt, eta, phi)
    assert f["pt_1"][0] == pytest.approx(1.0)
    assert all(f[n][0] == 0 for n in jf.GANAE42 if n.endswith("_2"))
    assert all(f[n][1] == 0 for n in jf.GANAE42) and f["mjj"][1] == 0


def test_particle_order_and_padding_do_not_matter():
    rng = np.random.default_rng(3)
    jets = [(rng.exponential(50), rng.normal(0, 0.3), rng.normal(0, 0.3)) for _ in range(40)]
    jets += [(rng.exponential(50), rng.normal(0.5, 0.3), rng.normal(3.0, 0.3)) for _ in range(40)]
    shuffled = [jets[i] for i in rng.permutation(len(jets))]
    a = jf.ganae_features(*event_rows(jets))
    pt, eta, phi = event_rows(shuffled)
    wide = [np.pad(x, ((0, 0), (0, 30))) for x in (pt, eta, phi)]
    b = jf.ganae_features(*wide)
    for name in [*jf.GANAE42, "mjj"]:
        assert b[name][0] == pytest.approx(a[name][0], rel=1e-9, abs=1e-12), name
    assert 0.9 < sum(a[f"eRing{i}_1"][0] for i in range(10)) <= 1 + 1e-12


def test_cathode_columns_from_the_jet_features():
    f = {"mass_1": np.array([0.1, 0.5]), "mass_2": np.array([0.5, 0.1]),
         "tau21_1": np.array([0.2, 0.3]), "tau21_2": np.array([0.7, 0.8])}
    c = jf.cathode_columns(f)
    np.testing.assert_allclose(c["mj_light"], [0.1, 0.1])
    np.testing.assert_allclose(c["mj_diff"], [0.4, 0.4])
    np.testing.assert_allclose(c["tau21_light"], [0.2, 0.8])
    np.testing.assert_allclose(c["tau21_heavy"], [0.7, 0.3])
