"""table (bring your own ntuple): ROOT files written here with uproot, Parquet / HDF5 / CSV inputs,
jagged padding and reductions on hand-worked events, a CLI round trip checked against sklearn,
the cache key, data seeds and every error as one line with exit code 2 and no results written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from hepad_bench.contracts import Progress
from hepad_bench.errors import DataError, UserError
from hepad_plugins.datasets.table import Table, TableOptions
from hepad_plugins.datasets.table_card import Feature, read_card
from hepad_plugins.datasets.table_io import evaluate, read_file
from cli_helpers import run_cli  # noqa: E402

N_BKG, N_SIG = 600, 200

# -- fixtures: test data, not physics -------------------------------------------------------------


def toy_events(n: int, label: int, hard: bool, seed: int) -> dict[str, object]:
    """TEST FIXTURE: events with a jagged jet_pt (sorted high to low), met, a weight and an mjj."""
    rng = np.random.default_rng(seed)
    n_jets = rng.poisson(4.0 if hard else 2.0, n)
    jets = [np.sort(rng.exponential(80.0 if hard else 40.0, k))[::-1] for k in n_jets]
    return {
        "met": rng.exponential(60.0 if hard else 30.0, n), "jet_pt": ak.Array([list(j) for j in jets]),
        "sample": np.full(n, label, dtype=np.int32), "w": rng.uniform(0.5, 1.5, n), "mjj": rng.normal(100.0, 10.0, n),
    }


def concat(*parts: dict) -> dict:
    return {k: ak.concatenate([p[k] for p in parts]) if k == "jet_pt" else np.concatenate([p[k] for p in parts])
            for k in parts[0]}


def write_root(path: Path, events: dict, tree: str = "Events") -> Path:
    """A TTree (not uproot's default RNTuple: ntuples in the field are TTrees)."""
    types = {k: ("var * float64" if k == "jet_pt" else np.asarray(v).dtype) for k, v in events.items()}
    with uproot.recreate(path) as fh:
        fh.mktree(tree, types)
        fh[tree].extend(events)
    return path


MIXED_CARD = """
tree = "Events"
features = ["met", "jet_pt[0:3]", "count(jet_pt)", "sum(jet_pt)", "max(jet_pt)"]
label = "sample"
weight = "w"
resonant = "mjj"
log1p = ["met", "jet_pt[0:3]", "sum(jet_pt)", "max(jet_pt)"]

[split]
train = 0.5
validation = 0.1
signal_train = 0.5
seed = 3

[background]
files = ["ntuples/mixed.root"]
label = 0

[signals.hard]
files = ["ntuples/mixed.root"]
label = 1
"""


@pytest.fixture
def mixed(tmp_path) -> tuple[Path, dict]:
    """A data folder with one ROOT file holding background (label 0) and signal (label 1), and its card."""
    events = concat(toy_events(N_BKG, 0, False, 1), toy_events(N_SIG, 1, True, 2))
    (tmp_path / "data" / "ntuples").mkdir(parents=True)
    write_root(tmp_path / "data" / "ntuples" / "mixed.root", events)
    (tmp_path / "data" / "analysis.toml").write_text(MIXED_CARD)
    return tmp_path / "data", events


def load(card: Path, data_dir: Path | None = None, data_seed: int | None = None):
    ds = Table(TableOptions(card=str(card)))
    if data_seed is not None:
        ds.data_seed = data_seed  # what Dataset.__init__(data_seed=...) stores (shared contract of issue 12)
    return ds.load(data_dir, Progress())


# -- the round trip --------------------------------------------------------------------------------


def test_root_round_trip_through_cli_matches_sklearn(mixed, tmp_path, capsys):
    data, events = mixed
    out = tmp_path / "results"
    code, stdout, err = run_cli(["run", "--dataset", "table", "--data-dir", str(data), "-o", "card=analysis.toml",
                                 "--detector", "iforest", "--output", str(out), "--quiet", "--device", "cpu"], capsys)
    assert code == 0, err
    (run_json,) = out.glob("table/iforest/*/run.json")
    run = json.loads(run_json.read_text())
    # split sizes by hand: floor(fraction x N), the rest to the last part
    assert run["event_counts"] == {
        "train": 300, "validation": 60, "test": 240, "signal/hard": 100, "signal_train/hard": 100}
    assert run["task"] == "unsupervised" and run["resonant"] == "mjj" and run["signals"] == ["hard"]
    assert run["dataset"]["fingerprint"]

    scores = pl.read_parquet(run_json.parent / "scores.parquet")
    bkg, sig = scores.filter(pl.col("sample") == "background"), scores.filter(pl.col("sample") == "hard")
    assert (bkg.height, sig.height) == (240, 100)
    # events went to the right process, with their own weight and mjj (matched by the unique random weight)
    w_file, mjj_file, label_file = events["w"], events["mjj"], events["sample"]
    row_of = {round(float(w), 12): i for i, w in enumerate(w_file)}
    for table, label in ((bkg, 0), (sig, 1)):
        rows = [row_of[round(float(w), 12)] for w in table["weight"]]
        assert len(set(rows)) == table.height and all(label_file[r] == label for r in rows)
        np.testing.assert_allclose(table["mjj"].to_numpy(), mjj_file[rows])

    y = np.r_[np.zeros(bkg.height), np.ones(sig.height)]
    s = np.r_[bkg["score"].to_numpy(), sig["score"].to_numpy()]
    w = np.r_[bkg["weight"].to_numpy(), sig["weight"].to_numpy()]
    metrics = json.loads((run_json.parent / "metrics.json").read_text())["hard"]
    assert metrics["auc"] == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-9)
    assert metrics["auc"] > 0.7  # harder, more numerous jets and larger met: iforest sees them
    assert isinstance(metrics["mass_pearson"], float)  # the resonant observable reached the metrics
    assert np.corrcoef(bkg["score"].to_numpy(), bkg["mjj"].to_numpy())[0, 1] == pytest.approx(
        metrics["mass_pearson"], abs=1e-9)


