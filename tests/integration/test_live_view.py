"""The live view against the real daemon: pictures, streams, viewer caps, the token, and a real browser."""

from __future__ import annotations

import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from tests.helpers import VIDEO, Daemon, free_port, metric, wait_for, write_config

pytestmark = pytest.mark.e2e

LINES = {"middle": {"points": [[0.45, 0.25], [0.45, 0.75]]}}
ZONES = {"right": {"polygon": [[0.62, 0.35], [0.98, 0.35], [0.98, 0.72], [0.62, 0.72]]}}
PREVIEW = {"max_width": 640, "max_viewers": 2, "fps": 5, "stream_timeout_s": 2.0}


def start(tmp_path: Path, **http: Any) -> Daemon:
    cameras = {"path": {"url": str(VIDEO), "classes": ["person"], "lines": LINES, "zones": ZONES},
               "yard": {"url": str(VIDEO), "classes": ["person", "car"]}}  # fmt: skip
    http = {"listen": f"127.0.0.1:{free_port()}", "preview": PREVIEW, **http}
    daemon = Daemon(write_config(tmp_path, cameras, free_port(), http=http))
    assert wait_for(lambda: daemon.get("/healthz")[0] == 200, 30), daemon.log_path.read_text()[-2000:]
    return daemon


def stream_parts(daemon: Daemon, camera: str, seconds: float) -> list[bytes]:
    """The JPEGs of a camera's MJPEG stream received within ``seconds``."""
    host, port = daemon.http.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"GET /v1/cameras/{camera}/preview.mjpeg HTTP/1.0\r\n\r\n".encode())
        data = b""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"200 OK" in head and b"Content-Type: multipart/x-mixed-replace; boundary=streamd-frame" in head, (
        head
    )
    parts = []
    for part in body.split(b"--streamd-frame\r\n")[1:]:
        headers, _, rest = part.partition(b"\r\n\r\n")
        length = int(headers.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        if len(rest) >= length:
            parts.append(rest[:length])
    return parts


def test_pictures_and_streams_are_drawn_only_while_watched_and_viewers_are_capped(tmp_path):
    daemon = start(tmp_path)
    try:
        # Nobody watches: nothing is drawn.
        time.sleep(1.5)
        assert metric(daemon, "streamd_live_pictures_total") == 0

        code, page = daemon.get("/")
        assert code == 200 and b"<html" in page
        assert b"http://" not in page and b"https://" not in page  # nothing fetched from elsewhere
        code, jpeg = daemon.get("/v1/cameras/path/latest.jpg")
        assert code == 200
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (480, 640, 3)  # 768x576 scaled to max_width
        assert daemon.get("/v1/cameras/nope/latest.jpg")[0] == 404

        # A stream delivers new pictures over time, at the capped rate.
        parts = stream_parts(daemon, "path", 2.0)
        assert 6 <= len(parts) <= 14, len(parts)  # 5 a second
        decoded = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR) for p in parts]
        assert all(d.shape == (480, 640, 3) for d in decoded)
        assert np.abs(decoded[0].astype(int) - decoded[-1].astype(int)).mean() > 1  # the scene moved

        # Two viewers are the cap: a third is refused; abrupt disconnects free their places at once.
        host, port = daemon.http.removeprefix("http://").split(":")
        viewers = []
        for _ in range(2):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(b"GET /v1/cameras/path/preview.mjpeg HTTP/1.0\r\n\r\n")
            viewers.append(sock)
        assert wait_for(lambda: metric(daemon, "streamd_live_viewers") == 2, 5)
        third = urllib.request.Request(daemon.http + "/v1/cameras/yard/preview.mjpeg")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(third, timeout=5)
        assert refused.value.code == 503
        status = {c["id"]: c for c in daemon.get_json("/v1/cameras")["cameras"]}
        assert status["path"]["viewers"] == 2 and status["path"]["lines"]["middle"].keys() == {"in", "out"}
        for sock in viewers:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()  # RST, as a browser tab killed
        started = time.monotonic()
        assert wait_for(lambda: metric(daemon, "streamd_live_viewers") == 0, 5)
        print(f"\nviewers released {time.monotonic() - started:.2f} s after an abrupt disconnect")
        assert time.monotonic() - started < 1.5

        # A viewer that stops reading is dropped after stream_timeout_s, its memory with it.
        slow = socket.create_connection((host, int(port)), timeout=5)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b"GET /v1/cameras/path/preview.mjpeg HTTP/1.0\r\n\r\n")
        assert wait_for(lambda: metric(daemon, "streamd_live_viewers") == 1, 5)
        assert wait_for(lambda: metric(daemon, "streamd_live_viewers") == 0, 15)
        slow.close()
        pictures = metric(daemon, "streamd_live_pictures_total")
        cpu = metric(daemon, "streamd_live_cpu_seconds_total")
        print(f"{pictures:.0f} pictures drawn, {1000 * cpu / pictures:.1f} ms CPU each")
    finally:
        daemon.stop()
    errors = [e for e in daemon.logs() if e.get("level") == "error"]
    assert errors == [], errors


