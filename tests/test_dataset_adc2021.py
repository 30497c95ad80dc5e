"""adc2021 loader: layout validation, features, train-only preprocessing, splits, file search, caching."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest

from hepad_bench.contracts import Progress
from hepad_bench.errors import DataError, UserError
from hepad_bench.params import build_config
from hepad_plugins.datasets import adc2021
from hepad_plugins.datasets.adc2021 import ADC2021, FEATURES, SIGNALS


def fake_particles(n: int, rng: np.random.Generator, n_lep_mean: float = 1.2, met_scale: float = 30.0) -> np.ndarray:
    """TEST FIXTURE, not physics data: (n, 19, 4) events in the public ADC2021 layout with
    plausible shapes (pT-ordered objects per type, a leading lepton above 23 GeV, empty slots all zero)."""
    out = np.zeros((n, 19, 4))
    out[:, 0, 0] = rng.exponential(met_scale, n)
    out[:, 0, 2] = rng.uniform(-np.pi, np.pi, n)
    out[:, 0, 3] = 1
    for first, slots, cls, eta_max in ((1, 4, 2, 3.0), (5, 4, 3, 2.1), (9, 10, 4, 4.0)):
        mean = n_lep_mean / 2 if cls != 4 else 3.0
        count = np.minimum(rng.poisson(mean, n), slots)
        pt = np.sort(rng.exponential(25.0, (n, slots)) + 3.0, axis=1)[:, ::-1]
        filled = np.arange(slots)[None, :] < count[:, None]
        block = out[:, first:first + slots]
        block[..., 0] = np.where(filled, pt, 0)
        block[..., 1] = np.where(filled, rng.uniform(-eta_max, eta_max, (n, slots)), 0)
        block[..., 2] = np.where(filled, rng.uniform(-np.pi, np.pi, (n, slots)), 0)
        block[..., 3] = np.where(filled, cls, 0)
    # a leading lepton above 23 GeV, as the challenge's selection demands
    has_e = out[:, 1, 0] > 0
    out[has_e, 1, 0] += 23.0
    no_e = ~has_e
    out[no_e, 5, 0] = np.maximum(out[no_e, 5, 0], 0) + 23.0
    out[no_e, 5, 1] = rng.uniform(-2.1, 2.1, no_e.sum())
    out[no_e, 5, 2] = rng.uniform(-np.pi, np.pi, no_e.sum())
    out[no_e, 5, 3] = 3
    return out


def write_adc_file(path: Path, particles: np.ndarray, names: bool = True) -> Path:
    """TEST FIXTURE: write ``particles`` in exactly the public HDF5 layout."""
    with h5py.File(path, "w") as fh:
        fh.create_dataset("Particles", data=particles)
        if names:
            fh.create_dataset("Particles_Names", data=np.array([b"Pt", b"Eta", b"Phi", b"Class"]))
            fh.create_dataset("Particles_Classes", data=np.array(
                [b"MET_class_1", b"Four_Ele_class_2", b"Four_Mu_class_3", b"Ten_Jet_class_4"]))
    return path


def write_adc_folder(folder: Path, n_background: int = 600, n_signal: int = 200, seed: int = 1,
                     filtered: bool = True, signals: tuple[str, ...] = tuple(SIGNALS)) -> Path:
    """TEST FIXTURE: the background and signal files under their public names, a few hundred events each."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_adc_file(folder / adc2021.BACKGROUND_FILE, fake_particles(n_background, rng))
    for i, sig in enumerate(signals):
        name = SIGNALS[sig].names[0 if filtered else 1]
        write_adc_file(folder / name, fake_particles(n_signal, rng, n_lep_mean=2.5 + i, met_scale=60.0))
    return folder


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPAD_BENCH_CACHE", str(tmp_path / "cache"))


class LogProgress(Progress):
    def __init__(self):
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


def load(data_dir: Path, progress: Progress | None = None, **options):
    opts = build_config(ADC2021.Options, {k: str(v) for k, v in options.items()}, "adc2021")
    return ADC2021(opts).load(data_dir, progress or LogProgress())


def raw_matrix(path: Path) -> np.ndarray:
    """Independent flattening: (pT, eta, phi) of each slot in file order."""
    with h5py.File(path, "r") as fh:
        parts = fh["Particles"][()]
    return parts[:, :, :3].reshape(len(parts), 57)


def test_features_are_57_named_float32_columns(tmp_path):
    bench = load(write_adc_folder(tmp_path / "d"), preprocessing="none")
    assert len(bench.features) == 57 and len(set(bench.features)) == 57
    assert bench.features[:6] == ["met_pt", "met_eta", "met_phi", "e1_pt", "e1_eta", "e1_phi"]
    assert bench.features[15:18] == ["mu1_pt", "mu1_eta", "mu1_phi"] and bench.features[-3:] == ["j10_pt", "j10_eta", "j10_phi"]
    for table in bench.tables().values():
        assert all(table[c].dtype == pl.Float32 for c in FEATURES)
        assert set(table["weight"].unique().to_list()) == {1.0}
    assert set(bench.train["process"].unique().to_list()) == {"background"}
    assert set(bench.signals["Ato4l"]["process"].unique().to_list()) == {"Ato4l"}
    assert sorted(bench.signals) == sorted(SIGNALS) and bench.task == "unsupervised"


