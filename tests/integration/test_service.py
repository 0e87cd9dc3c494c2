"""The service as an operator installs it: unit files systemd accepts, and make install/uninstall."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
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


def test_make_install_stages_a_relocatable_tree_whose_documented_flows_work(tmp_path):
    # Where the tree will live once moved out of the staging root, as a package manager would.
    real = Path(tempfile.mkdtemp(prefix="streamd-install-", dir="/tmp"))
    try:
        _install_move_check_uninstall(tmp_path / "root", real)
    finally:
        shutil.rmtree(real, ignore_errors=True)


def _streamd(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin/streamd"), *args], check=False, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def _install_move_check_uninstall(root: Path, real: Path) -> None:
    places = {"PREFIX": str(real / "opt"), "CONFDIR": str(real / "etc"), "UNITDIR": str(real / "units")}
    env = {**os.environ, "DESTDIR": str(root), **places}
    subprocess.run(["make", "install"], cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    staged = root / real.relative_to("/")
    leaks = subprocess.run(["grep", "-rlF", str(root), str(staged / "opt/venv/bin"), str(staged / "opt/venv/pyvenv.cfg")],
                           check=False, capture_output=True, text=True)  # fmt: skip
    assert leaks.stdout == "", f"the staging path is written into: {leaks.stdout}"
    for part in ("opt", "etc", "units"):
        shutil.move(staged / part, real / part)
    venv, etc = real / "opt/venv", real / "etc"

    assert _streamd(venv, "--version").stdout.startswith("streamd ")
    # The installed package, not this checkout, and GStreamer's bindings are importable.
    where = subprocess.run([str(venv / "bin/python"), "-c", "import streamd, gi; print(streamd.__file__)"],
                           check=False, capture_output=True, text=True, cwd=real, timeout=60)  # fmt: skip
    assert where.returncode == 0 and str(venv) in where.stdout, where.stderr
    assert (real / "units/streamd.service").is_file() and (real / "units/streamd@.service").is_file()
    # Camera files hold passwords: private whatever the umask of make install.
    modes = {p: oct(p.stat().st_mode & 0o777) for p in (etc, etc / "cameras", etc / "streamd.yaml",
                                                          etc / "cameras/entrance.yaml.example")}  # fmt: skip
    assert list(modes.values()) == ["0o750", "0o750", "0o640", "0o640"], modes

    check = _streamd(venv, "check-config", "--config", str(etc / "streamd.yaml"))
    assert check.returncode == 0, check.stderr
    assert "ok, 0 camera(s)" in check.stdout
    # docs/operations.md: copy the example camera, check it.
    shutil.copy(etc / "cameras/entrance.yaml.example", etc / "cameras/entrance.yaml")
    check = _streamd(venv, "check-config", "--config", str(etc / "streamd.yaml"))
    assert check.returncode == 0, check.stderr
    assert "ok, 1 camera(s)" in check.stdout and "s3cret" not in check.stdout
    # docs/operations.md: a streamd@lobby instance from a copy of the daemon file.
    (etc / "lobby/cameras").mkdir(parents=True)
    shutil.copy(etc / "streamd.yaml", etc / "lobby/streamd.yaml")
    check = _streamd(venv, "check-config", "--config", str(etc / "lobby/streamd.yaml"))
    assert check.returncode == 0, check.stderr

    # A second install keeps what the operator edited; uninstall keeps the configuration.
    (etc / "streamd.yaml").write_text((etc / "streamd.yaml").read_text() + "# edited by the operator\n")
    again = {**env, "DESTDIR": "/"}  # in place, without touching systemd
    subprocess.run(["make", "install"], cwd=REPO, env=again, check=True, capture_output=True, timeout=600)
    assert (etc / "streamd.yaml").read_text().endswith("# edited by the operator\n")
    subprocess.run(["make", "uninstall"], cwd=REPO, env=again, check=True, capture_output=True, timeout=120)
    assert not (real / "opt").exists()
    assert not (real / "units/streamd.service").exists() and not (real / "units/streamd@.service").exists()
    assert (etc / "streamd.yaml").is_file() and (etc / "cameras/entrance.yaml").is_file()


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
