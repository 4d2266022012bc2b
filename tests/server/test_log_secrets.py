"""The log check of every service test (log_secrets.py) sees what it must and tells it without repeating it."""

from __future__ import annotations

import logging
from pathlib import Path

import archive_app
import pytest
from log_secrets import USER_PASSWORD, Recorder, leaked, patient_identities, watch

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn", reason="the server extra (pip install 'deepkedi[server]')")

from deepkedi.server.logs import masked_path  # noqa: E402


def test_the_check_finds_a_password_a_token_and_a_patient_name_in_service_logs(no_secret_in_logs: Recorder) -> None:
    token = "kedi_" + "x" * 43
    watch(token)
    server = logging.getLogger("deepkedi.server.accounts")
    server.debug("sign-in with %s", USER_PASSWORD)
    assert leaked(no_secret_in_logs) == ["a watched secret"]
    no_secret_in_logs.lines.clear()
    logging.getLogger("uvicorn.access").info("GET /studies?PatientName=%s", "DEMO^PATIENT")
    try:
        raise ValueError(f"bad token {token}")
    except ValueError:
        logging.getLogger("starlette").exception("request failed")
    assert leaked(no_secret_in_logs) == ["a patient identity", "a watched secret"]
    no_secret_in_logs.lines.clear()  # what this test logged on purpose must not fail it


def test_client_side_loggers_are_not_the_services() -> None:
    logging.getLogger("httpx").info("HTTP Request: GET /dicomweb/studies?PatientName=DEMO%5EPATIENT")
    logging.getLogger("httpx").info("GET /dicomweb/studies?PatientName=DEMO^PATIENT")


def test_the_patient_identities_are_those_of_the_samples() -> None:
    identities = patient_identities()
    expected = {"DEMO^PATIENT", "DEMO-0001", "CompressedSamples^CT1", "CompressedSamples", "1CT1", "JXD191021006"}
    assert expected <= identities
    assert "1234" not in identities  # nibabel's Patient ID: too short and hexadecimal, it occurs by chance


def test_a_real_servers_request_log_is_recorded_without_query_or_uid(
    no_secret_in_logs: Recorder, tmp_path: Path
) -> None:
    holder = archive_app.build(tmp_path / "service")
    try:
        with archive_app.serving(holder.app) as url:
            uid = "1.2.826.0.1.3680043.8.498.12345"
            httpx.get(f"{url}/dicomweb/studies", params={"PatientName": "DEMO^PATIENT"}, timeout=10)
            httpx.get(f"{url}/dicomweb/studies/{uid}/series", timeout=10)
    finally:
        archive_app.close(holder)
    access = [line for line in no_secret_in_logs.lines if line.startswith("uvicorn.access")]
    assert any('"GET /dicomweb/studies HTTP/1.1" 200' in line for line in access), access
    assert any("/dicomweb/studies/{uid}/series" in line for line in access), access
    assert not any("3680043" in line or "PatientName" in line for line in no_secret_in_logs.lines)


def test_masked_path() -> None:
    assert masked_path("/dicomweb/studies/1.2.3/series/4.5.6?PatientName=X") == "/dicomweb/studies/{uid}/series/{uid}"
    assert masked_path("/api/studies/ST-0123/audit") == "/api/studies/ST-0123/audit"
