from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import MODEL, VIDEO, RtspServer, clip

_LOCKS = "STREAMD_TEST_LOCKS"  # the folder of the run's locks; pytest -n's workers inherit it


def pytest_configure(config: pytest.Config) -> None:
    missing = [str(p) for p in (MODEL, VIDEO) if not p.is_file()]
    if missing:
        raise pytest.UsageError(f"tests need ../shared beside the repository; missing: {', '.join(missing)}")
    if _LOCKS not in os.environ:  # the main process, which starts the workers after this
        os.environ[_LOCKS] = tempfile.mkdtemp(prefix="streamd-test-locks-")
        config.add_cleanup(lambda: shutil.rmtree(os.environ.pop(_LOCKS), ignore_errors=True))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outside pytest-timeout: waiting is not the test's time
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Under ``pytest -n``, a test marked ``alone`` runs with no other test beside it.

    Every test holds a shared lock; an ``alone`` test holds it exclusively. A gate taken
    before either lets an ``alone`` test that waits go before the tests queued after it.
    """
    alone = item.get_closest_marker("alone") is not None
    with _lock("gate", fcntl.LOCK_EX):
        main = _open("main")
        fcntl.flock(main, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
    try:
        yield
    finally:
        os.close(main)  # closing releases the lock


def _open(name: str) -> int:
    return os.open(Path(os.environ[_LOCKS]) / f"{name}.lock", os.O_CREAT | os.O_RDWR, 0o600)


@contextlib.contextmanager
def _lock(name: str, how: int) -> Iterator[None]:
    fd = _open(name)
    try:
        fcntl.flock(fd, how)
        yield
    finally:
        os.close(fd)


@pytest.fixture
def rtsp_servers() -> Iterator[list[RtspServer]]:
    """Start RTSP cameras with ``rtsp_servers.append(RtspServer().start())``; all are killed after."""
    servers: list[RtspServer] = []
    yield servers
    for server in servers:
        server.kill()


@pytest.fixture
def rtsp_camera(rtsp_servers: list[RtspServer]) -> RtspServer:
    """One looping RTSP camera serving the shared pedestrian video at 10 fps."""
    server = RtspServer().start()
    rtsp_servers.append(server)
    return server


@pytest.fixture(scope="session")
def clip40(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 40 s (400 frames) of the pedestrian video: 13 people cross the middle of the path."""
    return clip(tmp_path_factory.mktemp("clips") / "pedestrians-40s.mp4", 40.0)
