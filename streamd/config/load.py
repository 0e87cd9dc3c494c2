"""Loading the configuration: the daemon's file, then each camera file, every problem collected.

A problem in ``streamd.yaml`` (or a model file that is missing) makes the whole
configuration invalid. A problem in one camera file makes only that camera invalid:
``Config.invalid`` lists it with its problems, and the daemon runs the others unless
``strict_start`` is set. Relative paths are relative to the file that holds them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from streamd.config.camera import CameraConfig, check_camera_url, source_kind
from streamd.config.daemon import DaemonConfig, MqttSinkConfig, SinkConfig, WebhookSinkConfig
from streamd.config.problems import format_errors
from streamd.config.yamlfile import read_yaml
from streamd.errors import ConfigError
from streamd.redact import register_secret, register_url_secrets

__all__ = ["Config", "InvalidCamera", "camera_files", "load_config", "read_secret"]

DEFAULT_CONFIG = Path("/etc/streamd/streamd.yaml")
_SINK: TypeAdapter[SinkConfig] = TypeAdapter(SinkConfig)


@dataclass(frozen=True)
class InvalidCamera:
    """A camera file that cannot run, and why."""

    id: str
    file: Path
    problems: list[str]


@dataclass(frozen=True)
class Config:
    """The whole validated configuration: the daemon, its valid cameras, and the invalid camera files."""

    path: Path
    daemon: DaemonConfig
    cameras: dict[str, CameraConfig]
    camera_files: dict[str, Path]
    invalid: dict[str, InvalidCamera] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Every problem of every invalid camera file."""
        return [line for bad in self.invalid.values() for line in bad.problems]


def read_secret(where: str, file: Path | None, env: str | None) -> str | None:
    """A secret from a file or an environment variable, registered for redaction; ConfigError at ``where``."""
    value: str | None = None
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError([f"{where}: cannot read {file}: {reason}"]) from exc
    elif env is not None:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError([f"{where}: environment variable {env} is not set"])
    register_secret(value)
    return value


def _resolve(base: Path, path: Path) -> Path:
    # normpath, not resolve(): a user's symlinks stay as written in logs and errors.
    return path if path.is_absolute() else Path(os.path.normpath(base / path))


def _resolve_sink_paths(base: Path, sink: SinkConfig) -> SinkConfig:
    def fix(p: Path | None) -> Path | None:
        return None if p is None else _resolve(base, p)

    if isinstance(sink, MqttSinkConfig):
        tls = sink.tls
        if tls is not None:
            tls = tls.model_copy(update={"ca": fix(tls.ca), "cert": fix(tls.cert), "key": fix(tls.key)})
        return sink.model_copy(update={"password_file": fix(sink.password_file), "tls": tls})
    return sink.model_copy(update={"secret_file": fix(sink.secret_file), "ca": fix(sink.ca)})


def _readable(where: str, file: Path) -> list[str]:
    try:
        with file.open("rb"):
            return []
    except OSError as exc:
        return [f"{where}: cannot read {file}: {exc.strerror or exc}"]


def _check_sink(path: Path, name: str, sink: SinkConfig) -> list[str]:
    """What the sink would fail on at start: secrets, CA and certificate files."""
    where = f"{path}: sinks.{name}"
    problems: list[str] = []
    if isinstance(sink, MqttSinkConfig):
        secret = ("password_file", sink.password_file, "password_env", sink.password_env)
        if sink.tls is not None:
            for key in ("ca", "cert", "key"):
                file = getattr(sink.tls, key)
                if file is not None:
                    problems += _readable(f"{where}.tls.{key}", file)
            if (sink.tls.cert is None) != (sink.tls.key is None):
                problems.append(f"{where}.tls: give both cert and key for a client certificate, or neither")
    else:
        secret = ("secret_file", sink.secret_file, "secret_env", sink.secret_env)
        if sink.ca is not None:
            problems += _readable(f"{where}.ca", sink.ca)
    file_key, file, env_key, env = secret
    try:
        read_secret(f"{where}.{file_key if file is not None else env_key}", file, env)
    except ConfigError as exc:
        problems += exc.problems
    return problems


def _check_valid_sinks(path: Path, raw: dict[str, Any]) -> list[str]:
    """The file checks of each sink that is valid on its own, when streamd.yaml as a whole is not."""
    sinks = raw.get("sinks")
    if not isinstance(sinks, dict):
        return []
    problems = []
    for name, body in sinks.items():
        try:
            sink = _SINK.validate_python(body)
        except ValidationError:
            continue  # already reported by the file's validation
        problems += _check_sink(path, str(name), _resolve_sink_paths(path.parent, sink))
    return problems


def _check_state_dir(path: Path, state_dir: Path) -> list[str]:
    """The state folder must exist and be writable, or be creatable."""
    existing = state_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == state_dir and not state_dir.is_dir():
        return [f"{path}: state_dir: {state_dir} is not a folder"]
    if not os.access(existing, os.W_OK | os.X_OK):
        what = (
            "is not writable" if existing == state_dir else f"cannot be created ({existing} is not writable)"
        )
        return [f"{path}: state_dir: {state_dir} {what} by this user"]
    return []


