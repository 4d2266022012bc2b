"""The web viewer in a real headless Chromium (Debian's ``chromium``), driven by Playwright.

One real uvicorn server on a loopback port (the whole app of ``create_app``, its real
MAC-chained audit) and one browser for the module; each role signs in through the
login page in its own browser context. A technologist uploads three studies through
STOW-RS with dicomweb-client and a bearer token, the admin assigns them to
radiologist A's group, and the tests assert on what the pages *show*: pixels of the image
canvas (slices and windows differ, the decrypted picture is the file's, B's and the
admin's canvas holds nothing, a revoked study is noise), not only their text.

``KEDI_WRITE_SCREENSHOTS=1`` also writes docs/figures/viewer.png (the viewer showing a
CT slice); test runs leave tracked files alone otherwise.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pydicom
import pytest

pytest.importorskip("fastapi", reason="the server extra (pip install 'deepkedi[server]')")
pytest.importorskip("playwright.sync_api", reason="Playwright (pip install 'deepkedi[test]')")

import httpx
from archive_app import serving
from external_tools import require_tool
from log_secrets import ADMIN_PASSWORD, watch
from log_secrets import USER_PASSWORD as PASSWORD
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from deepkedi.datasets import write_samples
from deepkedi.server.app import create_app
from deepkedi.server.config import ServiceConfig
from deepkedi.server.dicomweb import render_frame

#: The switches that keep Chromium off the network (closed here): no background fetches of any kind.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REVOKED_MESSAGE = "This study's key was revoked: its images can no longer be decrypted. Shown: the stored ciphertext."
NO_SUCH_STUDY = "No such study, or you are not allowed to see it."
FIGURE = Path(__file__).resolve().parents[2] / "docs" / "figures" / "viewer.png"


@dataclass
class Site:
    """The running service, its users, the uploaded studies and the browser."""

    base: str
    app: Any
    browser: Browser
    samples: Path
    admin_token: str
    tech_token: str
    #: name → pseudonym of the uploaded studies: "liver" (six slices), "brain" (scan.dcm), "mr" (MR_small.dcm);
    #: the revocation test uploads its own ("small", CT_small.dcm), so that no test depends on another's order
    studies: dict[str, str] = field(default_factory=dict)
    #: problems the pages reported (uncaught errors, CSP violations), checked after each test
    page_errors: list[str] = field(default_factory=list)
    #: the KEK and the bearer tokens, which no log of the service may hold (tests/server/log_secrets.py)
    secrets: list[str | bytes] = field(default_factory=list)

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def assign(self, pseudonym: str) -> None:
        """The admin assigns a study to radiologist A's group ("neuro")."""
        assigned = self.api("POST", f"/api/studies/{pseudonym}/assign", json={"group": "neuro"})
        assert assigned.status_code == 200, assigned.text

    def page_for(self, username: str, password: str = PASSWORD) -> tuple[BrowserContext, Page]:
        """A fresh browser context signed in as ``username`` through the login page."""
        context = self.browser.new_context(viewport={"width": 1140, "height": 800})
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.on("pageerror", lambda error: self.page_errors.append(f"{username}: {error}"))
        page.on(
            "console",
            lambda message: (
                self.page_errors.append(f"{username}: {message.text}")
                if "Content Security Policy" in message.text
                else None
            ),
        )
        page.goto(self.base + "/viewer/")
        page.wait_for_url("**/viewer/login?next=*")
        page.fill("#username", username)
        page.fill("#password", password)
        page.click("#sign-in")
        page.wait_for_url(self.base + "/viewer/")
        page.wait_for_selector("body[data-state=ready]")
        return context, page

    def open_study(self, page: Page, name: str) -> None:
        page.goto(f"{self.base}/viewer/study?study={self.studies[name]}")
        # (a CSS selector: wait_for_function would evaluate a string, which the pages' CSP forbids)
        page.wait_for_selector("body[data-state]:not([data-state=loading])")


