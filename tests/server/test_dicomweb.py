"""DICOMweb over the encrypted archive: STOW-RS, QIDO-RS, WADO-RS, the access policy, revocation, hostile uploads."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from archive_app import (
    ADMIN,
    AUDITOR,
    RAD_A,
    RAD_B,
    RESEARCHER,
    TECH_A,
    TECH_B,
    ArchiveApp,
    build,
    close,
    multipart,
    serving,
    split_multipart,
)
from fastapi.testclient import TestClient

from deepkedi.datasets import write_samples

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("samples")
    write_samples(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.dcm"))}


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[ArchiveApp]:
    holder = build(tmp_path / "home", max_upload_bytes=8 << 20)
    try:
        yield holder
    finally:
        close(holder)


@pytest.fixture
def client(archive: ArchiveApp) -> Iterator[TestClient]:
    with TestClient(archive.app) as c:
        yield c


def uids(data: bytes) -> tuple[str, str, str]:
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def stow(client: TestClient, parts: list[bytes]) -> tuple[int, dict]:
    body, content_type = multipart(parts)
    response = client.post("/dicomweb/studies", content=body, headers={"content-type": content_type})
    return response.status_code, response.json()


def instance_url(data: bytes) -> str:
    study, series, sop = uids(data)
    return f"/dicomweb/studies/{study}/series/{series}/instances/{sop}"


def storage_state(archive: ArchiveApp) -> tuple[list[str], dict[str, int]]:
    import sqlalchemy as sa

    files = sorted(str(p.relative_to(archive.home)) for p in (archive.home / "objects").rglob("*") if p.is_file())
    with archive.service.engine.connect() as conn:
        counts = {
            t: conn.execute(sa.text(f"select count(*) from {t}")).scalar_one()
            for t in ("archive_studies", "archive_series", "archive_instances")
        }
    return files, counts


def pseudonym_of(archive: ArchiveApp, data: bytes) -> str:
    study = archive.service.archive.find_study(uids(data)[0])
    assert study is not None
    return study.pseudonym


def assign(client: TestClient, archive: ArchiveApp, data: bytes, **body: object) -> None:
    previous = archive.principal
    archive.act_as(ADMIN)
    response = client.post(f"/api/studies/{pseudonym_of(archive, data)}/assign", json=body)
    assert response.status_code == 200, response.text
    archive.act_as(previous)


# ----------------------------------------------------------------------------------- round trip


def test_stow_then_wado_is_byte_identical_for_every_sample(
    archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]
) -> None:
    start = time.perf_counter()
    status, payload = stow(client, list(samples.values()))
    elapsed = time.perf_counter() - start
    assert status == 200, payload
    assert len(payload["00081199"]["Value"]) == len(samples)
    assert "00081198" not in payload
    print(f"STOW of {len(samples)} files: {len(samples) / elapsed:.1f} files/s")
    for name, data in samples.items():
        response = client.get(instance_url(data))
        assert response.status_code == 200, (name, response.text)
        assert response.headers["content-type"].startswith('multipart/related; type="application/dicom"')
        assert split_multipart(response) == [data], name
    stored = [e for e in archive.events_of("dicomweb.store") if e["outcome"] == "ok"]
    assert stored and all(e["target"].startswith("ST-") for e in stored)
    assert sum(e["details"]["stored"] for e in stored) == len(samples)
    retrieved = archive.events_of("dicomweb.retrieve")
    assert len(retrieved) == len(samples) and all(e["outcome"] == "ok" and e["target"] for e in retrieved)


def test_six_slice_study_stow_rate_and_study_retrieval(
    archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]
) -> None:
    study = [data for name, data in samples.items() if name.startswith("study/")]
    assert len(study) == 6
    start = time.perf_counter()
    status, _ = stow(client, study)
    elapsed = time.perf_counter() - start
    assert status == 200
    print(f"STOW of the six-slice study: {6 / elapsed:.1f} files/s ({elapsed * 1000:.0f} ms)")
    response = client.get(f"/dicomweb/studies/{uids(study[0])[0]}")
    assert response.status_code == 200
    assert sorted(split_multipart(response)) == sorted(study)


def test_qido_search_and_metadata(archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]) -> None:
    study = [data for name, data in samples.items() if name.startswith("study/")]
    ct = samples["CT_small.dcm"]
    assert stow(client, [*study, ct])[0] == 200
    studies = client.get("/dicomweb/studies").json()
    assert {s["0020000D"]["Value"][0] for s in studies} == {uids(study[0])[0], uids(ct)[0]}
    ds = pydicom.dcmread(io.BytesIO(ct), stop_before_pixels=True)
    by_uid = client.get("/dicomweb/studies", params={"StudyInstanceUID": uids(ct)[0]}).json()
    assert len(by_uid) == 1
    assert by_uid[0]["00100010"]["Value"][0]["Alphabetic"] == str(ds.PatientName)
    assert by_uid[0]["00201208"]["Value"] == [1]
    by_patient = client.get("/dicomweb/studies", params={"PatientID": str(ds.PatientID)}).json()
    assert [s["0020000D"]["Value"][0] for s in by_patient] == [uids(ct)[0]]
    by_modality = client.get("/dicomweb/studies", params={"ModalitiesInStudy": "CT"}).json()
    assert uids(ct)[0] in {s["0020000D"]["Value"][0] for s in by_modality}
    assert client.get("/dicomweb/studies", params={"00100020": "nobody"}).json() == []
    assert client.get("/dicomweb/studies", params={"PatientName": "*"}).status_code == 200
    assert client.get("/dicomweb/studies", params={"IssuerOfPatientID": "x"}).status_code == 400
    six = uids(study[0])[0]
    series = client.get(f"/dicomweb/studies/{six}/series").json()
    assert len(series) == 1 and series[0]["00201209"]["Value"] == [6]
    instances = client.get(f"/dicomweb/studies/{six}/series/{uids(study[0])[1]}/instances").json()
    assert sorted(i["00080018"]["Value"][0] for i in instances) == sorted(uids(d)[2] for d in study)
    metadata = client.get(instance_url(ct) + "/metadata").json()
    assert metadata[0]["00100010"]["Value"][0]["Alphabetic"] == str(ds.PatientName)
    assert "7FE00010" not in metadata[0]
    assert len(client.get(f"/dicomweb/studies/{six}/metadata").json()) == 6


def test_rendered_frame_is_a_windowed_png(archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]) -> None:
    from PIL import Image

    ct = samples["CT_small.dcm"]
    stow(client, [ct])
    response = client.get(instance_url(ct) + "/frames/1/rendered")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    ds = pydicom.dcmread(io.BytesIO(ct))
    assert image.mode == "L" and image.size == (ds.Columns, ds.Rows)
    narrow = client.get(instance_url(ct) + "/frames/1/rendered", params={"window": "40,1"}).content
    assert narrow != response.content
    assert client.get(instance_url(ct) + "/frames/2/rendered").status_code == 404
    assert archive.events_of("dicomweb.render")[0]["outcome"] == "ok"


def test_rendered_frame_is_a_jpeg_when_the_client_prefers_it(
    archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]
) -> None:
    import numpy as np
    from PIL import Image

    ct = samples["CT_small.dcm"]
    stow(client, [ct])
    url = instance_url(ct) + "/frames/1/rendered"
    png = client.get(url, headers={"Accept": "image/png"})
    jpeg = client.get(url, headers={"Accept": "image/png;q=0.5, image/jpeg"})
    assert png.headers["content-type"] == "image/png" and jpeg.headers["content-type"] == "image/jpeg"
    assert jpeg.content[:3] == b"\xff\xd8\xff"  # a JPEG's start of image
    lossless = np.asarray(Image.open(io.BytesIO(png.content)), dtype=float)
    lossy = np.asarray(Image.open(io.BytesIO(jpeg.content)), dtype=float)
    assert lossy.shape == lossless.shape and np.abs(lossy - lossless).mean() < 3.0  # the same picture
    low = client.get(url, headers={"Accept": "image/jpeg"}, params={"quality": 10}).content
    assert len(low) < len(jpeg.content)  # the quality parameter is the JPEG's, and cached apart
    assert client.get(url, headers={"Accept": "*/*"}).headers["content-type"] == "image/png"
    refused = client.get(url, headers={"Accept": "application/dicom"})
    assert refused.status_code == 406 and "\n" not in refused.json()["detail"]
    assert client.get(url, params={"quality": 0}).status_code == 422


# ----------------------------------------------------------------------------------- access policy


def test_radiologist_sees_only_assigned_studies_and_cannot_learn_others_exist(
    archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]
) -> None:
    ct, mr = samples["CT_small.dcm"], samples["MR_small.dcm"]
    stow(client, [ct, mr])
    assign(client, archive, ct, user_id=RAD_A.user_id)
    assign(client, archive, mr, group=RAD_B.group)
    archive.act_as(RAD_A)
    assert [s["0020000D"]["Value"][0] for s in client.get("/dicomweb/studies").json()] == [uids(ct)[0]]
    assert client.get("/dicomweb/studies", params={"StudyInstanceUID": uids(mr)[0]}).json() == []
    assert client.get(instance_url(ct)).status_code == 200
    study, series, sop = uids(mr)
    never = "1.2.826.0.1.3680043.8.498.1"
    for uid in (study, never):  # B's study and one that does not exist: the same answers
        for route in (
            f"/dicomweb/studies/{uid}",
            f"/dicomweb/studies/{uid}/metadata",
            f"/dicomweb/studies/{uid}/series",
            f"/dicomweb/studies/{uid}/instances",
            f"/dicomweb/studies/{uid}/series/{series}",
            f"/dicomweb/studies/{uid}/series/{series}/metadata",
            f"/dicomweb/studies/{uid}/series/{series}/instances",
            f"/dicomweb/studies/{uid}/series/{series}/instances/{sop}",
            f"/dicomweb/studies/{uid}/series/{series}/instances/{sop}/metadata",
            f"/dicomweb/studies/{uid}/series/{series}/instances/{sop}/frames/1/rendered",
        ):
            response = client.get(route)
            assert response.status_code == 404, route
            assert response.json() == {"detail": "no such study"}, route
    denied = [e for e in archive.events if e["outcome"] == "denied"]
    assert {e["target"] for e in denied} == {pseudonym_of(archive, mr), None}
    archive.act_as(RAD_B)  # by group
    assert [s["0020000D"]["Value"][0] for s in client.get("/dicomweb/studies").json()] == [uids(mr)[0]]
    assert client.get(instance_url(mr)).status_code == 200
    assert client.get(instance_url(ct)).status_code == 404


def test_technologist_sees_only_own_uploads_and_cannot_add_to_anothers_study(
    archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]
) -> None:
    ct, mr = samples["CT_small.dcm"], samples["MR_small.dcm"]
    archive.act_as(TECH_A)
    stow(client, [ct])
    archive.act_as(TECH_B)
    stow(client, [mr])
    assert [s["0020000D"]["Value"][0] for s in client.get("/dicomweb/studies").json()] == [uids(mr)[0]]
    assert client.get(instance_url(ct)).status_code == 404
    status, payload = stow(client, [ct])  # A's study, uploaded again by B
    assert status == 409 and payload["00081198"]["Value"][0]["00081197"]["Value"] == [0xA700]
    archive.act_as(TECH_A)
    assert client.get(instance_url(ct)).status_code == 200
    assert client.get(instance_url(mr)).status_code == 404


@pytest.mark.parametrize("who", [ADMIN, AUDITOR])
def test_roles_without_images_get_403_on_image_routes(
    archive: ArchiveApp, client: TestClient, samples: dict[str, bytes], who: object
) -> None:
    ct = samples["CT_small.dcm"]
    stow(client, [ct])
    archive.act_as(who)  # type: ignore[arg-type]
    study, _series, _ = uids(ct)
    for route in (
        "/dicomweb/studies",
        f"/dicomweb/studies/{study}",
        f"/dicomweb/studies/{study}/series",
        f"/dicomweb/studies/{study}/metadata",
        instance_url(ct),
        instance_url(ct) + "/metadata",
        instance_url(ct) + "/frames/1/rendered",
    ):
        assert client.get(route).status_code == 403, route
    body, content_type = multipart([ct])
    assert client.post("/dicomweb/studies", content=body, headers={"content-type": content_type}).status_code == 403
    assert all(e["outcome"] == "denied" for e in archive.events if e["user"] == who.username)  # type: ignore[attr-defined]


def test_researcher_sees_only_the_deidentified_view(
    archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]
) -> None:
    scan, ct = samples["scan.dcm"], samples["CT_small.dcm"]
    stow(client, [scan, ct])
    archive.act_as(RESEARCHER)
    body, content_type = multipart([scan])
    assert client.post("/dicomweb/studies", content=body, headers={"content-type": content_type}).status_code == 403
    assert client.get(instance_url(scan)).status_code == 404  # the real UIDs name nothing for a researcher
    found = client.get("/dicomweb/studies").json()
    assert len(found) == 2
    original = pydicom.dcmread(io.BytesIO(scan))
    text = repr(found)
    assert str(original.PatientName) == "DEMO^PATIENT"
    for secret in (str(original.PatientName), str(original.PatientID), original.StudyInstanceUID):
        assert secret and secret not in text
    assert all(f["00100020"]["Value"][0].startswith("DK-") for f in found)
    assert all("Value" not in f.get("00100010", {}) for f in found)  # Patient Name emptied (Z)
    results = []
    for study in found:
        study_uid = study["0020000D"]["Value"][0]
        assert study_uid.startswith("2.25.")
        (series,) = client.get(f"/dicomweb/studies/{study_uid}/series").json()
        series_uid = series["0020000E"]["Value"][0]
        (instance,) = client.get(f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances").json()
        sop = instance["00080018"]["Value"][0]
        url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop}"
        (data,) = split_multipart(client.get(url))
        results.append(data)
        ds = pydicom.dcmread(io.BytesIO(data))
        assert ds.PatientIdentityRemoved == "YES" and ds.SOPInstanceUID == sop and ds.StudyInstanceUID == study_uid
        metadata = client.get(url + "/metadata").json()[0]
        assert metadata["00080018"]["Value"] == [sop]
        assert client.get(url + "/frames/1/rendered").status_code == 200
    by_pixels = {pydicom.dcmread(io.BytesIO(d)).PixelData: d for d in results}
    assert set(by_pixels) == {original.PixelData, pydicom.dcmread(io.BytesIO(ct)).PixelData}
    released = by_pixels[original.PixelData]
    for secret in (
        str(original.PatientName),
        str(original.PatientID),
        original.StudyInstanceUID,
        original.SeriesInstanceUID,
        original.SOPInstanceUID,
    ):
        assert secret.encode() not in released, secret
    assert all(
        e["outcome"] == "ok"
        for e in archive.events
        if e["user"] == RESEARCHER.username and e["operation"] != "dicomweb.store" and e["outcome"] != "denied"
    )


def test_only_admin_assigns_and_revokes(archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]) -> None:
    ct = samples["CT_small.dcm"]
    stow(client, [ct])
    pseudonym = pseudonym_of(archive, ct)
    for who in (TECH_A, RAD_A, AUDITOR, RESEARCHER):
        archive.act_as(who)
        assert client.post(f"/api/studies/{pseudonym}/assign", json={"user_id": 3}).status_code == 403
        assert client.post(f"/api/studies/{pseudonym}/revoke").status_code == 403
        assert client.get("/api/studies").status_code == 403
    archive.act_as(ADMIN)
    assert client.post("/api/studies/ST-000000000000000000000000/assign", json={"user_id": 3}).status_code == 404
    assert client.post("/api/studies/..%2F..%2Fetc/revoke").status_code == 404
    listing = client.get("/api/studies").json()
    assert [s["id"] for s in listing] == [pseudonym] and listing[0]["instances"] == 1


def test_revoked_study_answers_410_everywhere(
    archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]
) -> None:
    ct = samples["CT_small.dcm"]
    stow(client, [ct])
    assign(client, archive, ct, user_id=RAD_A.user_id)
    pseudonym = pseudonym_of(archive, ct)
    archive.act_as(RAD_A)
    assert client.get(instance_url(ct) + "/frames/1/rendered").status_code == 200  # now in the frame cache
    archive.act_as(ADMIN)
    response = client.post(f"/api/studies/{pseudonym}/revoke")
    assert response.status_code == 200 and response.json()["revoked"] is True
    assert archive.events_of("study.revoke")[0]["target"] == pseudonym
    key_id = archive.service.archive.find_study(uids(ct)[0]).key_id
    assert archive.service.keystore.key_info(key_id).state == "revoked"
    study, _series, _ = uids(ct)
    for who in (TECH_A, RAD_A):
        archive.act_as(who)
        for route in (
            f"/dicomweb/studies/{study}",
            f"/dicomweb/studies/{study}/series",
            f"/dicomweb/studies/{study}/metadata",
            instance_url(ct),
            instance_url(ct) + "/metadata",
            instance_url(ct) + "/frames/1/rendered",
        ):
            assert client.get(route).status_code == 410, route
        assert client.get("/dicomweb/studies").json() == []
    archive.act_as(RAD_B)  # not assigned: still a 404, revocation does not reveal existence
    assert client.get(instance_url(ct)).status_code == 404


# ----------------------------------------------------------------------------------- hostile uploads


def test_duplicate_instance_same_bytes_acknowledged_different_bytes_refused(
    archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]
) -> None:
    ct = samples["CT_small.dcm"]
    assert stow(client, [ct])[0] == 200
    before = storage_state(archive)
    assert stow(client, [ct])[0] == 200  # a retried upload: acknowledged, nothing written
    assert storage_state(archive) == before
    ds = pydicom.dcmread(io.BytesIO(ct))
    ds.StudyDescription = "changed"
    changed = io.BytesIO()
    ds.save_as(changed, enforce_file_format=True)
    status, payload = stow(client, [changed.getvalue()])
    assert status == 409
    assert payload["00081198"]["Value"][0]["00081197"]["Value"] == [0x0111]
    assert storage_state(archive) == before
    assert split_multipart(client.get(instance_url(ct))) == [ct]


def test_garbage_non_dicom_and_oversize_are_refused_and_nothing_is_stored(
    archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]
) -> None:
    ct = samples["CT_small.dcm"]
    before = storage_state(archive)
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    truncated = ct[: len(ct) // 3]
    no_uid = io.BytesIO()
    ds = pydicom.dcmread(io.BytesIO(ct))
    del ds.SOPInstanceUID
    ds.save_as(no_uid, enforce_file_format=False)
    cases = [
        ("garbage", *multipart([b"\x00garbage" * 50])),
        ("png", *multipart([png])),
        ("one bad part among good", *multipart([ct, png])),
        ("no uid", *multipart([no_uid.getvalue()])),
        ("not multipart", ct, "application/dicom"),
        ("no boundary", b"x", 'multipart/related; type="application/dicom"'),
        ("unterminated", b"--b\r\nContent-Type: application/dicom\r\n\r\n" + ct, "multipart/related; boundary=b"),
        ("wrong part type", *multipart([ct])[0:1], 'multipart/related; type="image/png"; boundary=kedi-test-boundary'),
        ("empty", b"--b--\r\n", "multipart/related; boundary=b"),
        ("oversize", *multipart([ct + bytes(9 << 20)])),
    ]
    from deepkedi.datasets import sample_path

    bomb = pydicom.dcmread(sample_path("pydicom-examples_jpeg2k.dcm"))
    assert bomb.file_meta.TransferSyntaxUID.is_compressed
    bomb.Rows = bomb.Columns = 65535  # a few hundred kilobytes claiming 12 GiB of pixels
    bomb_file = io.BytesIO()
    bomb.save_as(bomb_file, enforce_file_format=True)
    cases.append(("decompression bomb", *multipart([bomb_file.getvalue()])))
    if len(truncated) > 132:
        cases.append(("truncated", *multipart([truncated])))
    for name, body, content_type in cases:
        response = client.post("/dicomweb/studies", content=body, headers={"content-type": content_type})
        assert 400 <= response.status_code < 500, (name, response.status_code)
        detail = response.json()["detail"] if response.status_code != 409 else response.headers["warning"]
        assert isinstance(detail, str) and "\n" not in detail and detail, name
        assert storage_state(archive) == before, name
    assert all(e["outcome"] in ("failed", "denied") for e in archive.events_of("dicomweb.store"))


def test_object_names_cannot_leave_the_storage_folder(tmp_path: Path) -> None:
    from deepkedi.server.archive import object_path

    good = object_path(tmp_path, "0123456789abcdef0123456789abcdef")
    assert good == tmp_path / "01" / "0123456789abcdef0123456789abcdef"
    for name in (
        "../../etc/passwd",
        "..",
        "/etc/passwd",
        "0123456789abcdef0123456789abcde/",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789abcdef0123456789abcdef\x00",
        "",
        "a" * 33,
        "..%2f" * 6,
    ):
        with pytest.raises(ValueError):
            object_path(tmp_path, name)


# ----------------------------------------------------------------------------------- at rest

_HEX = frozenset("0123456789abcdefABCDEF")


def searchable(value: str) -> bool:
    """Whether finding ``value`` in a file would mean something.

    The index stores keyed hashes and key ids as hexadecimal text, where any short run
    of hex digits occurs by chance (nibabel's Patient ID "1234" does, in about one run
    in three): such values are left out; every name and every other ID is searched.
    """
    if len(value) < 4:
        return False
    return not (len(value) < 8 and set(value) <= _HEX)


def test_searchable_leaves_out_only_short_hex_runs() -> None:
    assert not searchable("1234") and not searchable("abc")
    assert all(searchable(v) for v in ("DEMO^PATIENT", "1CT1", "021234567", "JXD191021006", "13US1"))


def test_nothing_readable_at_rest(archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]) -> None:
    status, _ = stow(client, list(samples.values()))
    assert status == 200
    archive.service.engine.dispose()  # checkpoint nothing away: look at every file SQLite wrote
    needles: set[bytes] = set()
    for data in samples.values():
        ds = pydicom.dcmread(io.BytesIO(data))
        for value in (
            str(ds.get("PatientName", "")),
            str(ds.get("PatientID", "")),
            str(ds.StudyInstanceUID),
            str(ds.SeriesInstanceUID),
            str(ds.SOPInstanceUID),
        ):
            if searchable(value):
                needles.add(value.encode())
        pixels = ds.PixelData
        middle = len(pixels) // 2
        run = pixels[middle : middle + 64]
        if len(set(run)) > 1:
            needles.add(run)
        assert len(pixels) >= 64
    assert b"DEMO^PATIENT" in needles
    files = [p for p in archive.home.rglob("*") if p.is_file()]
    assert any(p.name.startswith("service.db") for p in files)
    assert len([p for p in files if p.parent.parent == archive.home / "objects"]) == len(samples)
    hits = [(p.name, n[:20]) for p in files for n in needles if n in p.read_bytes()]
    assert hits == []


# ----------------------------------------------------------------------------------- a real client


def test_dicomweb_client_against_a_real_server(archive: ArchiveApp, samples: dict[str, bytes]) -> None:
    from dicomweb_client.api import DICOMwebClient

    study = [pydicom.dcmread(io.BytesIO(d)) for n, d in samples.items() if n.startswith("study/")]
    archive.act_as(TECH_A)
    with serving(archive.app) as base:
        client = DICOMwebClient(url=f"{base}/dicomweb")
        response = client.store_instances(datasets=study)
        assert len(response.ReferencedSOPSequence) == 6
        found = client.search_for_studies()
        assert [f["0020000D"]["Value"][0] for f in found] == [str(study[0].StudyInstanceUID)]
        series = client.search_for_series(study_instance_uid=str(study[0].StudyInstanceUID))
        assert len(series) == 1
        first = study[0]
        got = client.retrieve_instance(
            study_instance_uid=str(first.StudyInstanceUID),
            series_instance_uid=str(first.SeriesInstanceUID),
            sop_instance_uid=str(first.SOPInstanceUID),
        )
        assert got.SOPInstanceUID == first.SOPInstanceUID and got.PixelData == first.PixelData
        archive.act_as(RAD_A)
        assert client.search_for_studies() == []


def test_corpus_round_trip_render_and_nothing_at_rest(archive: ArchiveApp, client: TestClient) -> None:
    """The corpus DICOM files with pixel data: stored, retrieved byte-exact, rendered, unreadable at rest."""
    from deepkedi.datasets import sample_corpus

    corpus = {s.name: s.path.read_bytes() for s in sample_corpus() if s.path.suffix.lower() == ".dcm"}
    assert len(corpus) >= 5
    # Distinct instances only: a duplicate SOP Instance UID would be refused (tested above).
    by_sop: dict[str, tuple[str, bytes]] = {}
    for name, data in corpus.items():
        by_sop.setdefault(uids(data)[2], (name, data))
    start = time.perf_counter()
    status, payload = stow(client, [data for _, data in by_sop.values()])
    elapsed = time.perf_counter() - start
    assert status == 200, payload
    total = sum(len(d) for _, d in by_sop.values())
    print(f"STOW of the corpus: {len(by_sop)} files, {total / 1e6:.1f} MB in {elapsed:.2f} s")
    needles: set[bytes] = set()
    for name, data in by_sop.values():
        assert split_multipart(client.get(instance_url(data))) == [data], name
        rendered = client.get(instance_url(data) + "/frames/1/rendered")
        assert rendered.status_code == 200 and rendered.content.startswith(b"\x89PNG"), (name, rendered.text[:200])
        ds = pydicom.dcmread(io.BytesIO(data))
        for value in (str(ds.get("PatientName", "")), str(ds.get("PatientID", "")), str(ds.StudyInstanceUID)):
            if searchable(value):
                needles.add(value.encode())
        pixels = ds.PixelData
        for start_at in (len(pixels) // 3, len(pixels) // 2):
            run = pixels[start_at : start_at + 64]
            if len(run) == 64 and len(set(run)) > 4:
                needles.add(run)
    assert len(needles) > len(by_sop)
    archive.service.engine.dispose()
    files = [p for p in archive.home.rglob("*") if p.is_file()]
    assert [(p.name, n[:20]) for p in files for n in needles if n in p.read_bytes()] == []


def test_a_failure_while_indexing_leaves_no_object_and_no_row(
    archive: ArchiveApp, samples: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The object is written before its rows; if the rows fail, the object goes too (and a new study's key)."""
    from deepkedi.server.archive import Archive

    real_seal = Archive._seal

    def failing_seal(self: Archive, key: object, binding: str, attributes: object) -> bytes:
        if len(binding) == 32:  # the instance's row, after its object was written
            assert any((archive.home / "objects").rglob("*")), "the object is written first"
            raise RuntimeError("database went away")
        return real_seal(self, key, binding, attributes)  # type: ignore[arg-type]

    monkeypatch.setattr(Archive, "_seal", failing_seal)
    before = storage_state(archive)
    with TestClient(archive.app, raise_server_exceptions=False) as client:
        body, content_type = multipart([samples["CT_small.dcm"]])
        response = client.post("/dicomweb/studies", content=body, headers={"content-type": content_type})
    assert response.status_code == 500
    files, counts = storage_state(archive)
    assert files == [] and counts == before[1]
    assert [k.state for k in archive.service.keystore.list_keys() if (k.label or "").startswith("study ")] == [
        "revoked"
    ]


