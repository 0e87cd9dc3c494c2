"""Reload planning: what a new configuration changes, as a pure function of the old and the new.

A running camera whose new file is invalid keeps running as it was (and the file is
reported): a typo in one file must not stop a camera that works, nor hold back the
edits made to the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamd.config import CameraConfig, Config, DaemonConfig

__all__ = ["STREAM_KEYS", "TRACKING_KEYS", "ReloadPlan", "plan_reload"]

# A change to any of these reopens the camera; other changes apply in place.
STREAM_KEYS = ("url", "source", "model", "fps")
# A change to any of these starts a new tracker (track ids begin again).
TRACKING_KEYS = ("classes", "min_confidence", "tracker", "smoothing")


@dataclass(frozen=True)
class ReloadPlan:
    """Camera ids by what happens to them, and the daemon settings that wait for a restart."""

    added: list[str]
    removed: list[str]
    restarted: list[str]  # stream settings changed: stopped and started again
    updated: list[str]  # other settings changed: applied without reconnecting
    kept: list[str]  # running, but the new file is invalid: carries on as it was
    unchanged: int
    log_changed: bool
    needs_restart: list[str]  # streamd.yaml keys that apply only at the next start

    def touched(self) -> list[str]:
        """Cameras whose new configuration must be checked before anything is applied."""
        return self.added + self.restarted + self.updated


def stream_changed(old: CameraConfig, new: CameraConfig) -> bool:
    return any(getattr(old, key) != getattr(new, key) for key in STREAM_KEYS)


def tracking_changed(old: CameraConfig, new: CameraConfig) -> bool:
    return any(getattr(old, key) != getattr(new, key) for key in TRACKING_KEYS)


def _enabled(config: Config) -> dict[str, CameraConfig]:
    return {cid: c for cid, c in config.cameras.items() if c.enabled}


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """What applying ``new`` over the running ``old`` does to each camera."""
    running, wanted = _enabled(old), _enabled(new)
    broken = {bad.id for bad in new.invalid.values()}
    kept = sorted(cid for cid in running if cid not in wanted and cid in broken)
    removed = sorted(cid for cid in running if cid not in wanted and cid not in broken)
    added = sorted(cid for cid in wanted if cid not in running)
    changed = sorted(cid for cid in wanted.keys() & running.keys() if wanted[cid] != running[cid])
    restarted = [cid for cid in changed if stream_changed(running[cid], wanted[cid])]
    updated = [cid for cid in changed if cid not in restarted]
    return ReloadPlan(
        added=added,
        removed=removed,
        restarted=restarted,
        updated=updated,
        kept=kept,
        unchanged=len(running.keys() & wanted.keys()) - len(changed),
        log_changed=new.daemon.log != old.daemon.log,
        needs_restart=[
            key
            for key in DaemonConfig.model_fields
            if key != "log" and getattr(new.daemon, key) != getattr(old.daemon, key)
        ],
    )
