"""Folder runs at archive scale: a process pool and a resumable SQLite manifest (docs/SCALE.md).

``kedi encrypt DIR`` and ``kedi decrypt DIR`` run through :func:`run_batch`; the
library's :func:`deepkedi.api.encrypt_tree` and :func:`~deepkedi.api.decrypt_tree`
stay the one-process, no-manifest calls.
"""

from deepkedi.batch.engine import BatchResult, Mode, Outcome, WorkerLostError, run_batch
from deepkedi.batch.manifest import MANIFEST_NAME, Entry, Manifest, ManifestMismatchError, Status

__all__ = [
    "MANIFEST_NAME",
    "BatchResult",
    "Entry",
    "Manifest",
    "ManifestMismatchError",
    "Mode",
    "Outcome",
    "Status",
    "WorkerLostError",
    "run_batch",
]