def test_an_object_without_its_row_is_never_served(
    archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]
) -> None:
    """What a crash between the object and its rows leaves (an unreferenced object) is invisible."""
    ct = samples["CT_small.dcm"]
    stow(client, [ct])
    import shutil

    objects = archive.home / "objects"
    (stored,) = [p for p in objects.rglob("*") if p.is_file()]
    # A copy under another random-looking name, in a fan-out folder other than the stored object's.
    prefix = "ab" if stored.parent.name != "ab" else "cd"
    (objects / prefix).mkdir(exist_ok=True)
    shutil.copy(stored, objects / prefix / (prefix + "0" * 30))
    found = client.get("/dicomweb/studies").json()
    assert len(found) == 1 and found[0]["00201208"]["Value"] == [1]
    assert len(split_multipart(client.get(f"/dicomweb/studies/{uids(ct)[0]}"))) == 1


def test_one_upload_mixing_new_known_duplicate_and_foreign_instances(
    archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]
) -> None:
    """Every instance of a request gets its own outcome, in order, whatever path stored it."""
    study = [data for name, data in samples.items() if name.startswith("study/")]
    ct, mr = samples["CT_small.dcm"], samples["MR_small.dcm"]
    archive.act_as(TECH_B)
    stow(client, [mr])
    archive.act_as(TECH_A)
    assert stow(client, study[:2])[0] == 200
    ds = pydicom.dcmread(io.BytesIO(study[3]))
    ds.StudyDescription = "another file with the same SOP Instance UID"
    clash = io.BytesIO()
    ds.save_as(clash, enforce_file_format=True)
    parts = [study[0], study[2], study[3], clash.getvalue(), study[4], study[2], mr, ct, study[5]]
    status, payload = stow(client, parts)
    assert status == 202
    stored = [item["00081155"]["Value"][0] for item in payload["00081199"]["Value"]]
    failed = {item["00081155"]["Value"][0]: item["00081197"]["Value"][0] for item in payload["00081198"]["Value"]}
    assert failed == {uids(study[3])[2]: 0x0111, uids(mr)[2]: 0xA700}
    assert stored == [uids(d)[2] for d in (study[0], study[2], study[3], study[4], study[2], ct, study[5])]
    for data in (*study, ct):
        assert split_multipart(client.get(instance_url(data))) == [data]
    assert storage_state(archive)[1]["archive_instances"] == 8  # six slices, CT, and B's MR


