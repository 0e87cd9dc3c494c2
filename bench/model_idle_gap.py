"""The model's CPU per frame back to back and with idle gaps between frames, as below capacity.

    python bench/model_idle_gap.py [--rounds 5] [--frames 40]

One single-threaded ONNX Runtime session (as each of the daemon's sessions) on the shared
model; each round runs ``--frames`` inferences per gap, the gaps interleaved so that the
machine's drift hits them alike. Prints the median thread CPU per inference per gap.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import MODEL  # noqa: E402

GAPS_S = (0.0, 0.005, 0.02, 0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(MODEL), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
    blob = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(5):
        session.run(None, {name: blob})
    cpu: dict[float, list[float]] = defaultdict(list)
    for _ in range(args.rounds):
        for gap in GAPS_S:
            for _ in range(args.frames):
                t = time.thread_time()
                session.run(None, {name: blob})
                cpu[gap].append(time.thread_time() - t)
                if gap:
                    time.sleep(gap)
    base = statistics.median(cpu[0.0])
    print(f"# {MODEL.name}, 1 thread, {args.rounds} rounds x {args.frames} frames per gap")
    print(f"{'gap_ms':>7} {'cpu_ms_median':>14} {'vs_back_to_back':>16}")
    for gap in GAPS_S:
        median = statistics.median(cpu[gap])
        print(f"{gap * 1000:>7.0f} {median * 1000:>14.2f} {median / base:>16.2f}")


if __name__ == "__main__":
    main()