def _bearer(base: str, username: str, password: str) -> str:
    signed_in = httpx.post(f"{base}/api/login", json={"username": username, "password": password}, timeout=30)
    assert signed_in.status_code == 200, signed_in.text
    cookie = signed_in.cookies["kedi_session"]
    made = httpx.post(
        f"{base}/api/tokens",
        headers={"Cookie": f"kedi_session={cookie}", "X-CSRF-Token": signed_in.json()["csrf_token"]},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    executable = require_tool("chromium", install="Debian's chromium package (`make setup`)")
    from dicomweb_client.api import DICOMwebClient

    folder = tmp_path_factory.mktemp("viewer")
    samples = folder / "samples"
    write_samples(samples)
    kek = os.urandom(32)
    app = create_app(ServiceConfig(home=folder / "service", kek_source=kek, admin_password=ADMIN_PASSWORD))
    started = time.perf_counter()
    try:
        with serving(app) as base, sync_playwright() as playwright:
            admin = _bearer(base, "admin", ADMIN_PASSWORD)
            for username, role, group in [
                ("tech", "technologist", None),
                ("rad-a", "radiologist", "neuro"),
                ("rad-b", "radiologist", "chest"),
                ("rad-c", "radiologist", "chest"),
                ("research", "researcher", None),
                ("audit", "auditor", None),
            ]:
                made = httpx.post(
                    f"{base}/api/users",
                    headers={"Authorization": f"Bearer {admin}"},
                    json={"username": username, "password": PASSWORD, "role": role, "group": group},
                    timeout=30,
                )
                assert made.status_code == 201, made.text
            # The technologist uploads through STOW-RS with a DICOMweb client and a bearer token.
            tech = _bearer(base, "tech", PASSWORD)
            client = DICOMwebClient(url=f"{base}/dicomweb", headers={"Authorization": f"Bearer {tech}"})
            uploads = {
                "liver": sorted((samples / "study").glob("*.dcm")),
                "brain": [samples / "scan.dcm"],
                "mr": [samples / "MR_small.dcm"],
            }
            for files in uploads.values():
                stored = client.store_instances(datasets=[pydicom.dcmread(f) for f in files])
                assert len(stored.ReferencedSOPSequence) == len(files)
            listed = httpx.get(f"{base}/api/studies", headers={"Authorization": f"Bearer {admin}"}, timeout=30).json()
            assert [s["instances"] for s in listed] == [6, 1, 1]
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            world = Site(
                base=base,
                app=app,
                browser=browser,
                samples=samples,
                admin_token=admin,
                tech_token=tech,
                secrets=[kek, admin, tech],
            )
            for name, study in zip(uploads, listed, strict=True):
                world.studies[name] = study["id"]
                world.assign(study["id"])
            print(f"viewer site ready in {time.perf_counter() - started:.1f} s; load {os.getloadavg()}")
            try:
                yield world
            finally:
                browser.close()
    finally:
        app.state.service.close()


@pytest.fixture(autouse=True)
def no_page_errors(site: Site) -> Iterator[None]:
    watch(*site.secrets)
    yield
    errors, site.page_errors[:] = list(site.page_errors), []
    assert errors == []


# ----------------------------------------------------------------------------------- pixels


def canvas_pixels(page: Page) -> np.ndarray:
    """The image canvas as the browser shows it (a screenshot of the element), grey levels as float."""
    png = page.locator("#image").screenshot()
    # An element at a fractional offset is captured one row or column larger: keep the canvas's 640 x 640.
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)[:640, :640]


def shown(page: Page, key: str) -> None:
    """Wait until the canvas shows ``key`` (mode:slice:window, as study.js labels what it drew)."""
    page.wait_for_selector(f'#image[data-shown="{key}"]')


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def as_reference(screenshot: np.ndarray, file: Path, window: tuple[float, float] | None = None) -> float:
    """How well the canvas matches the file's own pixels rendered here (Pearson r, screenshot downscaled)."""
    reference = np.asarray(Image.open(io.BytesIO(render_frame(file.read_bytes(), 1, window))), dtype=np.float64)
    small = np.asarray(
        Image.fromarray(screenshot.astype(np.uint8)).resize(reference.shape[::-1], Image.Resampling.BOX),
        dtype=np.float64,
    )
    return correlation(small, reference)