def test_raw_values_match_the_file_and_splits_are_disjoint(tmp_path):
    folder = write_adc_folder(tmp_path / "d", n_background=500)
    bench = load(folder, preprocessing="none")
    raw = raw_matrix(folder / adc2021.BACKGROUND_FILE).astype(np.float32)
    parts = [bench.features_of(t) for t in (bench.train, bench.validation, bench.test)]
    assert [len(p) for p in parts] == [250, 50, 200]
    together = np.concatenate(parts)
    # the three splits are a permutation of the file's events (compare sorted rows)
    order = lambda m: m[np.lexsort(m.T[::-1])]  # noqa: E731
    np.testing.assert_array_equal(order(together), order(raw))
    assert bench.meta["split_sizes"]["train"] == 250
    assert bench.meta["inputs"]["background"]["size"] == (folder / adc2021.BACKGROUND_FILE).stat().st_size
    assert len(bench.meta["inputs"]["background"]["sha256"]) == 64
    assert json.loads(json.dumps(bench.meta)) == bench.meta  # run.json records it as it is
    # the published l+X@HLT rate: 185.6 M events per 30-day month; no signal yields, so no physical mu normalisation
    assert bench.meta["background_rate_hz"] == pytest.approx(185.6e6 / (30 * 86400))
    assert "n_signal_expected" not in bench.meta


def test_preprocessing_fitted_on_training_background_only(tmp_path):
    folder = write_adc_folder(tmp_path / "d")
    raw = load(folder, preprocessing="none")
    pre = load(folder)
    train_raw = raw.features_of(raw.train).astype(np.float64)
    is_pt = np.array([f.endswith("_pt") for f in FEATURES])
    transformed = train_raw.copy()
    transformed[:, is_pt] = np.log1p(train_raw[:, is_pt])
    mean, std = transformed.mean(axis=0), transformed.std(axis=0)
    std[std == 0] = 1.0
    np.testing.assert_allclose(pre.features_of(pre.train), (transformed - mean) / std, rtol=1e-5, atol=1e-5)
    # the test split uses the *training* statistics, so its own mean is not exactly zero
    test_raw = raw.features_of(raw.test).astype(np.float64)
    test_raw[:, is_pt] = np.log1p(test_raw[:, is_pt])
    expect_test = (test_raw - mean) / std
    np.testing.assert_allclose(pre.features_of(pre.test), expect_test, rtol=1e-5, atol=1e-5)
    assert not np.allclose(pre.features_of(pre.test).mean(axis=0)[is_pt], 0.0, atol=1e-3)
    assert pre.meta["preprocessing"]["mean"]["met_pt"] == pytest.approx(mean[0])


def test_splits_deterministic_and_follow_the_dataset_seed(tmp_path, monkeypatch):
    folder = write_adc_folder(tmp_path / "d")
    a = load(folder, preprocessing="none")
    monkeypatch.setenv("HEPAD_BENCH_CACHE", str(tmp_path / "other-cache"))  # rebuilt from the files
    b = load(folder, preprocessing="none")
    c = load(folder, preprocessing="none", seed=7)
    assert a.train.equals(b.train) and a.signals["Ato4l"].equals(b.signals["Ato4l"])
    assert not a.train.equals(c.train)
    # signal: train and test halves are disjoint and cover the file
    sig = np.concatenate([a.features_of(a.signal_train["leptoquark"]), a.features_of(a.signals["leptoquark"])])
    assert len(a.signal_train["leptoquark"]) == 100 and len(a.signals["leptoquark"]) == 100
    assert len(np.unique(sig, axis=0)) == 200


def test_missing_signal_is_skipped_with_a_warning(tmp_path):
    folder = write_adc_folder(tmp_path / "d", signals=("Ato4l", "hToTauTau"))
    progress = LogProgress()
    bench = load(folder, progress)
    assert sorted(bench.signals) == ["Ato4l", "hToTauTau"]
    assert bench.meta["missing_signals"] == ["hChToTauNu", "leptoquark"]
    warned = [line for line in progress.lines if "leptoquark_LOWMASS_lepFilter_13TeV_filtered.h5" in line]
    assert len(warned) == 1 and "skipped" in warned[0]
    with pytest.warns(UserWarning) as caught:  # no progress log attached: Python warnings instead
        ADC2021().load(folder, Progress())
    text = " ".join(str(w.message) for w in caught)
    assert "hChToTauNu_13TeV_PU20_filtered.h5" in text and "leptoquark_LOWMASS_lepFilter_13TeV_filtered.h5" in text


def test_missing_background_says_where_to_get_it(tmp_path):
    folder = write_adc_folder(tmp_path / "d")
    (folder / adc2021.BACKGROUND_FILE).unlink()
    with pytest.raises(UserError) as err:
        load(folder)
    text = str(err.value)
    assert "background_for_training.h5" in text and "zenodo.org/records/5046428" in text
    assert "hepad-bench datasets fetch adc2021" in text and str(folder) in text and "\n" not in text


