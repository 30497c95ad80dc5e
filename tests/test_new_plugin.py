"""``hepad-bench new-plugin``: names are checked, and each generated package installs and passes its own tests.

The slow tests generate a package into a temporary folder, pip-install it into
a fresh virtual environment (``--system-site-packages``, ``--no-deps``: the
dependencies come from this environment) and run the package's own pytest
suite there, which itself installs the package and runs it through the CLI.
"""

import json
import os
import subprocess
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

from hepad_bench import cli
from hepad_bench.scaffold import PluginNames, check_name, write_package
from cli_helpers import run_cli  # noqa: E402


@pytest.mark.parametrize("args, message", [
    (["new-plugin", "detector", "My_Detector"], "bad plugin name 'My_Detector'"),
    (["new-plugin", "detector", "double--hyphen"], "bad plugin name"),
    (["new-plugin", "detector", "9lives"], "bad plugin name"),
    (["new-plugin", "metric", "fine-name"], "unknown plugin kind 'metric'"),
    (["new-plugin", "detector", "iforest"], "a detector named 'iforest' is already installed (from hepad-bench)"),
])
def test_bad_names_are_one_line_errors(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(args, capsys)
    assert code == 2 and message in err and err.strip().count("\n") == 0
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_existing_non_empty_output_is_refused(capsys, tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "keep.txt").write_text("mine")
    code, _, err = run_cli(["new-plugin", "dataset", "my-data", "--output", str(tmp_path / "pkg")], capsys)
    assert code == 2 and "already exists and is not empty" in err
    assert [p.name for p in (tmp_path / "pkg").iterdir()] == ["keep.txt"]


def test_names_derive_from_the_cli_name():
    names = check_name("dataset", "adbench-cardio")
    assert (names.distribution, names.module, names.class_name) == (
        "hepad-bench-adbench-cardio", "hepad_adbench_cardio", "AdbenchCardioDataset")


@pytest.mark.parametrize("kind", ["detector", "dataset"])
def test_generated_files_are_well_formed(kind, tmp_path):
    names = PluginNames(kind, "my-thing")
    write_package(names, tmp_path / "pkg")
    project = tomllib.loads((tmp_path / "pkg" / "pyproject.toml").read_text())
    assert project["project"]["name"] == "hepad-bench-my-thing"
    assert project["project"]["entry-points"]["hepad_bench"] == {"hepad_my_thing": "hepad_my_thing"}
    for path in (tmp_path / "pkg").rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
        assert "__NAME__" not in path.read_text() and "__CLASS__" not in path.read_text()
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((tmp_path / "pkg" / ".github" / "workflows" / "tests.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    assert any("pytest" in step.get("run", "") for step in steps)


def fresh_venv(folder: Path) -> Path:
    """A virtual environment that also sees this environment's packages (hepad-bench among them)."""
    venv.create(folder, system_site_packages=True, with_pip=True)
    python = folder / "bin" / "python"
    site_dir = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]  # this interpreter's site-packages (editable hepad-bench, ...)
    Path(site_dir, "hepad_outer_env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["detector", "dataset"])
def test_generated_package_installs_and_passes_its_own_tests(kind, tmp_path, capsys):
    package = tmp_path / "pkg"
    cli.main(["new-plugin", kind, f"gen-{kind}", "--output", str(package)])
    assert f"tests/test_hepad_gen_{kind}.py" in capsys.readouterr().out
    python = fresh_venv(tmp_path / "venv")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(package)],
                   check=True, capture_output=True, text=True)
    found = subprocess.run(
        [str(python), "-c", "import json, importlib.metadata as m; print(json.dumps("
         "{e.name: [e.value, e.dist.name] for e in m.entry_points(group='hepad_bench')}))"],
        check=True, capture_output=True, text=True).stdout
    assert json.loads(found)[f"hepad_gen_{kind}"] == [f"hepad_gen_{kind}", f"hepad-bench-gen-{kind}"]
    env = os.environ | {"HEPAD_BENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=package,
                          capture_output=True, text=True, env=env, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout and "skipped" not in proc.stdout