def entropy(pixels: np.ndarray) -> float:
    counts = np.bincount(pixels.astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


# ----------------------------------------------------------------------------------- tests


def test_sign_in_page_refuses_a_wrong_password_and_pages_carry_the_security_headers(site: Site) -> None:
    context = site.browser.new_context()
    try:
        page = context.new_page()
        response = page.goto(site.base + "/viewer/study?study=" + site.studies["liver"])
        page.wait_for_url("**/viewer/login?next=*")  # no session: off to sign in
        assert response is not None
        headers = response.headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
        page.fill("#username", "rad-a")
        page.fill("#password", "not the password at all")
        page.click("#sign-in")
        page.wait_for_selector("#message:not([hidden])")
        assert page.inner_text("#message") == "wrong user name or password"
        page.fill("#password", PASSWORD)
        page.click("#sign-in")
        page.wait_for_url("**/viewer/study?study=" + site.studies["liver"])  # back where it was asked
        shown(page, "decrypted:1:file")
        # The policy is enforced, not only sent: an inline script injected into the page does not run.
        ran = page.evaluate(
            """() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';
                       document.body.append(s); return window.injected === 1; }"""
        )
        assert ran is False
        site.page_errors[:] = [e for e in site.page_errors if "Content Security Policy" not in e]
        # The session cookie is HttpOnly: the page's scripts cannot read it.
        assert "kedi_session" not in page.evaluate("document.cookie")
        frame = page.request.get(site.base + "/api/viewer/studies")
        assert frame.headers["cache-control"] == "no-store"
    finally:
        context.close()


@pytest.mark.parametrize("elsewhere", ["//example.org/x", "https://example.org/", "/api/logout"])
def test_sign_in_goes_back_only_to_a_page_of_the_viewer(site: Site, elsewhere: str) -> None:
    context = site.browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{site.base}/viewer/login?next={quote(elsewhere, safe='')}")
        page.fill("#username", "tech")
        page.fill("#password", PASSWORD)
        page.click("#sign-in")
        page.wait_for_url(site.base + "/viewer/")  # not an open redirect, not a route of the API
    finally:
        context.close()


def test_radiologist_a_scrolls_windows_and_zooms(site: Site) -> None:
    context, page = site.page_for("rad-a")
    try:
        rows = page.locator("#studies tbody tr")
        assert rows.count() == 3
        assert page.locator("#studies tbody").inner_text().count("DEMO^PATIENT") == 2
        # Search through QIDO-RS: by name (wildcards added), by modality, by Patient ID.
        for field, value, found in [
            ("#q-name", "compressed", ["CompressedSamples^MR1"]),
            ("#q-modality", "CT", ["DEMO^PATIENT", "DEMO^PATIENT"]),
            ("#q-id", "DEMO-0001", ["DEMO^PATIENT", "DEMO^PATIENT"]),
            ("#q-id", "nobody", []),
        ]:
            page.click("#q-clear")
            page.wait_for_selector("body[data-state=ready]")
            if field == "#q-modality":
                page.select_option(field, value)
            else:
                page.fill(field, value)
            page.click("#q-go")
            page.wait_for_selector("body[data-state=ready]")
            names = page.locator("#studies tbody tr td:first-child").all_inner_texts()
            assert names == found, (field, value, names)
            assert page.inner_text("#message") == f"{len(found)} of 3 studies match."

        site.open_study(page, "liver")
        slices = sorted((site.samples / "study").glob("*.dcm"))
        shown(page, "decrypted:1:file")
        assert "DEMO^PATIENT" in page.inner_text("#study-info")
        first = canvas_pixels(page)
        assert as_reference(first, slices[0]) > 0.95  # the decrypted slice itself
        page.keyboard.press("ArrowDown")
        shown(page, "decrypted:2:file")
        second = canvas_pixels(page)
        assert as_reference(second, slices[1]) > 0.95
        assert np.abs(second - first).mean() > 1.0  # another slice, other pixels
        box = page.locator("#viewport").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, 120)
        shown(page, "decrypted:3:file")
        assert page.input_value("#slice") == "3" and page.inner_text("#slice-label") == "3 / 6"
        third = canvas_pixels(page)

        # Window/level: a preset, then typed values, then a drag; each rendered by the server.
        page.select_option("#preset", label="Bone (W 1800 L 400)")
        shown(page, "decrypted:3:400,1800")
        bone = canvas_pixels(page)
        assert as_reference(bone, slices[2], (400, 1800)) > 0.95
        assert np.abs(bone - third).mean() > 5.0
        page.fill("#wc", "-600")
        page.fill("#ww", "1500")
        page.click("#apply-window")
        shown(page, "decrypted:3:-600,1500")
        lung = canvas_pixels(page)
        assert np.abs(lung - bone).mean() > 5.0
        page.mouse.move(box["x"] + 300, box["y"] + 300)
        page.mouse.down()
        page.mouse.move(box["x"] + 360, box["y"] + 340, steps=4)
        page.mouse.up()
        page.wait_for_selector('#image:not([data-shown$=":-600,1500"])')
        page.wait_for_selector("body[data-state=ready]")
        assert page.input_value("#ww") != "1500" and page.input_value("#wc") != "-600"

        # Zoom: the middle of the image fills the canvas; zoomed out, a black margin appears; Fit brings it back.
        page.keyboard.press("2")  # the lung preset: air is grey, not black like the canvas around the image
        shown(page, "decrypted:3:-600,1500")
        page.click("#zoom-fit")
        fitted = canvas_pixels(page)
        page.keyboard.press("+")
        page.keyboard.press("+")
        page.wait_for_selector('#image[data-zoom="156"]')
        zoomed = canvas_pixels(page)
        side = round(640 / 1.5625)
        low = (640 - side) // 2
        middle = Image.fromarray(fitted[low : low + side, low : low + side].astype(np.uint8)).resize((640, 640))
        assert correlation(zoomed, np.asarray(middle, dtype=np.float64)) > 0.9 > correlation(zoomed, fitted)
        page.click("#zoom-fit")
        page.click("#zoom-out")
        page.wait_for_selector('#image[data-zoom="80"]')
        assert (canvas_pixels(page) == 0).mean() > 0.3 > (fitted == 0).mean()
        page.keyboard.press("0")
        page.wait_for_selector('#image[data-zoom="100"]')
        assert np.array_equal(canvas_pixels(page), fitted)

        # More keys: R (the file's window), End, PageUp (five back), arrows.
        page.keyboard.press("r")
        page.keyboard.press("End")
        shown(page, "decrypted:6:file")
        page.keyboard.press("PageUp")
        shown(page, "decrypted:1:file")
        for _ in range(3):
            page.keyboard.press("ArrowDown")
        shown(page, "decrypted:4:file")
        assert as_reference(canvas_pixels(page), slices[3]) > 0.95

        if os.environ.get("KEDI_WRITE_SCREENSHOTS") == "1":
            # The six-slice study at its fourth slice, in the file's own window.
            page.mouse.move(0, 0)
            page.evaluate("() => document.activeElement.blur()")  # no focus ring on the last button pressed
            page.set_viewport_size({"width": 1140, "height": 750})
            FIGURE.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(FIGURE))
    finally:
        context.close()


