"""The dataset helpers under their old private name.

They now live in the public core module :mod:`hepad_bench.dataset_tools`
(issue 12: a third-party dataset needs them too); the first-party datasets
import them from there. This module only re-exports them so that existing
imports (``from hepad_plugins.datasets._common import split_rows``) keep
working.
"""

from __future__ import annotations

from hepad_bench.dataset_tools import (  # noqa: F401  (re-exports)
    ZENODO_URL, RemoteFile, Standardiser, cache_root, cached_benchmark, cached_raw_table, check_fractions,
    content_fingerprint, download, downloads_dir, fetch_files, file_identity, find_file, load_benchmark,
    missing_file_error, require_file, search_dirs, sha256_of, split_rows, table_sha256, take, take_block, warn,
    with_bookkeeping, zenodo_url,
)
