"""The study key's state is read from the keystore once per DICOMweb request, and still at every request.

A rendered frame looks the key up for the series, the instance and the frame; a
study's retrieval for each instance. Each of those lookups read the key's state in
the keystore (a database transaction); one per request is enough for revocation to
be seen by the next request (test_dicomweb.py's test_a_key_revoked_in_the_keystore_directly_is_gone_at_once).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from archive_app import ArchiveApp, build, close, multipart, split_multipart
from fastapi.testclient import TestClient

from deepkedi.datasets import write_samples


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[ArchiveApp]:
    holder = build(tmp_path / "home")
    try:
        yield holder
    finally:
        close(holder)


def test_one_key_state_read_per_request_and_one_at_every_request(
    archive: ArchiveApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pydicom

    write_samples(tmp_path / "samples")
    slices = [p.read_bytes() for p in sorted((tmp_path / "samples" / "study").glob("*.dcm"))]
    ds = pydicom.dcmread(tmp_path / "samples" / "study" / "slice-01.dcm", stop_before_pixels=True)
    study_url = f"/dicomweb/studies/{ds.StudyInstanceUID}"
    frame_url = f"{study_url}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/frames/1/rendered"
    keystore = archive.service.keystore
    reads: list[str] = []
    key_info = keystore.key_info

    def counted(key_id: str):  # type: ignore[no-untyped-def]
        reads.append(key_id)
        return key_info(key_id)

    with TestClient(archive.app) as client:
        body, content_type = multipart(slices)
        assert client.post("/dicomweb/studies", content=body, headers={"content-type": content_type}).status_code == 200
        monkeypatch.setattr(keystore, "key_info", counted)
        for _ in range(2):
            reads.clear()
            assert client.get(frame_url).status_code == 200
            assert len(reads) == 1  # series, instance and frame: one read of the key's state
        reads.clear()
        answer = client.get(study_url)
        assert answer.status_code == 200 and len(split_multipart(answer)) == len(slices)
        assert len(reads) == 1  # six instances read, one read of the key's state
    # Outside a request, every lookup still reads the key's state.
    study = archive.service.archive.find_study(str(ds.StudyInstanceUID))
    assert study is not None
    reads.clear()
    archive.service.archive.series(study)
    archive.service.archive.series(study)
    assert len(reads) == 2