def test_downloads_dir_is_searched_after_data_dir(tmp_path):
    from hepad_bench.cache import downloads_dir

    write_adc_folder(downloads_dir("adc2021"), signals=("Ato4l",))
    bench = load(None)
    assert list(bench.signals) == ["Ato4l"]
    assert bench.meta["inputs"]["background"]["file"] == "background_for_training.h5"


def test_unfiltered_signal_names_accepted(tmp_path):
    bench = load(write_adc_folder(tmp_path / "d", filtered=False))
    assert sorted(bench.signals) == sorted(SIGNALS)
    assert bench.meta["inputs"]["signal/Ato4l"]["file"] == "Ato4l_lepFilter_13TeV.h5"


@pytest.mark.parametrize("problem, expected", [
    ("key", "no 'Particles' dataset"),
    ("shape", "shape (50, 19, 3)"),
    ("class", "class column of event 3, slot 6 (mu2)"),
    ("dtype", "dtype int64"),
    ("names", "Particles_Names"),
    ("not-hdf5", "not a readable HDF5 file"),
])
def test_wrong_file_is_one_line_data_error_naming_it(tmp_path, problem, expected):
    folder = write_adc_folder(tmp_path / "d", n_background=50, n_signal=20)
    bad = folder / SIGNALS["hToTauTau"].names[0]
    good = fake_particles(50, np.random.default_rng(3))
    bad.unlink()
    if problem == "key":
        with h5py.File(bad, "w") as fh:
            fh.create_dataset("Events", data=good)
    elif problem == "shape":
        write_adc_file(bad, good[:, :, :3])
    elif problem == "class":
        good[3, 6, 3], good[3, 6, 0] = 4, 10.0  # a jet id in a muon slot
        write_adc_file(bad, good)
    elif problem == "dtype":
        write_adc_file(bad, good.astype(np.int64))
    elif problem == "names":
        with h5py.File(bad, "w") as fh:
            fh.create_dataset("Particles", data=good)
            fh.create_dataset("Particles_Names", data=np.array([b"Px", b"Py", b"Pz", b"E"]))
    else:
        bad.write_text("this is not HDF5")
    with pytest.raises(DataError) as err:
        load(folder)
    text = str(err.value)
    assert str(bad) in text and expected in text and "\n" not in text


def test_chunked_read_equals_whole_read(tmp_path):
    path = write_adc_file(tmp_path / "x.h5", fake_particles(1003, np.random.default_rng(5)))
    chunked = adc2021.read_particles(path, chunk_rows=100)
    np.testing.assert_array_equal(chunked.to_numpy(), raw_matrix(path).astype(np.float32))


def test_second_load_reads_the_cache_not_the_hdf5(tmp_path, monkeypatch):
    folder = write_adc_folder(tmp_path / "d")
    first = load(folder)
    real_file = h5py.File

    def refuse(*_a, **_k):
        raise AssertionError("HDF5 opened on a cache hit")

    monkeypatch.setattr(h5py, "File", refuse)
    again = load(folder)
    assert again.train.equals(first.train) and again.signals["Ato4l"].equals(first.signals["Ato4l"])
    assert again.meta == first.meta
    # other split options reuse the converted raw tables: still no HDF5 read
    other = load(folder, train_fraction=0.3)
    assert other.train.height == 180
    # a changed input file is a new key: the loader must read it
    monkeypatch.setattr(h5py, "File", real_file)
    write_adc_file(folder / adc2021.BACKGROUND_FILE, fake_particles(100, np.random.default_rng(9)))
    monkeypatch.setattr(h5py, "File", refuse)
    with pytest.raises(AssertionError, match="HDF5 opened"):
        load(folder)


def test_bad_options_are_user_errors():
    with pytest.raises(UserError, match="train_fraction"):
        build_config(ADC2021.Options, ["train_fraction=0.95", "validation_fraction=0.1"], "dataset adc2021")
    with pytest.raises(UserError, match="preprocessing"):
        build_config(ADC2021.Options, ["preprocessing=minmax"], "dataset adc2021")


def test_fetch_downloads_public_urls_into_downloads_dir(monkeypatch):
    import pooch

    from hepad_bench.cache import downloads_dir

    calls = []

    def fake_retrieve(url, known_hash, fname, path, progressbar):
        calls.append((url, known_hash, fname, Path(path), progressbar))
        return str(Path(path) / fname)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    paths = ADC2021().fetch(Progress())
    assert len(paths) == 5 and all(p.parent == downloads_dir("adc2021") for p in paths)
    urls = {c[0] for c in calls}
    assert "https://zenodo.org/records/5046428/files/background_for_training.h5?download=1" in urls
    assert "https://zenodo.org/records/7152590/files/Ato4l_lepFilter_13TeV_filtered.h5?download=1" in urls
    assert all(c[1] is None and c[4] is True for c in calls)
