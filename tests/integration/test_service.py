"""The service as an operator installs it: unit files systemd accepts, and make install/uninstall."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

UNITS = REPO / "systemd"
STREAMD = Path(sys.executable).parent / "streamd"
needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")


def unit_copy(tmp_path: Path, name: str, exec_path: Path = STREAMD) -> Path:
    """A unit file with ExecStart pointing at an existing streamd (verify checks that it exists)."""
    text = (UNITS / name).read_text().replace("/opt/streamd/venv/bin/streamd", str(exec_path))
    (tmp_path / name).write_text(text)
    return tmp_path / name


@needs_systemd
@pytest.mark.parametrize(("unit", "instance"), [("streamd.service", "streamd.service"),
                                                ("streamd@.service", "streamd@lobby.service")])  # fmt: skip
def test_units_pass_systemd_analyze_verify_and_are_hardened(tmp_path, unit, instance):
    unit_copy(tmp_path, unit)
    done = subprocess.run(["systemd-analyze", "verify", str(tmp_path / instance)],
                          check=False, capture_output=True, text=True, cwd=tmp_path, timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(tmp_path / unit)],
                              check=False, capture_output=True, text=True, timeout=60)  # fmt: skip
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert exposure, security.stdout + security.stderr
    assert float(exposure.group(1)) <= 2.0  # "OK"; 1.6 when written
    text = (UNITS / unit).read_text()
    for line in ("Type=notify", "WatchdogSec=20s", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
                 "StartLimitBurst=5", "ProtectSystem=strict", "NoNewPrivileges=yes", "DevicePolicy=closed",
                 "DeviceAllow=char-nvidia* rw", "DeviceAllow=char-video4linux rw"):  # fmt: skip
        assert line in text.splitlines(), line


def test_make_install_stages_everything_and_uninstall_keeps_configuration(tmp_path):
    root = tmp_path / "root"
    env = {**os.environ, "DESTDIR": str(root)}
    subprocess.run(["make", "install"], cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    venv = root / "opt/streamd/venv"
    etc = root / "etc/streamd"
    version = subprocess.run(
        [str(venv / "bin/streamd"), "--version"], check=False, capture_output=True, text=True, timeout=60
    )
    assert version.stdout.startswith("streamd ")
    # The installed package, not this checkout, and GStreamer's bindings are importable.
    probe = "import streamd, gi; print(streamd.__file__)"
    where = subprocess.run([str(venv / "bin/python"), "-c", probe], check=False, capture_output=True, text=True,
                           cwd=tmp_path, timeout=60)  # fmt: skip
    assert where.returncode == 0 and str(venv) in where.stdout, where.stderr
    assert (etc / "cameras/entrance.yaml.example").is_file()
    assert (root / "etc/systemd/system/streamd.service").is_file()
    assert (root / "etc/systemd/system/streamd@.service").is_file()
    check = subprocess.run([str(venv / "bin/streamd"), "check-config", "--config", str(etc / "streamd.yaml")],
                           check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert "ok, 0 camera(s)" in check.stdout

    # A second install keeps what the operator edited.
    (etc / "streamd.yaml").write_text((etc / "streamd.yaml").read_text() + "# edited by the operator\n")
    (etc / "cameras/door.yaml").write_text("url: rtsp://127.0.0.1:8554/door\n")
    subprocess.run(["make", "install"], cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    assert (etc / "streamd.yaml").read_text().endswith("# edited by the operator\n")

    subprocess.run(["make", "uninstall"], cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
    assert not (root / "opt/streamd").exists()
    assert not (root / "etc/systemd/system/streamd.service").exists()
    assert not (root / "etc/systemd/system/streamd@.service").exists()
    assert (etc / "streamd.yaml").is_file() and (etc / "cameras/door.yaml").is_file()


def test_jetson_dockerfile_passes_hadolint_and_runs_streamd():
    hadolint = Path(sys.executable).parent / "hadolint"
    dockerfile = REPO / "Dockerfile.jetson"
    done = subprocess.run(
        [str(hadolint), str(dockerfile)], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = dockerfile.read_text()
    assert "FROM nvcr.io/nvidia/l4t-jetpack:${L4T_VERSION}" in text and "ARG L4T_VERSION=r36." in text
    assert 'ENTRYPOINT ["/opt/streamd/venv/bin/streamd"]' in text and 'CMD ["run"]' in text
