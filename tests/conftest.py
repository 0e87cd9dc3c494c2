from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import MODEL, VIDEO, RtspServer, clip


def pytest_configure(config: pytest.Config) -> None:
    missing = [str(p) for p in (MODEL, VIDEO) if not p.is_file()]
    if missing:
        raise pytest.UsageError(f"tests need ../shared beside the repository; missing: {', '.join(missing)}")


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
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid()))  # one per run, shared by its workers
    return os.open(
        Path(tempfile.gettempdir()) / f"streamd-tests-{run}.{name}.lock", os.O_CREAT | os.O_RDWR, 0o600
    )


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
