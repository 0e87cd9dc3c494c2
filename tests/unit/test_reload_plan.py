"""Reload planning as a pure function of the old and the new configuration."""

from __future__ import annotations

from pathlib import Path

from streamd.config import CameraConfig, Config, DaemonConfig, InvalidCamera
from streamd.reload import plan_reload

DAEMON = DaemonConfig.model_validate({"models": {"default": {"path": "m.onnx", "family": "yolox"}}})


def config(cameras: dict[str, dict], invalid: tuple[str, ...] = (), daemon: DaemonConfig = DAEMON) -> Config:
    cams = {cid: CameraConfig.model_validate({"id": cid, **body}) for cid, body in cameras.items()}
    return Config(
        path=Path("/etc/streamd/streamd.yaml"),
        daemon=daemon,
        cameras=cams,
        camera_files={cid: Path(f"/etc/streamd/cameras/{cid}.yaml") for cid in cams},
        invalid={cid: InvalidCamera(cid, Path(f"{cid}.yaml"), ["bad"]) for cid in invalid},
    )


def test_each_camera_lands_in_exactly_one_group():
    old = config({
        "same": {"url": "rtsp://h/1"},
        "stream": {"url": "rtsp://h/2"},
        "tracking": {"url": "rtsp://h/3"},
        "gone": {"url": "rtsp://h/4"},
        "off": {"url": "rtsp://h/5"},
    })  # fmt: skip
    new = config({
        "same": {"url": "rtsp://h/1"},
        "stream": {"url": "rtsp://h/2", "fps": 5},
        "tracking": {"url": "rtsp://h/3", "classes": ["person"]},
        "off": {"url": "rtsp://h/5", "enabled": False},
        "fresh": {"url": "rtsp://h/6"},
    })  # fmt: skip
    plan = plan_reload(old, new)
    assert plan.added == ["fresh"]
    assert plan.removed == ["gone", "off"]
    assert plan.restarted == ["stream"]
    assert plan.updated == ["tracking"]
    assert plan.kept == []
    assert plan.unchanged == 1
    assert plan.touched() == ["fresh", "stream", "tracking"]
    assert not plan.log_changed and plan.needs_restart == []


def test_a_running_camera_whose_file_became_invalid_keeps_running():
    old = config({"door": {"url": "rtsp://h/1"}, "yard": {"url": "rtsp://h/2"}})
    new = config({"yard": {"url": "rtsp://h/2", "fps": 2}}, invalid=("door",))
    plan = plan_reload(old, new)
    assert plan.kept == ["door"] and plan.removed == []
    assert plan.restarted == ["yard"]


def test_daemon_settings_other_than_log_wait_for_a_restart():
    changed = DAEMON.model_copy(
        update={"stall_timeout_s": 3.0, "log": DAEMON.log.model_copy(update={"level": "debug"})}
    )
    plan = plan_reload(config({}), config({}, daemon=changed))
    assert plan.log_changed
    assert plan.needs_restart == ["stall_timeout_s"]
