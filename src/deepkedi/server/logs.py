"""What the service's request log may say: the path without its query, UIDs masked.

uvicorn's access log (logger ``uvicorn.access``) writes one line per request with the
path as the client sent it. A QIDO-RS search's query may name a patient
(``?PatientName=DOE^JANE``), and a StudyInstanceUID in a path identifies the study
across systems, so every server that runs this application, ``kedi serve`` or an
embedding of ``create_app``, installs :func:`protect_access_log` before serving:
the line keeps the path without its query string, each UID-shaped segment shown as
``{uid}``. docs/SERVICE.md, "Running the service" (Logs).
"""

from __future__ import annotations

import logging
import re

__all__ = ["ACCESS_LOGGER", "AccessLogFilter", "protect_access_log"]

#: uvicorn's request logger.
ACCESS_LOGGER = "uvicorn.access"
#: A path segment that is a DICOM UID (digits and dots).
_UID_SEGMENT = re.compile(r"(?<=/)[0-9]+(?:\.[0-9]+){2,}(?=/|$)")


def masked_path(path: str) -> str:
    """``path`` without its query string and with each UID-shaped segment replaced by ``{uid}``."""
    return _UID_SEGMENT.sub("{uid}", path.split("?", 1)[0])


class AccessLogFilter(logging.Filter):
    """Rewrites uvicorn's access record (client, method, path, HTTP version, status) in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], masked_path(args[2]), args[3], args[4])
        return True


def protect_access_log() -> None:
    """Install :class:`AccessLogFilter` on uvicorn's access logger (once; calling again changes nothing)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, AccessLogFilter) for existing in logger.filters):
        logger.addFilter(AccessLogFilter())
