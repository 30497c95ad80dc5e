"""The l1 generator: detector emulation by hand-worked cases, Pythia physics checks, ADC2021 layout, CLI."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from hepad_bench.contracts import Progress
from hepad_plugins.generators import detector_sim as ds
from hepad_plugins.generators import l1
from hepad_plugins.generators.chunked import ProcessJob, run_chunked

NO_SMEAR = ds.DetectorConfig(smear=False)


def particle(event, pid, pt, eta, phi, m=0.0):
    """One particle row (event, pid, px, py, pz, e) from (pt, eta, phi, m)."""
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return (event, pid, px, py, pz, np.sqrt(px * px + py * py + pz * pz + m * m))


def batch(rows):
    a = np.array(sorted(rows, key=lambda r: r[0]), dtype=float)
    return ds.Particles(a[:, 0].astype(int), a[:, 1].astype(int), a[:, 2], a[:, 3], a[:, 4], a[:, 5])


# ---- detector emulation: hand-worked cases -------------------------------------------------------------

def test_isolation_by_hand():
    # Lepton at (eta 0, phi 0). Particles at dR 0.2 (pT 2) and 0.25 (pT 1) are inside 0.3; dR 0.35 and an
    # other event's particle are not. Expected sum 3 GeV.
    event = np.array([0, 0, 0, 0, 0, 1])
    pt = np.array([30.0, 2.0, 1.0, 5.0, 7.0, 9.0])
    eta = np.array([0.0, 0.2, 0.15, 0.35, 0.0, 0.0])
    phi = np.array([0.0, 0.0, 0.2, 0.0, 3.0, 0.0])
    got = ds.isolation(np.array([0]), np.array([0]), eta[:1], phi[:1], event, pt, eta, phi, 0.3)
    assert got == pytest.approx([3.0])
    # Across the phi = +-pi seam: dphi = 0.1, so inside.
    got = ds.isolation(np.array([0]), np.array([0]), np.array([0.0]), np.array([np.pi - 0.05]),
                       np.array([0, 0]), np.array([30.0, 4.0]), np.array([0.0, 0.0]), np.array([np.pi - 0.05, -np.pi + 0.05]), 0.3)
    assert got == pytest.approx([4.0])


def test_isolated_lepton_kept_non_isolated_goes_to_jet():
    rows = [
        particle(0, 11, 40.0, 0.5, 0.0),      # isolated electron
        particle(0, 13, 30.0, -1.0, 2.0),     # muon with 5 GeV (> 10 % of 30) nearby: not isolated
        particle(0, 211, 5.0, -1.1, 2.0, 0.14),
        particle(0, 12, 25.0, 0.0, np.pi),    # neutrino: invisible
    ]
    out, trig = ds.simulate(batch(rows), 1, np.random.default_rng(0), NO_SMEAR)
    assert trig.tolist() == [True]
    assert out[0, 1].tolist() == pytest.approx([40.0, 0.5, 0.0, 2.0])
    assert np.all(out[0, 2:9] == 0)  # no second electron, no isolated muon
    # The muon + pion become one jet of pT 35 near (eta -1, phi 2).
    assert out[0, 9, 0] == pytest.approx(35.0, rel=1e-3)
    assert out[0, 9, 3] == 4
    assert np.all(out[0, 10:] == 0)


def test_met_of_known_particles():
    # Visible: 50 GeV along +x, 20 GeV along +y. MET = -(50, 20): |MET| = sqrt(2900), phi = atan2(-20, -50).
    rows = [particle(0, 11, 50.0, 0.0, 0.0), particle(0, 22, 20.0, 1.5, np.pi / 2), particle(0, 14, 70.0, 0.0, 2.0)]
    # A particle beyond the acceptance (|eta| > 4.9) does not count.
    rows.append(particle(0, 211, 30.0, 5.5, 1.0, 0.14))
    out, _ = ds.simulate(batch(rows), 1, np.random.default_rng(0), NO_SMEAR)
    assert out[0, 0, 0] == pytest.approx(np.sqrt(50**2 + 20**2), rel=1e-5)
    assert out[0, 0, 2] == pytest.approx(np.arctan2(-20.0, -50.0), abs=1e-5)
    assert out[0, 0, 1] == 0 and out[0, 0, 3] == 1


def test_acceptance_ordering_padding_and_trigger():
    rows = [particle(0, 13, pt, 0.3 * i, 0.5 + 1.2 * i) for i, pt in enumerate([10.0, 40.0, 25.0, 5.0, 60.0, 8.0])]
    rows.append(particle(0, 13, 50.0, 2.3, 0.0))  # muon beyond |eta| 2.1: not a muon (it becomes a jet)
    rows.append(particle(0, -11, 2.5, 0.0, -2.0))  # electron below 3 GeV
    rows.append(particle(1, 11, 22.0, 0.0, 0.0))  # event 1: only a 22 GeV electron: fails the 23 GeV trigger
    out, trig = ds.simulate(batch(rows), 2, np.random.default_rng(0), NO_SMEAR)
    assert trig.tolist() == [True, False]
    assert out[0, 5:9, 0].tolist() == pytest.approx([60.0, 40.0, 25.0, 10.0])  # top 4 muons, pT-descending
    assert out[0, 5:9, 3].tolist() == [3, 3, 3, 3]
    assert np.all(out[0, 1:5] == 0)  # no electron
    jets = out[0, 9:]
    assert jets[0, 0] == pytest.approx(50.0, rel=1e-3) and jets[0, 1] == pytest.approx(2.3, abs=1e-3)
    assert np.all(jets[1:] == 0)  # the 5 and 8 GeV muons are isolated muons beyond 4 slots? no: below 15 GeV jets
    assert out[1, 1].tolist() == pytest.approx([22.0, 0.0, 0.0, 2.0])


def test_smearing_statistics():
    # 4000 isolated 100 GeV electrons and muons, one per event: relative resolution 2 % and hypot(1 %, 1e-4 * 100).
    n = 4000
    rows = [particle(i, 11 if i % 2 == 0 else 13, 100.0, 0.0, 0.0) for i in range(n)]
    out, _ = ds.simulate(batch(rows), n, np.random.default_rng(1))
    e_pt, mu_pt = out[0::2, 1, 0], out[1::2, 5, 0]
    assert np.std(e_pt / 100.0) == pytest.approx(0.02, rel=0.08)
    assert np.std(mu_pt / 100.0) == pytest.approx(np.hypot(0.01, 0.01), rel=0.08)
    assert np.mean(e_pt) == pytest.approx(100.0, abs=0.2)
    # The smearing propagates to MET: with the electron alone, MET = -(smeared electron), opposite in phi.
    np.testing.assert_allclose(out[0::2, 0, 0], e_pt, rtol=1e-5)
    np.testing.assert_allclose(np.abs(out[0::2, 0, 2]), np.pi, atol=1e-5)


# ---- Pythia-based physics and layout ------------------------------------------------------------------

@pytest.fixture(scope="module")
def z_events():
    return l1.make_chunk("Z", 150, 11)


@pytest.fixture(scope="module")
def w_events():
    return l1.make_chunk("W", 150, 12)


def _p4(objs):
    pt, eta, phi = objs[..., 0], objs[..., 1], objs[..., 2]
    return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)


def test_z_peak_in_dilepton_mass(z_events):
    p = z_events["Particles"]
    masses = []
    for rows in (slice(1, 3), slice(5, 7)):  # two leading electrons / muons
        two = p[:, rows]
        ok = np.all(two[:, :, 3] > 0, axis=1)
        px, py, pz, e = (a.sum(axis=1) for a in _p4(two[ok]))
        masses.append(np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0)))
    m = np.concatenate(masses)
    assert len(m) > 40
    peak = m[(m > 70) & (m < 110)]
    assert np.median(peak) == pytest.approx(91.2, abs=2.0)
    assert len(peak) > 0.6 * len(m)


def test_w_transverse_mass_edge(w_events):
    p = w_events["Particles"]
    lead_e, lead_mu = p[:, 1], p[:, 5]
    lep = np.where((lead_e[:, 0] >= lead_mu[:, 0])[:, None], lead_e, lead_mu)
    met = p[:, 0]
    mt = np.sqrt(2 * lep[:, 0] * met[:, 0] * (1 - np.cos(lep[:, 2] - met[:, 2])))
    # The Jacobian edge: most events below ~80 GeV, with a pile-up just beneath it.
    assert np.quantile(mt, 0.9) == pytest.approx(80.0, abs=12.0)
    assert np.mean(mt > 100) < 0.08
    assert np.mean((mt > 50) & (mt < 90)) > 0.4


def test_layout_of_generated_events(z_events, w_events):
    for data in (z_events, w_events):
        p = data["Particles"]
        assert p.shape[1:] == (19, 4) and p.dtype == np.float32
        cls = p[:, :, 3]
        assert np.all(cls[:, 0] == 1) and np.all(p[:, 0, 1] == 0)
        for rows, cid in ((slice(1, 5), 2), (slice(5, 9), 3), (slice(9, 19), 4)):
            block = p[:, rows]
            filled = block[:, :, 3] != 0
            assert np.all(block[:, :, 3][filled] == cid)
            assert np.all(block[~filled] == 0)  # empty slots entirely zero
            assert np.all(np.diff(block[:, :, 0], axis=1) <= 0)  # pT-ordered, zeros last
        assert np.all(np.abs(p[:, 9:, 1]) < 4)
        lead = np.maximum(p[:, 1, 0], p[:, 5, 0])
        assert np.all(lead > 23)
        assert 0 < float(data["_n_kept"]) / float(data["_n_tried"]) <= 1


def test_mixture_counts_are_proportional():
    counts = l1.mixture_counts({"a": 6.0, "b": 3.0, "c": 1.0, "d": 0.0}, 101)
    assert sum(counts.values()) == 101
    assert counts == {"a": 61, "b": 30, "c": 10, "d": 0}  # 60.6, 30.3, 10.1 -> largest remainder to a


def test_chunked_l1_reproducible_across_workers(tmp_path):
    jobs = [ProcessJob("Z", 12)]
    one = run_chunked(tmp_path / "a", "z", jobs, l1.make_chunk, seed=4, workers=1, progress=Progress(), chunk_size=6)
    two = run_chunked(tmp_path / "b", "z", jobs, l1.make_chunk, seed=4, workers=2, progress=Progress(), chunk_size=6)
    np.testing.assert_array_equal(one["Z"]["Particles"], two["Z"]["Particles"])
    assert float(one["Z"]["_n_tried"]) == float(two["Z"]["_n_tried"])


def test_cli_writes_public_layout(tmp_path, monkeypatch):
    # Small pilot and few events keep this end-to-end run short.
    monkeypatch.setattr(l1, "pilot_tries", lambda events: 100)
    monkeypatch.setattr(l1, "QCD_PILOT_FACTOR", 1)
    monkeypatch.setattr(l1, "BATCH", 50)
    signal = "Ato4l_lepFilter_13TeV_filtered"  # one signal is enough to exercise the signal path
    monkeypatch.setattr(l1, "SIGNAL_SETTINGS", {signal: l1.SIGNAL_SETTINGS[signal]})
    from hepad_bench.cli import main

    main(["generate", "l1", "--events", "40", "--signal-events", "3", "--seed", "5", "--out", str(tmp_path)])
    with h5py.File(tmp_path / l1.BACKGROUND_FILE) as f:
        assert f["Particles"].shape == (40, 19, 4)
        # the pilot's kept events join the sample: none may be replayed by the main run
        assert len(np.unique(f["Particles"][:].reshape(40, -1), axis=0)) == 40
        assert [bytes(x) for x in f["Particles_Names"][:]] == [b"Pt", b"Eta", b"Phi", b"Class"]
        assert [bytes(x) for x in f["Particles_Classes"][:]] == [
            b"MET_class_1", b"Four_Ele_class_2", b"Four_Mu_class_3", b"Ten_Jet_class_4"]
        assert f.attrs["seed"] == 5
        procs = f["Process"][:]
        assert set(np.unique(procs)) <= {0, 1, 2, 3}
        weights = f["Weight"][:]
        info = json.loads(f.attrs["processes"])
        for i, name in enumerate(json.loads(f.attrs["process_names"])):
            if info[name]["n_events"]:
                assert weights[procs == i].sum() == pytest.approx(info[name]["sigma_x_eff_pb"], rel=1e-6)
        assert sum(v["physical_fraction"] for v in info.values()) == pytest.approx(1.0)
    for name in [signal]:
        with h5py.File(tmp_path / f"{name}.h5") as f:
            assert json.loads(f.attrs["process"])["filter_efficiency"] > 0
            assert f["Particles"].shape == (3, 19, 4)
            assert np.all(np.maximum(f["Particles"][:, 1, 0], f["Particles"][:, 5, 0]) > 23)


def test_missing_generator_packages_is_one_line_user_error(monkeypatch):
    import builtins

    from hepad_bench.errors import UserError
    from hepad_plugins.generators.pythia_util import require_generators

    real_import = builtins.__import__

    def no_pythia(name, *args, **kwargs):
        if name == "pythia8mc":
            raise ImportError("No module named 'pythia8mc'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pythia)
    with pytest.raises(UserError, match=r'pip install "hepad-bench\[generate\]"'):
        require_generators()


def test_cli_reports_missing_pythia_in_one_line(monkeypatch, tmp_path, capsys):
    import builtins

    from hepad_bench.cli import main

    real_import = builtins.__import__

    def no_fastjet(name, *args, **kwargs):
        if name == "fastjet":
            raise ImportError("No module named 'fastjet'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_fastjet)
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "l1", "--events", "10", "--seed", "1", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'pip install "hepad-bench[generate]"' in err  # brackets survive rich markup
    assert "Traceback" not in err