def _load_daemon(path: Path) -> tuple[DaemonConfig, list[str]]:
    """The daemon's settings with paths resolved, and the problems found beyond its schema.

    ConfigError when the file cannot be read or does not fit the schema at all.
    """
    raw = read_yaml(path)
    try:
        daemon = DaemonConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(path, raw, exc) + _check_valid_sinks(path, raw)) from exc
    base = path.parent
    state_dir = _resolve(base, daemon.state_dir)
    sinks = {name: _resolve_sink_paths(base, sink) for name, sink in daemon.sinks.items()}
    models = {
        name: model.model_copy(
            update={
                "path": _resolve(base, model.path),
                "engine_cache_dir": _resolve(base, model.engine_cache_dir)
                if model.engine_cache_dir
                else state_dir / "trt-engines",
            }
        )
        for name, model in daemon.models.items()
    }
    problems = [line for name, sink in sinks.items() for line in _check_sink(path, name, sink)]
    register_url_secrets(s.url for s in sinks.values() if isinstance(s, WebhookSinkConfig))
    problems += _check_state_dir(path, state_dir)
    http = daemon.http
    if http.token_file is not None:
        http = http.model_copy(update={"token_file": _resolve(base, http.token_file)})
        daemon = daemon.model_copy(update={"http": http})
    if http.needs_token():
        if http.token_file is None:
            problems.append(
                f"{path}: http: listen {http.listen} is not a loopback address, and the live view shows"
                " what the cameras see: set http.token_file (a file holding a token), or http.auth: none"
                " to serve it open"
            )
        else:
            try:
                token = read_secret(f"{path}: http.token_file", http.token_file, None)
                if not token or len(token) < 16:
                    problems.append(f"{path}: http.token_file: the token must be at least 16 characters")
            except ConfigError as exc:
                problems += exc.problems
    cameras_dir = _resolve(base, daemon.cameras_dir)
    if not cameras_dir.is_dir():
        problems.append(f"{path}: cameras_dir: no such folder {cameras_dir}")
    for name, model in models.items():
        if not model.path.is_file():
            problems.append(f"{path}: models.{name}.path: no such model file {model.path}")
    resolved = daemon.model_copy(
        update={"cameras_dir": cameras_dir, "state_dir": state_dir, "models": models, "sinks": sinks}
    )
    return resolved, problems


def _camera_id(file: Path, raw: dict[str, Any]) -> str:
    declared = raw.get("id")
    return declared if isinstance(declared, str) and declared else file.stem


def _load_camera(file: Path, raw: dict[str, Any], daemon: DaemonConfig | None) -> CameraConfig:
    """A camera file checked on its own and, when the daemon's file is valid, against it."""
    raw.setdefault("id", file.stem)
    try:
        camera = CameraConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(file, raw, exc)) from exc
    problems = [] if daemon is None else _cross_check(file, camera, daemon)
    if camera.source.pipeline is None:
        url_problem = check_camera_url(camera.url)
        if url_problem is not None:
            problems.append(f"{file}: url: {url_problem}")
        elif source_kind(camera.url) == "file":
            resolved = _resolve(file.parent, Path(camera.url.removeprefix("file://")))
            if not resolved.is_file():
                problems.append(f"{file}: url: no such video file {resolved}")
            camera = camera.model_copy(update={"url": str(resolved)})
    if problems:
        raise ConfigError(problems)
    return camera


def _cross_check(file: Path, camera: CameraConfig, daemon: DaemonConfig) -> list[str]:
    """The sinks and the model a camera names must exist in streamd.yaml."""
    problems = []
    for route in camera.sink_routes():
        if route.name not in daemon.sinks:
            known = ", ".join(sorted(daemon.sinks)) or "none defined"
            problems.append(f"{file}: sinks: no sink named {route.name!r} in streamd.yaml (known: {known})")
    if camera.model not in daemon.models:
        known = ", ".join(sorted(daemon.models))
        problems.append(f"{file}: model: no model named {camera.model!r} in streamd.yaml (known: {known})")
    return problems


def _cameras_dir_guess(path: Path) -> Path:
    """Where the camera files are when streamd.yaml does not validate: its cameras_dir if readable."""
    try:
        written = read_yaml(path).get("cameras_dir", "cameras")
    except ConfigError:
        written = "cameras"
    return _resolve(path.parent, Path(written if isinstance(written, str) else "cameras"))


def camera_files(cameras_dir: Path) -> list[Path]:
    """The camera files of a folder, in name order."""
    if not cameras_dir.is_dir():
        return []
    return sorted(p for p in cameras_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_config(path: Path) -> Config:
    """Read ``streamd.yaml`` and every camera file.

    ConfigError (listing every problem) when the daemon's file is invalid; an invalid
    camera file only lands in ``Config.invalid``.
    """
    path = Path(os.path.abspath(path))
    daemon: DaemonConfig | None = None
    try:
        daemon, problems = _load_daemon(path)
    except ConfigError as exc:
        problems = exc.problems
    cameras_dir = daemon.cameras_dir if daemon is not None else _cameras_dir_guess(path)
    cameras: dict[str, CameraConfig] = {}
    files: dict[str, Path] = {}
    invalid: dict[str, InvalidCamera] = {}
    for file in camera_files(cameras_dir):
        raw: dict[str, Any] = {}
        try:
            raw = read_yaml(file)
            if isinstance(raw.get("url"), str):
                register_url_secrets([raw["url"]])
            camera = _load_camera(file, raw, daemon)
        except ConfigError as exc:
            cid = _camera_id(file, raw)
            if cid in invalid:  # two bad files with one id: keep both reports under distinct keys
                cid = f"{cid} ({file.name})"
            invalid[cid] = InvalidCamera(cid, file, exc.problems)
            continue
        if camera.id in cameras:
            problem = f"{file}: id: camera id {camera.id!r} is also used by {files[camera.id]}"
            invalid[f"{camera.id} ({file.name})"] = InvalidCamera(camera.id, file, [problem])
            continue
        cameras[camera.id] = camera
        files[camera.id] = file
    if daemon is None or problems:  # the camera files' problems are told too, all at once
        raise ConfigError(problems + [line for bad in invalid.values() for line in bad.problems])
    return Config(path=path, daemon=daemon, cameras=cameras, camera_files=files, invalid=invalid)