def test_radiologist_b_sees_no_such_study_and_no_image(site: Site) -> None:
    context, page = site.page_for("rad-b")
    try:
        assert page.locator("#studies tbody tr").count() == 0
        assert page.inner_text("#message") == "No study to show."
        site.open_study(page, "liver")  # A's study, its URL known
        assert page.inner_text("#message").startswith(NO_SUCH_STUDY)
        assert page.locator("#viewer").is_hidden()
        assert "DEMO" not in page.inner_text("body")
        # The image area shows nothing: made visible for the screenshot, it is uniform black.
        page.evaluate("document.getElementById('viewer').hidden = false")
        empty = canvas_pixels(page)
        assert empty.std() == 0.0 and empty.mean() < 5
        # The frame's URL asked directly (B guessing it) is 404 as well.
        uid = pydicom.dcmread(sorted((site.samples / "study").glob("*.dcm"))[0])
        url = (
            f"{site.base}/dicomweb/studies/{uid.StudyInstanceUID}/series/{uid.SeriesInstanceUID}"
            f"/instances/{uid.SOPInstanceUID}/frames/1/rendered"
        )
        assert page.request.get(url).status == 404
        assert page.request.get(f"{site.base}/api/studies/{site.studies['liver']}/ciphertext/1").status == 404
    finally:
        context.close()


def test_the_technologist_who_uploaded_sees_the_study(site: Site) -> None:
    context, page = site.page_for("tech")
    try:
        assert page.locator("#studies tbody tr").count() == 3
        site.open_study(page, "brain")
        shown(page, "decrypted:1:file")
        assert as_reference(canvas_pixels(page), site.samples / "scan.dcm") > 0.95
        # Sign out: a POST that carries the CSRF token; the session is over on the server too.
        page.click("#logout")
        page.wait_for_url("**/viewer/login")
        assert page.request.get(site.base + "/api/viewer/studies").status == 401
    finally:
        context.close()


def test_the_researcher_sees_pixels_but_no_identity(site: Site) -> None:
    context, page = site.page_for("research")
    try:
        listing = page.inner_text("#studies tbody")
        assert "DEMO" not in listing and "CompressedSamples" not in listing and "DK-" in listing
        site.open_study(page, "brain")
        shown(page, "decrypted:1:file")
        assert "DEMO" not in page.inner_text("body")
        assert as_reference(canvas_pixels(page), site.samples / "scan.dcm") > 0.95
    finally:
        context.close()


