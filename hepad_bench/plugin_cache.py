"""The plugin metadata cache: what ``list``, ``--help``, ``datasets info`` and ``leaderboard`` need, without imports.

Importing every plugin costs seconds (torch, scikit-learn, pyod, zuko ...).
The first command after an install or a source edit imports them all, as
before, and writes what it learnt (names, kinds, versions, tasks, score
regions, config and options schemas with defaults and docs, dataset cards,
which hooks each plugin implements) to
``<hepad-bench cache>/plugins/registry-<environment>.json``. Later commands
read that file and import a plugin's module only when a class of it is used
(a run, a leaderboard's comparative metrics, a plugin's sub-commands).

The cache is valid while all of these are unchanged (any change: a rebuild):

* the candidate entry points (name, target, distribution and its version) and
  the ``HEPAD_BENCH_PLUGINS`` selection they reflect;
* the names of the installed distributions (``*.dist-info`` and ``.pth`` files
  of every ``sys.path`` folder: an install, upgrade or removal changes them),
  and the modification time of each plugin distribution's ``.dist-info``
  folder (a reinstall of the same version);
* size and modification time of every file the build read outside the Python
  installation and its site-packages: the modules of editable installs
  (hepad-bench's own checkout included) and the files they read while being
  imported (dataset cards), so that a developer's edit is seen at once;
* the Python and hepad-bench versions and this file's ``FORMAT``.

Broken plugins are never cached: they are imported (and reported) every time.
Only the standard library is imported here: this module runs before any
argument is parsed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FORMAT = 1
ENV_CACHE = "HEPAD_BENCH_CACHE"  # the same variable and default as hepad_bench.cache.cache_root (which imports polars)
#: files of installed distributions are keyed by the distributions' names, not stamped one by one
_INSTALLED_MARKERS = (".dist-info", ".egg-info", ".pth", ".egg-link")
#: system files read at import (/proc/self/maps ...): they change on every run and say nothing about plugins
_VOLATILE = ("/proc", "/sys", "/dev", "/run")


def cache_file() -> Path:
    root = os.environ.get(ENV_CACHE)
    if root:
        base = Path(root)
    else:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("hepad-bench"))
    environment = hashlib.sha256(f"{sys.prefix}|{sys.executable}".encode()).hexdigest()[:12]
    return base / "plugins" / f"registry-{environment}.json"


def _site_folders() -> list[str]:
    return [p for p in dict.fromkeys(sys.path) if p and os.path.isdir(p)]


def installed_key() -> str:
    """A digest of the installed distributions' names and versions (their metadata folders on ``sys.path``)."""
    digest = hashlib.sha256()
    for folder in sorted({os.path.realpath(f) for f in _site_folders()}):  # the script's folder comes and goes
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(_INSTALLED_MARKERS))
        except OSError:
            continue
        if names:
            digest.update(f"{folder}\0{chr(0).join(names)}\1".encode())
    return digest.hexdigest()


def _stamp(path: str) -> list[Any] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [path, st.st_mtime_ns, st.st_size]


def _excluded_roots() -> tuple[str, ...]:
    """Folders whose files are covered by the Python version and the installed-distribution key."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *_VOLATILE}
    import platformdirs  # caches that other libraries rewrite (matplotlib's font list ...), this cache

    roots |= {platformdirs.user_cache_dir(), str(cache_file().parent.parent)}
    for folder in _site_folders():
        try:
            if any(n.endswith(".dist-info") for n in os.listdir(folder)):
                roots.add(folder)
        except OSError:
            pass
    return tuple(os.path.join(os.path.realpath(r), "") for r in roots)


class FileRecorder:
    """The files read while plugins are imported: module sources and every file opened (an audit hook)."""

    _active: FileRecorder | None = None
    _hooked = False

    def __init__(self) -> None:
        self.opened: set[str] = set()
        self.modules_before: set[str] = set()

    @classmethod
    def _audit(cls, event: str, args: tuple) -> None:
        recorder = cls._active
        if recorder is None or event != "open":
            return
        path = os.fspath(args[0]) if isinstance(args[0], os.PathLike) else args[0]
        mode = args[1] if len(args) > 1 else None
        if isinstance(path, str) and not path.endswith(".pyc") and (not isinstance(mode, str) or "r" in mode):
            recorder.opened.add(os.path.abspath(path))

    @contextmanager
    def recording(self) -> Iterator[FileRecorder]:
        if not FileRecorder._hooked:  # audit hooks cannot be removed: one per process, idle outside a build
            sys.addaudithook(FileRecorder._audit)
            FileRecorder._hooked = True
        FileRecorder._active = self
        try:
            yield self
        finally:
            FileRecorder._active = None

    def stamps(self) -> list[list[Any]]:
        """(path, mtime_ns, size) of every file worth watching: editable sources, their data, this core."""
        files = set(self.opened)
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if isinstance(path, str):
                files.add(path)
        excluded = _excluded_roots()
        out = []
        for path in sorted(files):
            real = os.path.realpath(path)
            if real.startswith(excluded) or not os.path.isfile(real):
                continue
            stamp = _stamp(path)
            if stamp is not None:
                out.append(stamp)
        return out


def dist_info_stamps(folders: list[str]) -> list[list[Any]]:
    """Modification time of each plugin distribution's metadata folder (changed by a reinstall)."""
    return [s for s in (_stamp(f) for f in sorted(set(folders))) if s is not None]


def read(key: dict[str, Any]) -> dict[str, Any] | None:
    """The cached registry for ``key``, or None when absent, unreadable or stale."""
    path = cache_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
        return None
    for stamp in data.get("stamps", []):
        if _stamp(stamp[0]) != stamp:
            return None
    return data


def write(key: dict[str, Any], stamps: list[list[Any]], plugins: list[dict[str, Any]]) -> None:
    """Store the registry atomically (a concurrent reader sees the old file or the new one); failures are ignored."""
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".registry-", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump({"format": FORMAT, "key": key, "stamps": stamps, "plugins": plugins}, fh)
        os.replace(tmp, path)
    except OSError:  # a read-only cache folder: every command imports the plugins, as without a cache
        pass


def invalidate() -> None:
    try:
        cache_file().unlink()
    except OSError:
        pass
