"""``--scheduler``: folder runs of `kedi encrypt` and `kedi decrypt` on a Dask cluster (docs/SCALE.md)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Annotated

import typer

from deepkedi.cli._common import guarded

__all__ = ["SchedulerOption", "on_cluster"]

SchedulerOption = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        metavar="ADDRESS",
        help="Folder input: run on the Dask cluster whose scheduler is at ADDRESS (tcp://HOST:PORT); "
        "its workers need deepkedi and the folders at the same paths (kedi docs SCALE).",
    ),
]


@contextlib.contextmanager
def on_cluster(scheduler: str | None) -> Iterator[None]:
    """With a scheduler: reach it first, then keep Dask's log lines off stderr for the run.

    A missing extra, a malformed address or a scheduler that does not answer ends the
    command in one line (exit 2) before the progress bar starts and before anything is
    written. During the run, the outcome is the summary and the ``kedi: error:`` lines: a
    worker's death that the run survives is not an error, and the cluster's going away is
    one line, not the client's tracebacks. Dask configures a level per logger
    (``distributed.client`` among them), so logging is switched off as a whole for the run
    (kedi itself prints through its consoles, not through logging). The scheduler and
    the workers keep their logs.
    """
    if scheduler is None:
        yield
        return
    from deepkedi.batch import cluster

    with guarded():
        cluster.reach(scheduler)
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)
