"""An xdist worker does its end-of-session garbage collection before it reports the session finished.

Why: once every worker has reported, the controller tells them to exit, and execnet
gives a worker 5 seconds to finish before it sends the worker a SIGINT
(``execnet.gateway_base.WorkerGateway._terminate_execution``). What a worker still
does then is pytest's unconfigure and cleanup, and both run a full ``gc.collect()``
(``_pytest/unraisableexception.py``) over everything the session left in memory: a
few hundred thousand objects here (torch, SQLAlchemy, pydicom, Hypothesis…), half a
second each on a quiet machine and several seconds on a loaded one (one full
collection in a worker took 5.6 s during a ``-n 2`` run on 2 shared cores). The SIGINT
then lands in the only Python code that runs during a collection, Hypothesis's gc
callback, and ``make test`` ended with a stray ``KeyboardInterrupt`` traceback from
``hypothesis/internal/conjecture/junkdrawer.py``.

So, still inside ``pytest_sessionfinish`` and before pytest-xdist's own hook reports
the worker finished (its hook wraps every plain one): collect once, while nothing is
waiting on the worker, then move what survives to the permanent generation
(:func:`gc.freeze`), so the collections after the report only scan what is created
after it. Garbage collected here still passes through pytest's unraisable-exception
hook, which reports it as before.
"""

from __future__ import annotations

import gc

import pytest

__all__ = ["pytest_sessionfinish"]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):  # set on xdist workers only
        gc.collect()
        gc.freeze()
