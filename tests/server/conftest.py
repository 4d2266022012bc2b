"""The service tests' shared rule: no secret, password, key or patient name in their logs (log_secrets.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from log_secrets import Recorder, leaked, recording


@pytest.fixture(autouse=True)
def no_secret_in_logs() -> Iterator[Recorder]:
    """Fails the test whose service-side log records hold a watched secret or a patient's identity."""
    with recording() as recorder:
        yield recorder
    found = leaked(recorder)
    # Name what leaked, never the secret itself (this message is itself part of the run's output).
    assert not found, f"the service's log holds {' and '.join(found)} ({len(recorder.lines)} records searched)"
