"""A real Orthanc for the tests: generated configuration, loopback only, temporary folders, free ports.

``start_orthanc`` writes a keystore (raw KEK in a file), the plugin script and the
configuration under a folder, starts Debian's ``Orthanc`` with the Python and DICOMweb
plugins, and waits until its REST API answers. ``encrypted=False`` starts a plain
Orthanc (no deepkedi storage area), the reference the benchmarks compare with.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from archive_app import free_port
from external_tools import require_tool, unavailable

from deepkedi.keys.keystore import Keystore, RawKek
from deepkedi.server.orthanc_storage import StorageSettings, orthanc_configuration, plugin_script

PLUGINS = Path("/usr/share/orthanc/plugins")
PYTHON_PLUGIN = PLUGINS / "libOrthancPython.so"
DICOMWEB_PLUGIN = PLUGINS / "libOrthancDicomWeb.so"


def require_orthanc() -> str:
    """The Orthanc program and its two plugins, or a skip (a failure under CI=true)."""
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    debian = Path("/usr/sbin/Orthanc")
    if debian.is_file() and os.access(debian, os.X_OK):
        program = str(debian)
    else:
        program = require_tool("Orthanc", install="Debian's orthanc, orthanc-python, orthanc-dicomweb (make setup)")
    for plugin in (PYTHON_PLUGIN, DICOMWEB_PLUGIN):
        if not plugin.exists():
            unavailable(f"{plugin} is missing: install orthanc-python and orthanc-dicomweb (make setup)")
    return program


@dataclass
class OrthancServer:
    """A running (or stopped) Orthanc and the folders it uses."""

    home: Path
    config_path: Path
    storage: Path
    index: Path
    http_port: int
    dicom_port: int
    keystore_url: str
    kek: bytes
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = field(default=0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def keystore(self) -> Keystore:
        return Keystore.open(self.keystore_url, kek_source=RawKek(self.kek))

    def start(self, *, timeout: float = 30.0) -> None:
        program = require_orthanc()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([program, str(self.config_path)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited ({self.process.returncode}):\n{self.log()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/system", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout} s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """``kill -9``: no chance to finish anything."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def make_orthanc(home: Path, *, encrypted: bool = True) -> OrthancServer:
    """Write the keystore, plugin script and configuration of an Orthanc under ``home`` (not started)."""
    home.mkdir(parents=True, exist_ok=True)
    storage, index = home / "storage", home / "index"
    storage.mkdir()
    index.mkdir()
    kek = os.urandom(32)
    kek_file = home / "kek.hex"
    kek_file.write_text(kek.hex())
    kek_file.chmod(0o600)
    url = f"sqlite:///{home / 'keystore.db'}"
    settings = StorageSettings(storage=storage, keystore_url=url, kek_file=kek_file)
    script = home / "deepkedi_storage.py"
    script.write_text(plugin_script())
    http_port, dicom_port = free_port(), free_port()
    config = orthanc_configuration(
        settings,
        script=script,
        index=index,
        http_port=http_port,
        dicom_port=dicom_port,
        plugins=[PYTHON_PLUGIN, DICOMWEB_PLUGIN],
    )
    if encrypted:
        Keystore.init(url, kek_source=RawKek(kek), actor="test").close()
    else:
        for name in ("PythonScript", "DeepKedi"):
            config.pop(name)
        config["Plugins"] = [str(DICOMWEB_PLUGIN)]
    config_path = home / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    return OrthancServer(
        home=home,
        config_path=config_path,
        storage=storage,
        index=index,
        http_port=http_port,
        dicom_port=dicom_port,
        keystore_url=url,
        kek=kek,
        log_path=home / "orthanc.log",
    )


def storescu(server: OrthancServer, files: list[Path], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """DCMTK's ``storescu`` of ``files`` to ``server``: one association, each file sent in its own transfer syntax.

    ``-xv`` proposes JPEG 2000 lossless besides every uncompressed transfer syntax (the
    corpus holds both), and storescu sends each file in a context of its own transfer
    syntax, so that nothing is converted on the way: Orthanc receives each file's data set
    byte for byte.
    """
    program = require_tool("storescu", install="DCMTK (make setup)")
    return subprocess.run(
        [program, "-xv", "-aec", "ORTHANC", "-aet", "KEDITEST", "127.0.0.1", str(server.dicom_port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
