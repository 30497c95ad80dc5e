"""N-subjettiness against configurations worked out by hand (massless particles in the y = 0 plane)."""

import math

import numpy as np
import pytest

from hepad_plugins.generators.nsubjettiness import nsubjettiness


def massless(pt, y, phi):
    return [pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(y), pt * math.cosh(y)]


def test_two_prongs_tau1_by_hand_and_tau2_zero():
    jet = np.array([massless(100, 0, 0.2), massless(50, 0, -0.2)])
    # Axis = the summed momentum: px = 150 cos 0.2, py = 50 sin 0.2 -> phi_axis = 0.067467.
    phi_axis = math.atan2(50 * math.sin(0.2), 150 * math.cos(0.2))
    assert phi_axis == pytest.approx(0.067467, abs=1e-6)
    by_hand = (100 * (0.2 - phi_axis) + 50 * (0.2 + phi_axis)) / (150 * 1.0)  # d0 = sum pT * R0
    taus = nsubjettiness(jet)
    assert taus[0] == pytest.approx(by_hand, rel=1e-9)
    assert taus[0] == pytest.approx(0.177511, abs=2e-6)  # on paper: (13.2533 + 13.3734) / 150
    assert taus[1] == 0.0 and taus[2] == 0.0


def test_three_particles_worked_on_paper():
    # A: pT 100 at phi 0; B: pT 50 at phi +0.2; C: pT 50 at phi -0.4 (all at y = 0).
    jet = np.array([massless(100, 0, 0.0), massless(50, 0, 0.2), massless(50, 0, -0.4)])
    taus = nsubjettiness(jet)
    # tau1: axis phi = atan(-9.5374 / 195.0563) = -0.048857;
    # dR = 0.048857, 0.248857, 0.351143 -> (4.8857 + 12.4429 + 17.5571) / 200.
    assert taus[0] == pytest.approx(0.174429, abs=2e-6)
    # tau2: kT distances min(pT^2) dR^2: AB = 100, AC = 400, BC = 900 -> axes A+B and C.
    # A+B at phi = atan(9.9335 / 149.0033) = 0.066568 -> (100 * 0.066568 + 50 * 0.133432) / 200.
    assert taus[1] == pytest.approx(0.066642, abs=2e-6)
    assert taus[2] == 0.0


def test_azimuth_wraps_around_pi():
    jet = np.array([massless(80, 0, math.pi - 0.1), massless(80, 0, -math.pi + 0.1)])
    # The two are 0.2 apart across phi = pi; the axis sits at pi, 0.1 from each.
    assert nsubjettiness(jet)[0] == pytest.approx(0.1, rel=1e-9)


def test_invariant_under_longitudinal_boost_and_rescaling():
    rng = np.random.default_rng(3)
    pts, ys, phis = rng.uniform(1, 50, 30), rng.normal(0, 0.3, 30), rng.normal(0, 0.3, 30)
    jet = np.array([massless(p, y, f) for p, y, f in zip(pts, ys, phis)])
    boosted = np.array([massless(2.5 * p, y + 1.3, f) for p, y, f in zip(pts, ys, phis)])
    a, b = nsubjettiness(jet), nsubjettiness(boosted)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert a[0] > a[1] > a[2] > 0  # more axes never increase tau on a spread-out jet


def test_r0_and_beta_enter_as_documented():
    jet = np.array([massless(100, 0, 0.2), massless(50, 0, -0.2)])
    base = nsubjettiness(jet)[0]
    assert nsubjettiness(jet, r0=0.5)[0] == pytest.approx(base / 0.5, rel=1e-9)
    phi_axis = math.atan2(50 * math.sin(0.2), 150 * math.cos(0.2))
    beta2 = (100 * (0.2 - phi_axis) ** 2 + 50 * (0.2 + phi_axis) ** 2) / 150
    assert nsubjettiness(jet, beta=2.0)[0] == pytest.approx(beta2, rel=1e-9)


def test_fewer_constituents_than_axes():
    assert np.array_equal(nsubjettiness(np.array([massless(10, 0.5, 1.0)])), np.zeros(3))
    assert np.array_equal(nsubjettiness(np.zeros((0, 4))), np.zeros(3))