def test_a_radiologist_breaks_the_glass_and_the_page_says_so(site: Site) -> None:
    context, page = site.page_for("rad-c")  # group "chest": nothing is assigned to them
    try:
        assert page.locator("#studies tbody tr").count() == 0
        page.click("#break-glass summary")
        reason = "on-call read: suspected haemorrhage, the assigned team is in theatre"
        page.fill("#bg-uid", "1.2.826.0.1.3680043.8.498.1")
        page.fill("#bg-reason", reason)
        page.click("#bg-open")
        page.wait_for_selector("#bg-message:not([hidden])")
        assert page.inner_text("#bg-message") == "no such study"
        uid = str(pydicom.dcmread(site.samples / "scan.dcm").StudyInstanceUID)
        page.fill("#bg-uid", uid)
        page.click("#bg-open")
        page.wait_for_url(f"**/viewer/study?study={site.studies['brain']}")
        shown(page, "decrypted:1:file")
        assert page.inner_text("#message").startswith("Opened by break-glass (grant ")
        assert "flagged in the audit trail" in page.inner_text("#message")
        assert as_reference(canvas_pixels(page), site.samples / "scan.dcm") > 0.95
        page.goto(site.base + "/viewer/")
        page.wait_for_selector("body[data-state=ready]")
        assert page.locator("#studies tbody tr").count() == 1
        assert "break-glass" in page.inner_text("#studies tbody")
        # The reviewers see the grant and the flagged views; the reason stays sealed out of the trail.
        history = site.api("GET", f"/api/studies/{site.studies['brain']}/audit").json()["entries"]
        grants = [e for e in history if e["operation"] == "break_glass.grant" and e["details"]["outcome"] == "ok"]
        assert len(grants) == 1 and grants[0]["actor"] == "rad-c"
        assert any(e["operation"] == "dicomweb.render" and e["details"].get("break_glass") for e in history)
        assert reason not in repr(history)
    finally:
        context.close()


@pytest.mark.parametrize("username", ["admin", "audit"])
def test_admin_and_auditor_see_the_audit_history_and_no_image(site: Site, username: str) -> None:
    context, page = site.page_for(username, ADMIN_PASSWORD if username == "admin" else PASSWORD)
    try:
        listing = page.inner_text("#studies tbody")
        assert site.studies["liver"] in listing and "DEMO" not in listing
        site.open_study(page, "liver")
        page.wait_for_selector("#audit-table tbody tr")
        operations = page.locator("#audit-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.operation)")
        assert "dicomweb.store" in operations and "study.assign" in operations
        numbers = [int(n) for n in page.locator("#audit-table tbody tr td:first-child").all_inner_texts()]
        assert numbers == sorted(numbers, reverse=True) and len(numbers) == len(operations)  # newest first
        history = page.inner_text("#audit-table")
        assert "tech" in history and "technologist" in history and "DEMO" not in history
        assert "does not view images" in page.inner_text("#message")
        assert page.locator("#viewer").is_hidden() and page.locator("#image").get_attribute("data-shown") in (
            None,
            "none",
        )
        assert page.request.get(f"{site.base}/api/studies/{site.studies['liver']}/ciphertext/1").status == 403
    finally:
        context.close()


def test_a_revoked_study_shows_its_ciphertext_with_a_message(site: Site) -> None:
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=f"{site.base}/dicomweb", headers={"Authorization": f"Bearer {site.tech_token}"})
    client.store_instances(datasets=[pydicom.dcmread(site.samples / "CT_small.dcm")])
    site.studies["small"] = site.api("GET", "/api/studies").json()[-1]["id"]
    site.assign(site.studies["small"])
    context, page = site.page_for("rad-a")
    try:
        site.open_study(page, "small")
        shown(page, "decrypted:1:file")
        plain = canvas_pixels(page)
        assert as_reference(plain, site.samples / "CT_small.dcm") > 0.95
        revoked = site.api("POST", f"/api/studies/{site.studies['small']}/revoke")
        assert revoked.status_code == 200 and revoked.json()["revoked"] is True
        # Revoked while open: the next image asked for (another window) is 410, and the page turns to the ciphertext.
        page.keyboard.press("1")
        shown(page, "cipher:1:-")
        assert page.inner_text("#message") == REVOKED_MESSAGE
        page.reload()
        shown(page, "cipher:1:-")
        assert page.inner_text("#message") == REVOKED_MESSAGE
        assert page.inner_text("#ov-mode") == "STORED CIPHERTEXT"
        assert page.locator("#wc").is_disabled() and page.locator("#apply-window").is_disabled()
        noise = canvas_pixels(page)
        # Noise: every grey level about equally often, nothing of the slice left in it.
        assert entropy(noise) > 7.9 > 7.0 > entropy(plain)
        assert abs(correlation(noise, plain)) < 0.1
        # The list flags it among the revoked studies.
        page.goto(site.base + "/viewer/")
        page.wait_for_selector("body[data-state=ready]")
        assert page.locator("#revoked tbody tr").get_attribute("data-pseudonym") == site.studies["small"]
        assert page.locator("#studies tbody tr").count() == 3  # the live ones
    finally:
        context.close()
