"""Where the files shipped with hepad-bench live (dataset cards, embedded samples).

In a wheel, the repository's ``datasets/`` folder is installed as
``hepad_plugins/_datasets``; in a source checkout (editable install) it is
the ``datasets/`` folder at the repository root.
"""

from __future__ import annotations

from pathlib import Path


def datasets_root() -> Path:
    installed = Path(__file__).resolve().parent / "_datasets"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "datasets"


def dataset_folder(name: str) -> Path:
    return datasets_root() / name


def read_card(name: str) -> str:
    path = dataset_folder(name) / "CARD.md"
    return path.read_text() if path.exists() else ""
