"""Every service test's logs are searched for secrets: no password, token, key or patient name.

The issue's rule "no secret, password, key or patient name in logs" is checked on the
whole run of the service tests, not on one chosen scenario: an autouse fixture
(tests/server/conftest.py) records, at DEBUG, every log record of the service's side
(``deepkedi``, uvicorn, FastAPI, Starlette, SQLAlchemy, argon2, python-multipart) and of
the root logger while each test runs, and the test fails if a record's message or
traceback holds

- a password the tests use (the shared ones below; a test with its own adds it with
  :func:`watch`), a bearer token, a session cookie or a CSRF token (:func:`watch`,
  called by the tests' sign-in helpers), or a KEK (:func:`watch`);
- a patient's name, family name or Patient ID from the sample corpus or the bundled
  samples (what the tests upload).

The HTTP client's own loggers (httpx, httpcore) are left out: a client logs the URLs it
asks for, which is the client's business, not the service's. ``kedi serve`` run as a
process is checked in tests/server/test_serve_cli.py, on its standard error.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager

#: Passwords the service tests share (test_accounts.py and the end-to-end test use these).
ADMIN_PASSWORD = "admin passphrase for tests"
USER_PASSWORD = "user passphrase for tests"

#: Loggers of the service's side whose records are searched (and their children).
SERVICE_LOGGERS = (
    "deepkedi", "uvicorn", "fastapi", "starlette", "sqlalchemy", "argon2", "multipart", "python_multipart",
)  # fmt: skip

_watched: set[str] = set()


def watch(*secrets: str | bytes) -> None:
    """Add secrets (a password, token, cookie, key) that the current test's logs must not hold."""
    for secret in secrets:
        text = secret.hex() if isinstance(secret, bytes) else secret
        if len(text) >= 8:  # shorter strings occur by chance
            _watched.add(text)


def _hexish(value: str) -> bool:
    return all(c in "0123456789abcdefABCDEF-" for c in value)


@functools.cache
def patient_identities() -> frozenset[str]:
    """Patient names, family names and IDs of every sample the tests may upload."""
    import pydicom

    from deepkedi.datasets import sample_corpus
    from deepkedi.datasets.samples import DEMO_PATIENT

    found = {DEMO_PATIENT, "DEMO-0001"}
    for sample in sample_corpus():
        if sample.path.suffix.lower() != ".dcm":
            continue
        ds = pydicom.dcmread(sample.path, stop_before_pixels=True, force=True)
        name, patient_id = str(ds.get("PatientName", "")), str(ds.get("PatientID", ""))
        # Short values made of digits and hexadecimal letters occur by chance (in hashes, ports, times).
        for value in (name, name.split("^")[0], patient_id):
            if len(value.strip("^")) >= 6 or (len(value) >= 4 and not _hexish(value)):
                found.add(value)
    return frozenset(found)


class Recorder(logging.Handler):
    """Keeps each service-side record's message (and traceback) as one line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != "root" and not record.name.startswith(SERVICE_LOGGERS):
            return
        try:
            text = record.getMessage()
        except (TypeError, ValueError):  # a bad format string is the logger's bug; keep what there is
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text}")


def leaked(recorder: Recorder) -> list[str]:
    """The kinds of secret the recorded log holds (never the secrets themselves)."""
    log = "\n".join(recorder.lines)
    kinds = (("a watched secret", _watched), ("a patient identity", patient_identities()))
    return sorted(kind for kind, secrets in kinds if any(secret in log for secret in secrets))


@contextmanager
def recording() -> Iterator[Recorder]:
    """Record the service side's log records at DEBUG while the block runs; the shared passwords are watched."""
    recorder = Recorder()
    root = logging.getLogger()
    # uvicorn's loggers do not propagate once uvicorn has configured them: record them directly.
    direct = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    levels = {logger: logger.level for logger in (root, *direct)}
    for logger in levels:
        logger.addHandler(recorder)
        logger.setLevel(logging.DEBUG)
    _watched.clear()
    watch(ADMIN_PASSWORD, USER_PASSWORD)
    try:
        yield recorder
    finally:
        for logger, level in levels.items():
            logger.removeHandler(recorder)
            logger.setLevel(level)
