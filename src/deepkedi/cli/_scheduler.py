"""``--scheduler``: folder runs of `kedi encrypt` and `kedi decrypt` on a Dask cluster (docs/SCALE.md)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Annotated

import typer

__all__ = ["SchedulerOption", "cluster_logging"]

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
def cluster_logging(scheduler: str | None) -> Iterator[None]:
    """With a scheduler, Dask's log lines (a rescheduled chunk, a closed connection) kept off stderr.

    The run's outcome is the summary and the ``kedi: error:`` lines: a worker's death
    that the run survives is not an error, and the cluster's going away is one line, not
    the client's tracebacks. Dask configures a level per logger (``distributed.client``
    among them), so logging is switched off as a whole for the run (kedi itself prints
    through its consoles, not through logging). The scheduler and the workers keep their logs.
    """
    if scheduler is None:
        yield
        return
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)