# -- jagged features on hand-worked events -----------------------------------------------------------

JAGGED = [[50.0, 30.0], [], [10.0, 20.0, 30.0, 40.0]]
HAND_CARD = """
features = ["jet_pt[0:3]", "count(jet_pt)", "sum(jet_pt)", "max(jet_pt)", "min(jet_pt)", "mean(jet_pt)",
            {{ expr = "jet_pt[3]", fill = -5 }}, "met"]
fill = -1.0
[background]
files = ["{name}"]
[signals.s]
files = ["{name}"]
"""
HAND = {  # fill -1 by default, -5 for jet_pt[3]; elements in stored order (the third event is not sorted)
    "jet_pt[0]": [50, -1, 10], "jet_pt[1]": [30, -1, 20], "jet_pt[2]": [-1, -1, 30],
    "count(jet_pt)": [2, 0, 4], "sum(jet_pt)": [80, 0, 100], "max(jet_pt)": [50, -1, 40],
    "min(jet_pt)": [30, -1, 10], "mean(jet_pt)": [40, -1, 25], "jet_pt[3]": [-5, -5, 40], "met": [1.5, 2.5, 3.5],
}


def write_hand(folder: Path, fmt: str) -> str:
    met = np.array([1.5, 2.5, 3.5])
    if fmt == "root":
        write_root(folder / "hand.root", {"jet_pt": ak.Array(JAGGED), "met": met})
        return "hand.root"
    pq.write_table(pa.table({"jet_pt": pa.array(JAGGED, type=pa.list_(pa.float64())), "met": met}),
                   folder / "hand.parquet")
    return "hand.parquet"


@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_jagged_padding_and_reductions_by_hand(tmp_path, fmt):
    name = write_hand(tmp_path, fmt)
    (tmp_path / "c.toml").write_text(HAND_CARD.format(name=name))
    table = read_file(tmp_path / name, read_card(tmp_path / "c.toml"), None)
    assert table.columns == list(HAND)  # the card's order, slices expanded in place
    for col, values in HAND.items():
        np.testing.assert_array_equal(table[col].to_numpy(), np.array(values, dtype=float), err_msg=col)


