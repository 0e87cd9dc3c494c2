"""A looping RTSP camera on loopback, for tests, the demo and benchmarks.

Runs under the system Python that has GObject introspection (Debian's
``/usr/bin/python3`` with ``python3-gi`` and ``gir1.2-gst-rtsp-server-1.0``), not
the project's virtualenv, so it imports nothing from streamd.

The H.264 file is demuxed once into access units held in memory; a live
``appsrc`` pushes them forever at the file's frame rate with continuous
timestamps, and ``rtph264pay config-interval=-1`` repeats SPS/PPS at every
keyframe so any client can join mid-stream and the loop seam is invisible.
All clients of one mount share one media, like a real camera.

    /usr/bin/python3 rtsp_server.py --file video.mp4 --port 8554 [--fps 10[,25...]] [--cameras 4] [--in-band]

With ``--cameras N`` it serves N independent cameras at /cam0 .. /cam{N-1}, each
with its own feeder, instead of one at --mount. It prints ``READY URL ...`` on
stdout once it listens.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtspServer


def demux_access_units(path: str) -> tuple[list[tuple[bytes, bool]], float]:
    """Read every H.264 access unit of an MP4 file, with its keyframe flag, and the fps."""
    pipeline = Gst.parse_launch(
        f'filesrc location="{path}" ! qtdemux ! h264parse config-interval=-1 '
        "! video/x-h264,stream-format=byte-stream,alignment=au "
        "! appsink name=sink sync=false emit-signals=false"
    )
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    units: list[tuple[bytes, bool]] = []
    fps = 0.0
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        if not fps:
            structure = sample.get_caps().get_structure(0)
            ok, num, den = structure.get_fraction("framerate")
            fps = num / den if ok and den else 0.0
        buf = sample.get_buffer()
        keyframe = not buf.has_flags(Gst.BufferFlags.DELTA_UNIT)
        units.append((buf.extract_dup(0, buf.get_size()), keyframe))
    pipeline.set_state(Gst.State.NULL)
    if not units:
        raise SystemExit(f"no H.264 access units in {path}")
    return units, fps


class LoopingFeeder:
    """Pushes access units into one appsrc at a fixed rate, looping forever, as a camera sends them.

    The first unit (a keyframe) is pushed at once, so that DESCRIBE can preroll the media;
    the rest follow from the first PLAY, one period apart. A new session therefore starts
    with a keyframe and then the frames that follow it, like an IP camera's; clients that
    join a running stream get it from wherever it is.
    """

    def __init__(self, appsrc: GstApp.AppSrc, units: list[tuple[bytes, bool]], fps: float) -> None:
        self._src = appsrc
        self._units = units
        self._period = 1.0 / fps
        self._stop = threading.Event()
        self._playing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def play(self) -> None:
        """The first client plays: send the frames after the prerolled keyframe."""
        self._playing.set()

    def stop(self) -> None:
        self._stop.set()
        self._playing.set()

    def _push(self, n: int) -> bool:
        data, keyframe = self._units[n % len(self._units)]
        buf = Gst.Buffer.new_wrapped(data)  # appsrc do-timestamp: stamped with the running time
        buf.duration = int(self._period * Gst.SECOND)
        if not keyframe:
            buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
        return bool(self._src.push_buffer(buf) == Gst.FlowReturn.OK)

    def _run(self) -> None:
        if not self._push(0):
            return
        self._playing.wait()
        start = time.monotonic()
        n = 1
        while not self._stop.is_set():
            delay = start + n * self._period - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            if not self._push(n):
                break
            n += 1


def _drop_sprop(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
    """Take sprop-parameter-sets out of the payloader's caps, so that the SDP has none."""
    event = info.get_event()
    if event is None or event.type != Gst.EventType.CAPS:
        return Gst.PadProbeReturn.OK
    text = event.parse_caps().to_string()
    if "sprop-parameter-sets" not in text:
        return Gst.PadProbeReturn.OK
    fields = [f for f in text.split(", ") if not f.startswith("sprop-parameter-sets")]
    pad.push_event(Gst.Event.new_caps(Gst.Caps.from_string(", ".join(fields))))
    return Gst.PadProbeReturn.DROP


class Factory(GstRtspServer.RTSPMediaFactory):
    def __init__(self, units: list[tuple[bytes, bool]], fps: float, in_band: bool = False) -> None:
        super().__init__()
        self._units = units
        self._fps = fps
        self._in_band = in_band
        num, den = Gst.util_double_to_fraction(fps)
        self.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=true "
            f'caps="video/x-h264,stream-format=byte-stream,alignment=au,framerate={num}/{den}" '
            "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        self.set_shared(True)
        self.connect("media-configure", self._on_configure)

    def _on_configure(self, _factory: Factory, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        if self._in_band:
            # Many IP cameras send SPS/PPS only in band: a client must read the first keyframe
            # to learn the picture size (and must not throw away what it read while probing).
            pay = media.get_element().get_by_name("pay0")
            pay.get_static_pad("src").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, _drop_sprop)
        feeder = LoopingFeeder(appsrc, self._units, self._fps)
        media.connect("unprepared", lambda *_: feeder.stop())
        feeder.start()  # DESCRIBE needs data flowing to preroll the media

        def on_state(_media: GstRtspServer.RTSPMedia, state: int) -> None:
            if state == Gst.State.PLAYING:
                feeder.play()

        media.connect("new-state", on_state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True, help="H.264 MP4 file to loop")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mount", default="/stream")
    parser.add_argument(
        "--fps",
        default="",
        help="override the file's rate; 10,25 gives the cameras 10, 25, 10, ... fps",
    )
    parser.add_argument("--cameras", type=int, default=0, help="serve N cameras at /cam0../camN-1")
    parser.add_argument("--in-band", action="store_true", help="SPS/PPS in the stream only, not in the SDP")
    args = parser.parse_args(argv)

    Gst.init(None)
    units, file_fps = demux_access_units(args.file)
    rates = [float(f) for f in args.fps.split(",") if f] or [file_fps or 25.0]

    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = [f"/cam{i}" for i in range(args.cameras)] if args.cameras else [args.mount]
    for i, mount in enumerate(mounts):
        server.get_mount_points().add_factory(mount, Factory(units, rates[i % len(rates)], args.in_band))
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    fps = ",".join(f"{r:g}" for r in rates)
    print(f"READY rtsp://{args.host}:{args.port}{mounts[0]} fps={fps} units={len(units)}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
