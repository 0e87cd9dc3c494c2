from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import MODEL, VIDEO, RtspServer, clip


def pytest_configure(config: pytest.Config) -> None:
    missing = [str(p) for p in (MODEL, VIDEO) if not p.is_file()]
    if missing:
        raise pytest.UsageError(f"tests need ../shared beside the repository; missing: {', '.join(missing)}")


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
