"""Fitted sideband flows kept on disk, so that CATHODE and LaCATHODE fit one flow per data, seed and setting.

Both methods start from the same p(x | mjj) fitted on the sidebands (the
LaCATHODE paper reuses CATHODE's flow), and the flow is about 80 % of a
CATHODE fit (``benchmarks/cathode_profile.py``). An entry is keyed by
everything the fit reads: the bytes and shapes of the training and
validation arrays, the flow's settings, the run seed (its init and shuffling
streams derive from it), the device, torch's thread count and the torch and
zuko versions. On the CPU with a fixed thread count the fit is
deterministic, so a reused flow is bit for bit the flow the run would have
fitted (tested through the scores). On a GPU the reuse makes both methods
share one fit, as in the paper.

Entries live under ``<cache root>/flows`` (``HEPAD_BENCH_CACHE``), each with
the sha256 of its bytes; a damaged or unreadable entry is discarded with a
warning and the flow is fitted again. ``HEPAD_BENCH_FLOW_CACHE=0`` turns
reuse off (nothing read, nothing written).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zuko

from hepad_bench.cache import cache_root, file_sha256

ENV_SWITCH = "HEPAD_BENCH_FLOW_CACHE"
#: Bump when what an entry holds, or what the fit does with the same inputs, changes.
FORMAT = 1


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in {"0", "false", "no", "off"}


def folder() -> Path:
    return cache_root() / "flows"


def flow_key(arrays: Sequence[np.ndarray], settings: dict[str, Any]) -> str:
    """sha256 over the arrays (dtype, shape, bytes) and the settings, with the library versions."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(memoryview(a).cast("B"))
    versions = {"format": FORMAT, "torch": torch.__version__, "zuko": zuko.__version__}
    digest.update(json.dumps(settings | versions, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def load(key: str, device: torch.device, warn: Any) -> dict[str, Any] | None:
    """The stored state of ``key``, or None (absent, switched off, or damaged: then discarded and ``warn``-ed)."""
    if not enabled():
        return None
    path, record = folder() / f"{key}.pt", folder() / f"{key}.json"
    if not path.exists() and not record.exists():
        return None
    try:
        expected = json.loads(record.read_text())["sha256"]
        if file_sha256(path) != expected:
            raise ValueError("does not match its recorded sha256")
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # any damage means: fit again
        warn(f"damaged sideband-flow cache entry {path.name}: {exc}; discarded, fitting the flow again")
        for p in (path, record):
            p.unlink(missing_ok=True)
        return None


def store(key: str, state: dict[str, Any], warn: Any) -> None:
    """Write ``state`` atomically (a temporary file renamed into place), then its sha256 record.

    A cache that cannot be written costs a warning, never the run.
    """
    if not enabled():
        return
    target = folder()
    tmp = None
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{key}.", suffix=".tmp")
        os.close(fd)
        torch.save(state, tmp)
        record = json.dumps({"sha256": file_sha256(Path(tmp)), "format": FORMAT})
        os.replace(tmp, target / f"{key}.pt")
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{key}.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(record)
        os.replace(tmp, target / f"{key}.json")
    except OSError as exc:
        warn(f"the sideband flow could not be cached in {target}: {exc}")
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
