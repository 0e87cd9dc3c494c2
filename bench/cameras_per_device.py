"""How many cameras of one kind this machine holds: `streamd bench` at growing camera counts.

    python bench/cameras_per_device.py --counts 3,4,5,6 -- --size 1920x1080 --fps 25 --gop 25 --cap 5

Runs `streamd bench` once per count with the arguments after ``--`` and prints, per count,
the processed rate against the target (the cameras' fps cap), the worst camera's share of
its target, p95 latency and the CPU used. A count is held when every camera processes at
least ``--hold`` (95%) of its target; the answer is the largest count held.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run(count: int, extra: list[str], seconds: float, out: Path) -> dict[str, Any]:
    """One `streamd bench` run with ``count`` cameras; its JSON report."""
    command = [sys.executable, "-m", "streamd", "bench", "--cameras", str(count), "--duration", str(seconds),
               "--ceiling-seconds", "3", "--json", str(out), *extra]  # fmt: skip
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--counts", default="2,4,6,8", help="camera counts to try, in order")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--hold", type=float, default=0.95, help="share of the target each camera must reach")
    parser.add_argument("bench", nargs=argparse.REMAINDER, help="-- then streamd bench arguments")
    args = parser.parse_args()
    extra = [a for a in args.bench if a != "--"]
    print(f"# streamd bench {' '.join(extra)} --duration {args.seconds:g}, camera counts {args.counts}")
    print(f"{'cameras':>7} {'target':>7} {'processed':>9} {'worst':>6} {'p95':>5} {'daemon':>7} "
          f"{'camera':>7} {'server':>7} {'held':>5}")  # fmt: skip
    held = 0
    with tempfile.TemporaryDirectory(prefix="streamd-cpd-") as tmp:
        for count in (int(c) for c in args.counts.split(",")):
            r = run(count, extra, args.seconds, Path(tmp) / f"{count}.json")
            total, cameras = r["total"], r["cameras"]
            worst = min(c["target_ratio"] for c in cameras.values())
            camera_cpu = sum(c.get("camera_cpu_percent", 0.0) for c in cameras.values()) / count
            server = r.get("others_cpu_percent", {}).get("rtsp_server", 0.0)
            ok = worst >= args.hold
            held = count if ok else held
            print(f"{count:>7} {total['target_fps']:>7.1f} {total['processed_fps']:>9.1f} {worst:>6.3f} "
                  f"{total['latency_ms']['p95']:>5.0f} {r['process']['cpu_percent']:>6.0f}% "
                  f"{camera_cpu:>6.1f}% {server:>6.0f}% {'yes' if ok else 'no':>5}", flush=True)  # fmt: skip
    print(
        f"held: {held} cameras (every camera >= {args.hold:.0%} of its target; camera: CPU of one camera's"
        " thread, % of a core; server: the simulated cameras on the same cores)"
    )


if __name__ == "__main__":
    main()
