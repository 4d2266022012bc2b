"""The PostgreSQL server of the keystore's tests, for the service's tests: ``postgres_server`` and ``make_url``.

tests/keys/test_keystore_postgres.py starts a temporary cluster on a Unix socket once per
session (skipped only where its binaries or psycopg are missing, never under ``CI=true``);
``make_url()`` creates a fresh database on it and returns its SQLAlchemy URL. A test module
imports both names to use them as fixtures.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_KEYS = Path(__file__).parents[1] / "keys"
if str(_KEYS) not in sys.path:
    sys.path.insert(0, str(_KEYS))  # the fixtures' module imports its neighbour _keystore_suite
_SPEC = importlib.util.spec_from_file_location("_service_postgres_server", _KEYS / "test_keystore_postgres.py")
assert _SPEC is not None and _SPEC.loader is not None
_server = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_server)

postgres_server = _server.postgres_server
make_url = _server.make_url

__all__ = ["make_url", "postgres_server"]
