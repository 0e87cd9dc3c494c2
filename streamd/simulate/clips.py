"""H.264 clips like real cameras send, made from a video with PyAV's encoder (libx264).

For benchmarks and tests: a 1080p camera from the shared 768x576 video, a long GOP, a
multi-slice encoder. Nothing is downloaded and no large media is committed: a clip is
made in a second or two and cached by its parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

__all__ = ["ClipSpec", "make_clip"]


@dataclass(frozen=True)
class ClipSpec:
    """What the clip looks like: its size, rate, keyframe interval and slices per picture."""

    width: int
    height: int
    fps: int  # frames a second of the clip (the source's frames, renumbered)
    gop: int  # a keyframe every ``gop`` frames, and only then (no scene-cut keyframes)
    seconds: float
    slices: int = 1

    def name(self, source: Path) -> str:
        return (f"{source.stem}-{self.width}x{self.height}-{self.fps}fps-gop{self.gop}"
                f"-{self.slices}slice-{self.seconds:g}s.mp4")  # fmt: skip


def make_clip(source: Path, folder: Path, spec: ClipSpec) -> Path:
    """The clip in ``folder`` (made unless it is there): no B-frames, constant GOP, like an IP camera."""
    path = folder / spec.name(source)
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    params = f"keyint={spec.gop}:min-keyint={spec.gop}:scenecut=0:bframes=0:slices={spec.slices}"
    with av.open(str(source)) as src, av.open(str(partial), "w") as dst:
        out = dst.add_stream("libx264", rate=spec.fps, options={"preset": "veryfast", "x264-params": params})
        out.width, out.height, out.pix_fmt = spec.width, spec.height, "yuv420p"
        out.codec_context.thread_type = "FRAME"  # PyAV's default, slice threads, adds a slice per thread
        out.time_base = Fraction(1, spec.fps)
        frames = round(spec.seconds * spec.fps)
        for n, picture in enumerate(src.decode(video=0)):
            if n >= frames:
                break
            scaled = picture.reformat(width=spec.width, height=spec.height, format="yuv420p")
            scaled.pts, scaled.time_base = n, Fraction(1, spec.fps)
            scaled.pict_type = av.video.frame.PictureType.NONE  # the source's keyframes must not force ours
            dst.mux(out.encode(scaled))
        dst.mux(out.encode(None))
    partial.replace(path)
    return path