def test_dotted_branch_names_as_in_delphes(tmp_path):
    with uproot.recreate(tmp_path / "d.root") as fh:
        fh.mktree("Delphes", {"Jet.PT": "var * float32", "MissingET.MET": "float32"})
        fh["Delphes"].extend({"Jet.PT": ak.Array([[1.0, 2.0], [3.0]]), "MissingET.MET": np.array([5.0, 6.0], np.float32)})
    (tmp_path / "c.toml").write_text('features = ["Jet.PT[0:2]", "MissingET.MET", "count(Jet.PT)"]\n'
                                     '[background]\nfiles = ["d.root"]\n[signals.s]\nfiles = ["d.root"]\n')
    table = read_file(tmp_path / "d.root", read_card(tmp_path / "c.toml"), None)
    assert table.to_dict(as_series=False) == {"Jet.PT[0]": [1.0, 3.0], "Jet.PT[1]": [2.0, 0.0],
                                              "MissingET.MET": [5.0, 6.0], "count(Jet.PT)": [2.0, 1.0]}


def test_regular_hdf5_array_as_list_per_event(tmp_path):
    slots = np.array([[50.0, 30.0, 0.0], [7.0, 8.0, 9.0]])
    with h5py.File(tmp_path / "r.h5", "w") as fh:
        fh["jets"] = slots
        fh["met"] = np.array([1.0, 2.0])
    (tmp_path / "c.toml").write_text('features = ["jets[1:4]", "sum(jets)", "count(jets)", "met"]\nfill = -7\n'
                                     '[background]\nfiles = ["r.h5"]\n[signals.s]\nfiles = ["r.h5"]\n')
    table = read_file(tmp_path / "r.h5", read_card(tmp_path / "c.toml"), None)
    np.testing.assert_array_equal(table["jets[1]"].to_numpy(), [30.0, 8.0])
    np.testing.assert_array_equal(table["jets[2]"].to_numpy(), [0.0, 9.0])
    np.testing.assert_array_equal(table["jets[3]"].to_numpy(), [-7.0, -7.0])  # beyond the 3 slots: fill
    np.testing.assert_array_equal(table["sum(jets)"].to_numpy(), [80.0, 24.0])
    np.testing.assert_array_equal(table["count(jets)"].to_numpy(), [3.0, 3.0])
    np.testing.assert_array_equal(table["met"].to_numpy(), [1.0, 2.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(-1e3, 1e3, allow_nan=False), max_size=6), min_size=1, max_size=8),
       st.integers(0, 4), st.integers(1, 4), st.floats(-10, 10, allow_nan=False))
def test_expressions_match_plain_python(lists, start, width, fill):
    """Every expression against a per-event Python reference, on random jagged arrays."""
    arr, stop = ak.Array(lists), start + width
    pad = evaluate(Feature("x", "x", "slice", start, stop, fill), arr, "x")
    for i, name in enumerate(f"x[{k}]" for k in range(start, stop)):
        want = [ev[start + i] if start + i < len(ev) else fill for ev in lists]
        np.testing.assert_array_equal(pad[name], np.array(want, dtype=float))
    reference = {
        "count": lambda ev: len(ev), "sum": lambda ev: sum(ev), "max": lambda ev: max(ev) if ev else fill,
        "min": lambda ev: min(ev) if ev else fill, "mean": lambda ev: sum(ev) / len(ev) if ev else fill,
    }
    for kind, ref in reference.items():
        (got,) = evaluate(Feature(f"{kind}(x)", "x", kind, fill=fill), arr, "x").values()
        np.testing.assert_allclose(got, [ref(ev) for ev in lists], rtol=1e-12, atol=1e-9, err_msg=kind)


# -- Parquet, HDF5 and CSV inputs ------------------------------------------------------------------------


