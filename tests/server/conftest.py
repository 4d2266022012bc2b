"""The service tests' shared rule, no secret, password, key or patient name in their logs (log_secrets.py),
and the PostgreSQL server their PostgreSQL runs use (postgres_fixtures.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from log_secrets import Recorder, leaked, recording
from postgres_fixtures import make_url, postgres_server

__all__ = ["make_url", "no_secret_in_logs", "postgres_server"]


@pytest.fixture(autouse=True)
def no_secret_in_logs() -> Iterator[Recorder]:
    """Fails the test whose service-side log records hold a watched secret or a patient's identity."""
    with recording() as recorder:
        yield recorder
    found = leaked(recorder)
    # Name what leaked, never the secret itself (this message is itself part of the run's output).
    assert not found, f"the service's log holds {' and '.join(found)} ({len(recorder.lines)} records searched)"
