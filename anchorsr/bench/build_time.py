"""The graph build's CPU time on the schedule benchmark's two 1080p chunks, for comparing
versions of the graph code side by side (run it once per checkout, in turns).

Prints one line per chunk: its name and the median CPU ms of ``build_graph`` (at x2, with the
anchors' blend at x2's weight when this version models it, with the texture term or
``--node-bias intra``) over ``--repeats`` builds after a warm-up; with ``--gate`` on the gated
stream, after a line with the gate's own median CPU ms over the chunk's 60 frames. The clips are made once under ``--dir`` (a synthetic pan, and a pan + zoom over a real
photo, as ``bench schedule`` makes them).

Command: ``PYTHONPATH=CHECKOUT NUMBA_NUM_THREADS=1 python anchorsr/bench/build_time.py``: this
file from any checkout, the package under test from CHECKOUT (its imports are absolute for that).
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import time


def main(argv: list[str] | None = None) -> int:
    from anchorsr.bench.schedule_bench import make_clip, make_photo_clip
    from anchorsr.graph import build_graph
    from anchorsr.schedule import chunks_of
    from anchorsr.stream import open_frames

    ap = argparse.ArgumentParser(prog="build_time.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="bench-out/build-time", help="where the two clips are made once")
    ap.add_argument("--repeats", type=int, default=9, help="timed builds per chunk (default 9)")
    ap.add_argument("--node-bias", choices=("texture", "intra"), default="texture",
                    help="the graph's node bias (default texture, the term every version has)")
    ap.add_argument("--gate", action="store_true",
                    help="build on the gated stream, as the pipeline does (the intra bias then counts the "
                         "gate's fresh shares where this version has them), and also time the gate")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"expected --repeats >= 1, got {args.repeats}")
    os.makedirs(args.dir, exist_ok=True)
    kw: dict = {"scale": 2}
    if args.node_bias == "intra":
        from anchorsr.graph import node_bias_for
        kw["node_bias"] = node_bias_for("intra", 2)
    if "anchor_weight" in inspect.signature(build_graph).parameters:
        kw["anchor_weight"] = 0.7
    for name, make in (("synthetic", make_clip), ("photo", make_photo_clip)):
        path = os.path.join(args.dir, f"{name}.mp4")
        if not os.path.exists(path):
            make(path + ".partial.mp4")
            os.replace(path + ".partial.mp4", path)
        frames = list(open_frames(path))[:60]
        if args.gate:
            from anchorsr.reuse import gate_frames

            list(gate_frames(frames))  # compile
            gate_ms = []
            for _ in range(args.repeats):
                c0 = time.process_time()
                gated = list(gate_frames(frames))
                gate_ms.append(time.process_time() - c0)
            print(f"{name} gate {1e3 * statistics.median(gate_ms):.1f}")
            frames = gated
        chunk = next(chunks_of(frames, 60, 64))
        build_graph(chunk, **kw)
        times = []
        for _ in range(args.repeats):
            c0 = time.process_time()
            build_graph(chunk, **kw)
            times.append(time.process_time() - c0)
        print(f"{name} {1e3 * statistics.median(times):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