def flat_frames(seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """TEST FIXTURE: flat background and signal tables (met, ht, a weight)."""
    rng = np.random.default_rng(seed)
    bkg = pd.DataFrame({"met": rng.exponential(30, 300), "ht": rng.exponential(200, 300), "w": rng.uniform(0.5, 2, 300)})
    sig = pd.DataFrame({"met": rng.exponential(90, 80), "ht": rng.exponential(500, 80), "w": rng.uniform(0.5, 2, 80)})
    return bkg, sig


FLAT_CARD = """
features = ["met", "ht"]
weight = "w"
preprocessing = "none"
{extra}
[background]
files = ["{bkg}"]
{bkg_label}
[signals.heavy]
files = ["{sig}"]
{sig_label}
"""


def write_format(folder: Path, fmt: str) -> Path:
    bkg, sig = flat_frames()
    folder.mkdir(parents=True, exist_ok=True)
    names = {"bkg": f"bkg.{fmt}", "sig": f"sig.{fmt}", "extra": "", "bkg_label": "", "sig_label": ""}
    if fmt == "parquet":
        bkg.to_parquet(folder / "bkg.parquet")
        sig.to_parquet(folder / "sig.parquet")
    elif fmt == "h5":  # pandas tables (PyTables), under a key named in the card
        names |= {"extra": 'tree = "events"'}
        bkg.to_hdf(folder / "bkg.h5", key="events", format="table")
        sig.to_hdf(folder / "sig.h5", key="events", format="fixed")
    elif fmt == "hdf5":  # plain h5py: a group of one-dimensional datasets
        names |= {"extra": 'tree = "ntuple"'}
        for name, frame in (("bkg", bkg), ("sig", sig)):
            with h5py.File(folder / f"{name}.hdf5", "w") as fh:
                for col in frame.columns:
                    fh[f"ntuple/{col}"] = frame[col].to_numpy()
    elif fmt == "csv":  # one file, a text label column telling the processes apart
        both = pd.concat([bkg.assign(kind="sm"), sig.assign(kind="bsm")], ignore_index=True)
        both.to_csv(folder / "all.csv", index=False)
        names |= {"bkg": "all.csv", "sig": "all.csv", "extra": 'label = "kind"', "bkg_label": 'label = "sm"',
                  "sig_label": 'label = ["bsm"]'}
    (folder / "card.toml").write_text(FLAT_CARD.format(**names))
    return folder / "card.toml"


def test_parquet_hdf5_and_csv_give_the_same_benchmark(tmp_path):
    bkg, sig = flat_frames()
    benches = {fmt: load(write_format(tmp_path / fmt, fmt)) for fmt in ("parquet", "h5", "hdf5", "csv")}
    for fmt, bench in benches.items():
        assert bench.event_counts() == {"train": 150, "validation": 30, "test": 120, "signal/heavy": 40,
                                        "signal_train/heavy": 40}, fmt
        background = pl.concat([bench.train, bench.validation, bench.test])
        # every background event exactly once, values as written (float32 features, float64 weight)
        np.testing.assert_array_equal(np.sort(background["met"].to_numpy()), np.sort(bkg["met"].to_numpy(np.float32)))
        np.testing.assert_array_equal(np.sort(background["w"].to_numpy() if "w" in background.columns
                                              else background["weight"].to_numpy()), np.sort(bkg["w"].to_numpy()))
        signal = pl.concat([bench.signals["heavy"], bench.signal_train["heavy"]])
        np.testing.assert_array_equal(np.sort(signal["ht"].to_numpy()), np.sort(sig["ht"].to_numpy(np.float32)))
        assert set(signal["process"]) == {"heavy"} and set(background["process"]) == {"background"}
    # the same events in four formats: the same content, the same data fingerprint
    assert len({b.fingerprint for b in benches.values()}) == 1


def test_standard_preprocessing_uses_the_training_background(tmp_path):
    card = write_format(tmp_path, "parquet")
    card.write_text(card.read_text().replace('preprocessing = "none"', 'log1p = ["ht"]'))
    bench = load(card)
    bkg, _ = flat_frames()
    # undo the standardisation with the recorded numbers and compare with log1p(ht) of the file
    prep = bench.meta["preprocessing"]
    raw_ht = np.log1p(bkg["ht"].to_numpy())
    train_ht = bench.train["ht"].to_numpy().astype(np.float64) * prep["std"]["ht"] + prep["mean"]["ht"]
    assert (np.abs(train_ht[:, None] - raw_ht[None, :]).min(axis=1) < 1e-5).all()  # float32 precision
    assert prep["mean"]["ht"] == pytest.approx(train_ht.mean(), rel=1e-5)
    assert bench.train["ht"].mean() == pytest.approx(0.0, abs=1e-5)
    assert bench.train["ht"].std(ddof=0) == pytest.approx(1.0, rel=1e-4)


# -- cache, card edits, data seeds -------------------------------------------------------------------------


def test_converted_once_and_reconverted_after_edits(mixed, monkeypatch):
    from hepad_plugins.datasets import table as table_module

    data, events = mixed
    card = data / "analysis.toml"
    first = load(card)
    calls = []
    real_read = table_module.read_file
    monkeypatch.setattr(table_module, "read_file", lambda *a: calls.append(a) or real_read(*a))
    assert load(card).fingerprint == first.fingerprint and calls == []  # Parquet cache only
    card.write_text("# a comment changes nothing\n" + card.read_text())
    assert load(card).fingerprint == first.fingerprint and calls == []
    card.write_text(card.read_text().replace('"max(jet_pt)"]', '"max(jet_pt)", "min(jet_pt)"]'))
    edited = load(card)
    assert len(calls) == 1 and edited.fingerprint != first.fingerprint and "min(jet_pt)" in edited.features
    changed = dict(events, met=events["met"] * 2)
    write_root(data / "ntuples" / "mixed.root", changed)
    assert load(card).fingerprint != edited.fingerprint and len(calls) == 2


def test_label_column_and_separate_files_together(mixed):
    """Background and one signal from a labelled file, a second signal from a file of its own without
    the label branch; events of the labelled file that no process selects are counted, not used."""
    data, events = mixed
    mixed_file = data / "ntuples" / "mixed.root"
    write_root(mixed_file, concat(events, toy_events(30, 2, False, 12)))  # 30 events of a process not in the card
    wprime = toy_events(90, 0, True, 11)
    del wprime["sample"]
    write_root(data / "ntuples" / "wprime.root", wprime)
    card = data / "analysis.toml"
    card.write_text(card.read_text() + '\n[signals.wprime]\nfiles = ["ntuples/wprime.root"]\n')
    bench = load(card)
    assert bench.event_counts() == {"train": 300, "validation": 60, "test": 240, "signal/hard": 100,
                                    "signal_train/hard": 100, "signal/wprime": 45, "signal_train/wprime": 45}
    assert bench.meta["unused_events"] == {str(mixed_file.resolve()): 30}
    wprime_met = np.sort(np.r_[bench.signals["wprime"]["met"].to_numpy(), bench.signal_train["wprime"]["met"].to_numpy()])
    assert bench.meta["preprocessing"]["log1p"] == ["met", "jet_pt[0]", "jet_pt[1]", "jet_pt[2]", "sum(jet_pt)",
                                                    "max(jet_pt)"]
    mean, std = bench.meta["preprocessing"]["mean"]["met"], bench.meta["preprocessing"]["std"]["met"]
    np.testing.assert_allclose(np.sort(np.expm1(wprime_met * std + mean)), np.sort(wprime["met"]), rtol=1e-4)


def test_data_seed_replaces_the_card_seed(mixed):
    data, _ = mixed
    card = data / "analysis.toml"  # [split] seed = 3
    canonical = load(card)
    assert load(card, data_seed=3).fingerprint == canonical.fingerprint
    other = load(card, data_seed=4)
    assert other.fingerprint != canonical.fingerprint and other.meta["split_seed"] == 4
    assert other.event_counts() == canonical.event_counts()
    assert not np.array_equal(other.test["met"].to_numpy(), canonical.test["met"].to_numpy())
    assert Table.uses_data_seed is True


def test_card_relative_to_data_dir_and_files_relative_to_card(mixed, monkeypatch, tmp_path):
    data, _ = mixed
    by_dir = load(Path("analysis.toml"), data_dir=data)
    monkeypatch.chdir(tmp_path)
    by_cwd = load(Path("data/analysis.toml"))
    assert by_dir.fingerprint == by_cwd.fingerprint
    assert by_dir.meta["files"]["background"] == [str((data / "ntuples" / "mixed.root").resolve())]


# -- errors: one line, exit code 2, nothing written ----------------------------------------------------------


def _write_negative_weight(data: Path) -> None:
    events = toy_events(50, 0, False, 9)
    events["w"][7] = -0.5
    write_root(data / "ntuples" / "mixed.root", events)


def _write_text_column(data: Path) -> None:
    pd.DataFrame({"met": [1.0, 2.0], "kind": ["a", "b"]}).to_csv(data / "text.csv", index=False)
    pd.DataFrame({"met": [3.0, 4.0], "kind": ["c", "d"]}).to_csv(data / "text_signal.csv", index=False)


TEXT_CARD = """
features = ["met", "kind"]
[background]
files = ["text.csv"]
[signals.s]
files = ["text_signal.csv"]
"""


def _write_two_trees(data: Path) -> None:
    path = write_root(data / "ntuples" / "mixed.root", toy_events(50, 0, False, 9))
    with uproot.update(path) as fh:
        fh.mktree("Runs", {"run": np.int32})
        fh["Runs"].extend({"run": np.arange(3, dtype=np.int32)})


ERRORS = {  # case: (card text edit, data edit, fragments the one line must hold)
    "no card option": (None, None, ["dataset table needs a card: -o card="]),
    "missing card": ("<delete>", None, ["analysis.toml not found"]),
    "bad toml": (lambda c: c.replace('label = "sample"', 'label = "sample'), None,
                 ["analysis.toml: not valid TOML", "line"]),
    "unknown key": (lambda c: c.replace("resonant =", "resonance ="), None,
                    ["analysis.toml: unknown key 'resonance'"]),
    "bad expression": (lambda c: c.replace("jet_pt[0:3]", "jet_pt[3:1]"), None,
                       ["analysis.toml: features 'jet_pt[3:1]'", "selects no element"]),
    "missing file": (lambda c: c.replace('["ntuples/mixed.root"]\nlabel = 1', '["ntuples/zprime.root"]'), None,
                     ["zprime.root not found", "[signals.hard]"]),
    "glob matches nothing": (lambda c: c.replace('["ntuples/mixed.root"]\nlabel = 0', '["ntuples/*.parquet"]'),
                             None, ["[background] files: no file matches 'ntuples/*.parquet'"]),
    "missing tree": (lambda c: c.replace('tree = "Events"', 'tree = "Event"'), None,
                     ["mixed.root: no TTree 'Event'", "'Events'"]),
    "several trees, none named": (lambda c: c.replace('tree = "Events"\n', ""), _write_two_trees,
                                  ["mixed.root: holds 2 TTrees (Events, Runs)", 'tree = "..."']),
    "missing branch": (lambda c: c.replace('"met",', '"met", "jet_eta[0]",'), None,
                       ["mixed.root: no branch 'jet_eta'"]),
    "missing label branch": (lambda c: c.replace('label = "sample"', 'label = "process_id"'), None,
                             ["mixed.root: no branch 'process_id'"]),
    "jagged used flat": (lambda c: c.replace('"met",', '"met", "jet_pt",'), None,
                         ["mixed.root: branch 'jet_pt' holds a list per event", "jet_pt[0:N]"]),
    "flat used as list": (lambda c: c.replace('"met",', '"met[0]",'), None,
                          ["mixed.root: branch 'met' holds one value per event"]),
    "non-numeric column": (lambda c: TEXT_CARD, _write_text_column, ["text.csv: column 'kind' is not numeric"]),
    "signal without events": (lambda c: c.replace("label = 1", "label = 7"), None,
                              ["signal 'hard' has no events with label [7]", "mixed.root"]),
    "label type": (lambda c: c.replace("label = 1", 'label = "signal"'), None,
                   ["mixed.root: label column 'sample' holds numbers", "[signals.hard]"]),
    "negative weight": (None, _write_negative_weight, ["mixed.root: branch 'w' is negative in event 7"]),
    "not a root file": (None, lambda d: (d / "ntuples" / "mixed.root").write_bytes(b"not root"),
                        ["mixed.root: not a readable ROOT file"]),
    "shared file without labels": (lambda c: c.replace("label = 1\n", ""), None,
                                   ["mixed.root is named by background and signal/hard"]),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_are_one_line_exit_2_and_write_nothing(mixed, tmp_path, capsys, case):
    data, _ = mixed
    edit_card, edit_data, fragments = ERRORS[case]
    card = data / "analysis.toml"
    if edit_card == "<delete>":
        card.unlink()
    elif edit_card is not None:
        card.write_text(edit_card(card.read_text()))
    if edit_data is not None:
        edit_data(data)
    out = tmp_path / "results"
    option = [] if case == "no card option" else ["-o", "card=analysis.toml"]
    code, stdout, err = run_cli(["run", "--dataset", "table", "--data-dir", str(data), *option, "-d", "iforest",
                                 "--output", str(out), "--quiet", "--device", "cpu"], capsys)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    text = " ".join(err.split())
    assert text.startswith("error:") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    assert not [p for p in out.rglob("*") if p.is_file()], "nothing may be written on an error"


# -- cards and commands --------------------------------------------------------------------------------------


def toml_blocks(markdown: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", markdown, flags=re.S)


@pytest.mark.parametrize("source", ["datasets/table/CARD.md", "README.md"])
def test_documented_example_cards_parse(tmp_path, source):
    text = (Path(__file__).resolve().parents[1] / source).read_text()
    cards = [b for b in toml_blocks(text) if "[background]" in b]
    assert cards, f"{source} has no example card"
    for i, block in enumerate(cards):
        (tmp_path / f"c{i}.toml").write_text(block)
        card = read_card(tmp_path / f"c{i}.toml")  # parsed and checked (no file opened)
        assert card.features and card.signals


def test_datasets_info_and_fetch(capsys):
    code, out, _ = run_cli(["datasets", "info", "table"], capsys)
    assert code == 0 and "count(jet_pt)" in out and "[signals.zprime]" in out
    code, _, err = run_cli(["datasets", "fetch", "table"], capsys)
    assert code == 2 and "nothing to download" in err


def test_card_errors_before_any_file(tmp_path):
    (tmp_path / "c.toml").write_text('features = ["a", "a"]\n[background]\nfiles = ["x"]\n[signals.s]\nfiles = ["y"]\n')
    with pytest.raises(UserError, match="feature column 'a' appears twice"):
        read_card(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text('features = ["a"]\nresonant = "a"\n[background]\nfiles = ["x"]\n'
                                     '[signals.s]\nfiles = ["y"]\n')
    with pytest.raises(UserError, match="resonant observable 'a' is also a feature"):
        read_card(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text('features = ["a"]\n[background]\nfiles = ["x"]\nlabel = 1\n'
                                     '[signals.s]\nfiles = ["y"]\n')
    with pytest.raises(UserError, match="names no label column"):
        read_card(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text('features = ["a"]\n[split]\ntrain = 0.9\nvalidation = 0.2\n'
                                     '[background]\nfiles = ["x"]\n[signals.s]\nfiles = ["y"]\n')
    with pytest.raises(UserError, match="train \\+ validation < 1"):
        read_card(tmp_path / "c.toml")
    assert issubclass(DataError, UserError)