def test_a_token_guards_everything_but_healthz(tmp_path):
    token_file = tmp_path / "http.token"
    token_file.write_text("s3cret-token-0123456789\n")
    daemon = start(tmp_path, auth="token", token_file=str(token_file))
    try:
        for path in ("/", "/v1/cameras", "/metrics", "/v1/cameras/path/latest.jpg", "/cameras/path"):
            assert daemon.get(path)[0] == 401, path
        assert daemon.get("/v1/cameras?token=wrong")[0] == 401
        request = urllib.request.Request(daemon.http + "/v1/cameras",
                                         headers={"Authorization": "Bearer s3cret-token-0123456789"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        # Opening the page with ?token= sets a cookie and leaves the token out of the address.
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(daemon.http + "/?token=s3cret-token-0123456789", timeout=5) as response:
            assert response.status == 200 and response.url == daemon.http + "/"
        with opener.open(daemon.http + "/v1/cameras/path/latest.jpg", timeout=10) as response:
            assert response.headers["Content-Type"] == "image/jpeg"
    finally:
        daemon.stop()
    assert "s3cret-token" not in daemon.log_path.read_text()


def test_check_config_requires_a_token_off_loopback(tmp_path):
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    config = write_config(
        tmp_path, {"door": {"url": str(VIDEO)}}, free_port(), http={"listen": "0.0.0.0:9771"}
    )
    done = subprocess.run([sys.executable, "-m", "streamd", "check-config", "--config", str(config)],
                          capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    assert done.returncode == 1 and "http: listen 0.0.0.0:9771 is not a loopback address" in done.stderr
    daemon_yaml = yaml.safe_load(config.read_text())
    daemon_yaml["http"]["auth"] = "none"
    config.write_text(yaml.safe_dump(daemon_yaml))
    done = subprocess.run([sys.executable, "-m", "streamd", "check-config", "--config", str(config)],
                          capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    assert done.returncode == 0 and "warning: http: 0.0.0.0:9771 serves the live view" in done.stdout


def browser(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path="/usr/bin/chromium",
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )


def test_the_pages_in_a_real_browser_show_the_pictures_and_draw_a_line(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").is_file():
        pytest.skip("Debian's chromium is not installed (scripts/install-system-deps.sh installs it)")
    daemon = start(tmp_path)
    requested: list[str] = []
    try:
        with sync_api.sync_playwright() as playwright:
            chrome = browser(playwright)
            page = chrome.new_page(viewport={"width": 1280, "height": 760})
            page.on("request", lambda request: requested.append(request.url))
            page.goto(daemon.http + "/")
            page.wait_for_function(
                "() => { const imgs = [...document.querySelectorAll('.card img')];"
                " return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth === 640)"
                " && document.querySelector('.stats').textContent.includes('fps processed') }",
                timeout=30000,
            )
            shot = page.screenshot()
            cards = page.locator(".card").all()
            texts = [c.inner_text() for c in cards]
            assert any("middle: in" in t and "right:" in t for t in texts), texts
            assert all("streaming" in t for t in texts), texts
            picture_box = page.locator(".card img").first.bounding_box()

            # The drawing tool: two clicks make a line, in normalized coordinates.
            page.goto(daemon.http + "/cameras/path")
            page.wait_for_function(
                "() => document.getElementById('live').naturalWidth === 640", timeout=30000
            )
            canvas = page.locator("#draw").bounding_box()
            page.fill("#name", "door")
            page.mouse.click(canvas["x"] + 0.25 * canvas["width"], canvas["y"] + 0.2 * canvas["height"])
            page.mouse.click(canvas["x"] + 0.25 * canvas["width"], canvas["y"] + 0.8 * canvas["height"])
            line = yaml.safe_load(page.inner_text("#yaml"))
            page.click("#zone")
            page.fill("#name", "lobby")
            for fx, fy in ((0.6, 0.4), (0.9, 0.4), (0.9, 0.7), (0.6, 0.7)):
                page.mouse.click(canvas["x"] + fx * canvas["width"], canvas["y"] + fy * canvas["height"])
            zone = yaml.safe_load(page.inner_text("#yaml"))
            existing = page.inner_text("main ul")
            chrome.close()
    finally:
        daemon.stop()
    # Only the daemon was asked for anything.
    assert requested and all(url.startswith(daemon.http) for url in requested), [
        u for u in requested if not u.startswith(daemon.http)
    ]
    (a, b) = line["lines"]["door"]["points"]
    assert a == pytest.approx([0.25, 0.2], abs=0.01) and b == pytest.approx([0.25, 0.8], abs=0.01)
    corners = zone["zones"]["lobby"]["polygon"]
    assert np.allclose(corners, [[0.6, 0.4], [0.9, 0.4], [0.9, 0.7], [0.6, 0.7]], atol=0.01)
    assert "line middle" in existing and "zone right" in existing
    # The screenshot shows the annotated pictures: detailed, with drawn boxes and the amber line.
    image = cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR)
    x, y, w, h = (
        int(v) for v in (picture_box["x"], picture_box["y"], picture_box["width"], picture_box["height"])
    )
    picture = image[y : y + h, x : x + w]
    assert picture.std() > 30
    amber = np.all(np.abs(picture.astype(int) - [0, 200, 255]) < 40, axis=2).sum()
    assert amber > 100, amber  # the counting line and its label
    # STREAMD_SCREENSHOT=docs/live-view.png makes the picture in the README.
    target = Path(os.environ.get("STREAMD_SCREENSHOT") or tmp_path / "live-view.png")
    target.write_bytes(shot)
    print(f"\nscreenshot: {target}")