def test_every_archive_route_needs_a_signed_in_user(archive: ArchiveApp) -> None:
    """Enumerated from the app's schema, so that a new route cannot escape: no principal, 401, nothing audited."""
    import re

    archive.app.dependency_overrides.clear()  # the real current_principal: nobody signed in
    paths = archive.app.openapi()["paths"]
    routes = [(method.upper(), path) for path, methods in paths.items() for method in methods]
    assert len(routes) >= 15 and ("POST", "/dicomweb/studies") in routes
    with TestClient(archive.app) as client:
        for method, path in routes:
            url = re.sub(r"\{[^}]+\}", "1.2.3", path)
            response = client.request(method, url, content=b"x", headers={"content-type": "application/json"})
            assert response.status_code == 401, (method, path, response.status_code)
    assert archive.events == []


def test_a_key_revoked_in_the_keystore_directly_is_gone_at_once(
    archive: ArchiveApp, client: TestClient, samples: dict[str, bytes]
) -> None:
    """`kedi keys revoke` on the service's keystore while it runs: no cached key or frame outlives it."""
    ct = samples["CT_small.dcm"]
    stow(client, [ct])
    assert client.get(instance_url(ct) + "/frames/1/rendered").status_code == 200
    assert client.get(instance_url(ct)).status_code == 200
    study = archive.service.archive.find_study(uids(ct)[0])
    archive.service.keystore.revoke(study.key_id, actor="someone else")
    for route in (instance_url(ct), instance_url(ct) + "/frames/1/rendered", instance_url(ct) + "/metadata"):
        assert client.get(route).status_code == 410, route
    assert client.get("/dicomweb/studies").json() == []


def test_every_archive_on_one_keystore_uses_the_same_index_secret(archive: ArchiveApp) -> None:
    """A second process (a second Archive) on the same database finds the same keyed hashes, even after a race."""
    from deepkedi.server.archive import INDEX_KEY_LABEL, SERVICE_ACTOR, Archive

    first = archive.service.archive.uid_hmac("study", "1.2.3")
    again = Archive(archive.service)
    assert again.uid_hmac("study", "1.2.3") == first
    assert first != again.uid_hmac("series", "1.2.3") and "1.2.3" not in first
    # A process that lost the race made its own key, then found the first one claimed: it uses that one.
    late = Archive(archive.service)
    lost = archive.service.keystore.new_key(label=INDEX_KEY_LABEL, actor=SERVICE_ACTOR, gan=False)
    assert late._claim_setting("index_key_id", lost.key_id_hex) != lost.key_id_hex
    assert late.uid_hmac("study", "1.2.3") == first
