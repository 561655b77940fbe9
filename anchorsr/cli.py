"""The ``anchorsr`` command-line tool. It owns all terminal output: progress, tables, errors."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Callable

from . import __version__
from .errors import AnchorsrError, ConfigError, SinkError, interrupt_in

log = logging.getLogger("anchorsr")

_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def _number(kind: type, expected: str, ok):
    """An argparse type: a ``kind`` (int or float) value for which ``ok(value)`` holds."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


_scale = _number(int, "2, 3 or 4", lambda v: v in (2, 3, 4))
_positive_int = _number(int, "a positive integer", lambda v: v >= 1)
_crf = _number(float, "a number from 0 to 51 (x264 CRF)", lambda v: 0.0 <= v <= 51.0)
_port = _number(int, "a port number from 0 to 65535", lambda v: 0 <= v <= 65535)
_positive_float = _number(float, "a positive number", lambda v: v > 0)
_even_px = _number(int, "'auto' or an even number of pixels >= 2", lambda v: v >= 2 and v % 2 == 0)


def _patch_px(text: str) -> int | None:
    """--patch-px: 'auto' (None: the default for each frame size) or an even pixel count."""
    return None if text.strip().lower() == "auto" else _even_px(text)


def _stream_counts(text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4); 'none' -> ()."""
    if text.strip().lower() == "none":
        return ()
    try:
        counts = tuple(int(t) for t in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected stream counts such as 1,2,4 (or none), got {text!r}")
    return counts
_non_negative_int = _number(int, "a whole number >= 0", lambda v: v >= 0)
_non_negative_float = _number(float, "a number >= 0", lambda v: v >= 0)
_share = _number(float, "a share from 0 to 1", lambda v: 0.0 < v <= 1.0)
_anchor_weight = _number(float, "a weight above 0 and at most 1", lambda v: 0.0 < v <= 1.0)


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")


def _add_reuse_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=_scale, default=2, help="upscaling factor: 2, 3 or 4 (default 2)")
    p.add_argument("--loop", choices=("closed", "open"), default="closed",
                   help="residual loop: closed (drift-free, default) or open (as NEMO/Palantir)")
    _add_lr_model_option(p)


def _add_lr_model_option(p: argparse.ArgumentParser) -> None:
    from .types import LR_MODELS

    p.add_argument("--lr-model", choices=LR_MODELS, default=LR_MODELS[0],
                   help="how the closed loop assumes the LR was made from the HR: bicubic (an antialiased "
                        "bicubic reduction, as FFmpeg's and most camera scalers make it; default) or box "
                        "(each LR pixel the mean of its HR cell, as pixel binning makes it)")


def _add_anchor_weight_option(p: argparse.ArgumentParser, client: bool = False) -> None:
    from .reuse.reconstruct import ANCHOR_WEIGHTS

    what = "the client's reconstruction makes" if client else "becomes"
    fitted = ", ".join(f"x{s} {w}" for s, w in ANCHOR_WEIGHTS.items())
    p.add_argument("--anchor-weight", type=_anchor_weight, default=None, metavar="W",
                   help=f"on the inter blocks of a P frame an anchor patch {what} W x SR + (1 - W) x reuse "
                        f"(default: the shipped network's weight fitted on training clips, {fitted}; 1: anchors "
                        f"replace reuse); key frames and intra blocks always take the SR patch whole. The "
                        f"scheduler's graph models the blend")


def _add_gate_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-gate", action="store_true",
                   help="reuse every inter block, even where plain upsampling is expected to do better "
                        "(turns the reuse gate off: an ablation)")


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line, ``anchorsr: error: ...``, like every other error (exit 2)."""

    def error(self, message: str):
        self.exit(2, f"anchorsr: error: {message} (see '{self.prog} --help')\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="anchorsr",
        description="UHD live video from low-resolution H.264 streams: super-resolution on a few "
                    "anchor patches, codec-motion reuse for every other pixel.")
    parser.add_argument("--version", action="version", version=f"anchorsr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="run the whole path on a built-in clip (real photo, camera pan)",
                       description="Make a small LR clip from a real photograph filmed by a moving "
                                   "virtual camera, enhance it, and write the output video, a "
                                   "side-by-side image and a PSNR table.")
    p.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    p.add_argument("--frames", type=_positive_int, default=90, help="clip length in frames (default 90)")
    _add_reuse_options(p)

    p = sub.add_parser("enhance", help="enhance a video file or live URL into a UHD video file",
                       description="Decode INPUT (a file or a URL FFmpeg reads: rtmp://, udp://, "
                                   "tcp://, http(s)://), rebuild every frame at SCALE x by motion "
                                   "reuse, and write an H.264 file.",
                       epilog="example: anchorsr enhance input_720p.mp4 -o output_1440p.mp4 --scale 2")
    p.add_argument("input", help="video file or URL")
    p.add_argument("-o", "--output", required=True,
                   help="output: a video file (.mp4, .mkv, .mov, .ts, .avi, .flv, .h264), an HLS folder "
                        "(ending in / or .m3u8) or an rtmp://, udp://, tcp:// URL; never the input")
    _add_reuse_options(p)
    _add_gate_option(p)
    _add_anchor_weight_option(p)
    _add_schedule_options(p)
    _add_model_options(p)
    p.add_argument("--plan", default=None, metavar="FILE",
                   help="client mode: take anchors from a plan file made by 'anchorsr plan'")
    p.add_argument("--crf", type=_crf, default=18.0, help="x264 CRF of the output, 0-51 (default 18)")
    p.add_argument("--max-frames", type=_positive_int, default=None, help="stop after N frames")
    p.add_argument("--timeout", type=_positive_float, default=10.0, help="seconds to wait for a network source")
    _add_av_options(p)
    _add_live_options(p)

    p = sub.add_parser("serve", help="accept live streams, enhance them, publish HLS over HTTP",
                       description="Listen for incoming streams (MPEG-TS over TCP, UDP or SRT, RTMP with stream "
                                   "keys, many publishers per RTMP port), enhance "
                                   "each with its own pipeline (one shared SR worker pool) and publish "
                                   "HLS under OUT/NAME-N/ (a new folder per publisher session: master.m3u8 "
                                   "lists the enhanced index.m3u8 and the input copied as lr/index.m3u8), "
                                   "served over HTTP with a watch page at /, JSON /status and Prometheus "
                                   "/metrics. Ctrl-C or SIGTERM finalises every stream.",
                       epilog="example: anchorsr serve --listen tcp://127.0.0.1:9000 --out hls; then "
                              "ffmpeg -re -i in.mp4 -c copy -f mpegts tcp://127.0.0.1:9000 and play "
                              "http://127.0.0.1:8080/ (or the playlist http://127.0.0.1:8080/s0-1/master.m3u8)")
    p.add_argument("--listen", action="append", metavar="[NAME=]URL",
                   help="input to listen on, repeatable: tcp://HOST:PORT, udp://HOST:PORT, srt://HOST:PORT, "
                        "rtmp://HOST:PORT/APP (publishers use the stream keys of the config file: "
                        "rtmp://HOST:PORT/APP/KEY) or rtmp://HOST:PORT/APP/KEY (that key too) "
                        "(default tcp://127.0.0.1:9000)")
    p.add_argument("--ffmpeg", default="ffmpeg", metavar="PROGRAM",
                   help="the ffmpeg program that relays SRT input (needs libsrt, as Debian's has; default ffmpeg)")
    p.add_argument("--out", default="hls", help="folder for the HLS output (default: hls)")
    p.add_argument("--host", default="127.0.0.1",
                   help="HTTP address (default 127.0.0.1; another address exposes the server)")
    p.add_argument("--port", type=_port, default=8080, help="HTTP port (default 8080; 0 picks a free one)")
    p.add_argument("--sr-workers", type=_positive_int, default=1, help="SR worker threads shared by all streams")
    p.add_argument("--read-timeout", type=_positive_float, default=5.0,
                   help="seconds without data after which a publisher counts as gone (default 5)")
    p.add_argument("--reconnect-grace", type=_non_negative_float, default=5.0, metavar="SECONDS",
                   help="a publisher of the same stream name that comes within SECONDS after the last one "
                        "left continues its session (same folder and playlists, timeline going on); later, "
                        "a new session (default 5; 0: every publisher gets a new session)")
    p.add_argument("--crf", type=_crf, default=23.0, help="x264 CRF of the output, 0-51 (default 23)")
    p.add_argument("--retention", type=_non_negative_int, default=0, metavar="N",
                   help="keep the last N finished sessions of each stream name in OUT, delete older ones "
                        "(default 0: keep all)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run each stream's pipeline in an actor of a Ray cluster (needs the 'cluster' "
                        "extra): 'local' starts one in this process, 'auto' joins the one started on "
                        "this machine with 'ray start', HOST:PORT joins that head node; listeners and "
                        "HTTP stay here, HLS goes to --out (a folder shared by every node)")
    p.add_argument("--ray-cpus-per-stream", type=_positive_float, default=1.0, metavar="N",
                   help="CPUs each stream's actor asks the Ray scheduler for (default 1)")
    p.add_argument("--ray-sr-workers", type=_non_negative_int, default=0, metavar="N",
                   help="with --ray: run SR in N worker actors shared by all streams (a GPU share each "
                        "where the cluster has GPUs, else 1 CPU), given to the anchors with the most "
                        "estimated gain per pixel over all streams that can finish before their "
                        "deadlines (default 0: SR in each stream's actor)")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="TOML file of serve settings (keys as the long options: listen, out, host, port, "
                        "budget, retention...; [keys]: the RTMP stream keys); options given here override it")
    _add_reuse_options(p)
    _add_gate_option(p)
    _add_anchor_weight_option(p)
    _add_schedule_options(p)
    _add_model_options(p)
    _add_av_options(p)
    _add_live_options(p)
    parser.serve_parser = p

    p = sub.add_parser("plan", help="schedule anchors for a stream and write the plan file",
                       description="Decode INPUT, build the patch dependency graph of each chunk and "
                                   "write the ordered anchor plan of every chunk to PLAN (a client "
                                   "consumes it with 'anchorsr enhance --plan PLAN').",
                       epilog="example: anchorsr plan input.mp4 -o input.plan --scheduler dag-greedy --budget 5%")
    p.add_argument("input", help="video file or URL")
    p.add_argument("-o", "--output", required=True, help="plan file to write")
    _add_schedule_options(p)
    p.add_argument("--scale", type=_scale, default=2,
                   help="the SR network (x2, x3, x4) whose node-bias predictor the graph uses (default 2)")
    _add_gate_option(p)
    _add_anchor_weight_option(p, client=True)
    p.add_argument("--max-frames", type=_positive_int, default=None, help="stop after N frames")

    p = sub.add_parser("inspect", help="print a stream's structure and motion statistics",
                       description="Decode INPUT and report codec structure, frame kinds, sizes and "
                                   "motion-vector statistics per frame.")
    p.add_argument("input", help="video file or URL")
    p.add_argument("--max-frames", type=_positive_int, default=120, help="frames to read (default 120)")
    p.add_argument("--fps", type=_positive_float, default=None,
                   help="override the input's frame rate (frames re-timed at it)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("bench", help="run a benchmark and print its figures",
                       description="Benchmarks print JSON with their figures and environment.")
    bsub = p.add_subparsers(dest="bench", metavar="BENCH")
    for name, text in BENCHMARKS.items():
        b = bsub.add_parser(name, help=text, description=text)
        b.add_argument("--json", action="store_true", help="print JSON only")
        b.add_argument("--quick", action="store_true", help="a reduced run (for a smoke test)")
        b.add_argument("-o", "--output", default=None, help="also write the JSON result to this file")
        if name in ("corpus", "quality"):
            _add_quality_options(b, name)
        if name == "cluster":
            b.add_argument("--streams", type=_positive_int, default=4, help="streams sharing the SR workers (default 4)")
            b.add_argument("--budget", type=_share, default=0.05,
                           help="SR capacity as a share of all streams' LR pixels (default 0.05)")
            b.add_argument("--scale-streams", type=_stream_counts, default=(1, 2, 4, 8), metavar="N,N...",
                           help="also measure total fps and real-time margin of this many simultaneous "
                                "360p->720p streams, in this process and in Ray actors (needs Ray; "
                                "default 1,2,4,8; 'none' skips it)")
            b.add_argument("--scale-extra-node", action="store_true",
                           help="with --scale-streams: also run the Ray streams on a head and one more node "
                                "process on this machine (its CPUs split between them), actors spread over both")
            b.add_argument("--scale-sr-workers", type=_positive_int, default=None, metavar="W",
                           help="with --scale-streams: also run the Ray streams with SR in W shared SR worker "
                                "actors under the global budget (serve --ray --ray-sr-workers W)")
        if name == "sr":
            b.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                           help="where the network runs (default cpu; cuda is never picked silently)")
            b.add_argument("--model", default=None,
                           help="an x2 .safetensors model file to measure instead of the shipped one")
            _add_engine_option(b)
            b.add_argument("--compare", nargs="+", metavar="MODEL", default=None,
                           help="instead: compare x2 model files (gains from their contracts, "
                                "patches/s measured in turns)")
        if name == "live":
            _add_engine_option(b)
            _add_lr_model_option(b)
    from .sr.cli import add_parsers as add_sr_parsers

    add_sr_parsers(sub)
    return parser


# Benchmarks under `anchorsr bench NAME`: name -> what it measures (its --help text).
BENCHMARKS = {
    "reuse": "times reuse reconstruction of 2160p output from a 1080p H.264 clip against FFmpeg's "
             "bicubic upscale of the same frames, and measures drift over a 60-frame GOP "
             "(closed vs open loop)",
    "schedule": "graph build and scheduler latency per 60-frame 1080p chunk, dag-greedy vs palantir "
                "speed-up and J of the plans (vs palantir and the exhaustive greedy), kernel exactness check",
    "sr": "SR quality over bicubic on held-out photos, patch throughput, seams, fine-tuning gain",
    "live": "end to end: a 720p and a 1080p stream pushed at real-time pace over loopback through the "
            "live pipeline at a 5 percent SR budget; sustained fps, frames late or dropped, added latency, CPU use",
    "corpus": "assemble the quality benchmark's clips (HR ground truth + live-profile LR encodings) from "
              "installed packages; missing sources are skipped with a note",
    "engines": "the numpy and the torch SR engine side by side in one run: patches/s, a 720p enhance, "
               "start-up to the first frame, a live 720p stream (what --sr-engine auto picks, and why)",
    "startup": "time from process start to the first output frame of anchorsr enhance, warm numba cache "
               "against cold (empty cache), and whether a warm start recompiles anything",
    "cluster": "one SR budget across live streams (greedy by estimated gain per pixel over all streams) "
               "against equal per-stream budgets at the same SR compute: mean PSNR-Y over streams",
    "quality": "every scheduler at every budget through the reuse + SR path against the HR ground truth: "
               "PSNR, SSIM, VMAF, gain kept, anchor-size saving, estimator fidelity; writes a report",
}


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default",
                   help="SR network: 'default' (shipped weights for --scale), 'bicubic' (stand-in, "
                        "no network) or a .safetensors model file")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the SR network runs (default cpu; cuda is never picked silently)")
    _add_engine_option(p)
    p.add_argument("--no-transcode", action="store_true",
                   help="fail instead of re-encoding input that is not H.264 with 1 reference and no B-frames")


def _add_engine_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sr-engine", choices=("auto", "numpy", "torch"), default="auto",
                   help="what runs the SR network: numpy (the shipped plain networks on the CPU, without "
                        "importing torch: seconds sooner to the first frame), torch (any network, CPU or "
                        "CUDA), or auto (default: numpy for a run that ends, torch for a real-time live run "
                        "when torch is installed, and for CUDA or other networks)")


def _add_av_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-audio", action="store_true",
                   help="drop the input's audio (by default it is passed through in sync: copied when the "
                        "output container takes its codec, else encoded to AAC)")
    p.add_argument("--fps", type=_positive_float, default=None,
                   help="override the input's frame rate: frames are re-timed at it (default: the input's "
                        "timestamps; a raw .h264 stream's rate comes from its SPS timing info)")


def _add_live_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("live pipeline (URL input, HLS or URL output, serve)")
    g.add_argument("--max-latency", type=_positive_float, default=None, metavar="SECONDS",
                   help="added-latency target: a frame whose SR is not ready by then is rebuilt by reuse "
                        "alone (default: chunk duration + 1 s)")
    g.add_argument("--preset", default="ultrafast", choices=X264_PRESETS, metavar="PRESET",
                   help="x264 preset of the live output (default ultrafast: at 1440p it took 19 ms of "
                        "CPU per frame against 30 for superfast, for files about 1.5x larger at one CRF)")
    g.add_argument("--segment-seconds", type=_positive_float, default=2.0,
                   help="HLS segment length and key-frame interval of the output (default 2)")
    g.add_argument("--no-light", action="store_true",
                   help="never switch to the light reconstruction: by default, when frames are dropped even "
                        "with SR shed, the closed loop uses the box model of the LR (about half its CPU, a "
                        "little less PSNR) until the SR budget is back at its target")


def _live_options(args: argparse.Namespace, realtime: bool):
    from .pipeline import PipelineOptions
    from .schedule import parse_budget

    return PipelineOptions(scale=args.scale, loop=args.loop, lr_model=args.lr_model, scheduler=args.scheduler,
                           budget_fraction=parse_budget(args.budget), chunk_frames=args.chunk_frames,
                           patch_px=args.patch_px, plan_path=getattr(args, "plan", None), crf=args.crf,
                           preset=args.preset, segment_s=args.segment_seconds, max_latency_s=args.max_latency,
                           realtime=realtime, max_frames=getattr(args, "max_frames", None),
                           audio=not args.no_audio, fps=args.fps, device=args.device,
                           node_bias=args.node_bias, gate=not args.no_gate, sr_engine=args.sr_engine,
                           anchor_weight=args.anchor_weight, light=not args.no_light)


def _add_quality_options(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("--corpus", default="bench-corpus", metavar="DIR",
                   help="corpus folder (built when missing; default bench-corpus)")
    if name == "corpus":
        p.add_argument("--rebuild", action="store_true", help="rebuild clips that are already there")
        return
    p.add_argument("--out", default="bench-out/quality", metavar="DIR",
                   help="folder for quality.json, report.md/.html and figures (default bench-out/quality)")
    p.add_argument("--clips", nargs="+", default=None, metavar="PATH",
                   help="measure these HR clips (any format FFmpeg reads) instead of the corpus")
    p.add_argument("--budgets", default=None, help="comma-separated budgets (default 1.67%%,5%%,10%%,20%%)")
    p.add_argument("--schedulers", default=None, help="comma-separated scheduler names (default: all)")
    p.add_argument("--encoding", choices=("rate", "crf"), default="rate",
                   help="LR encoding to measure: realistic bitrate (default) or CRF")
    p.add_argument("--frames", type=_positive_int, default=None, help="frames per clip (default: all)")
    p.add_argument("--patch-px", type=_patch_px, default=None,
                   help="patch size in LR pixels (default: the pipeline's own, 64 or 32 px for the "
                        "frame size; 128 px for LR wider than 1280, to bound the run's time)")
    p.add_argument("--no-vmaf", action="store_true", help="skip VMAF")
    from .graph.predictor import NODE_BIASES

    p.add_argument("--node-bias", choices=NODE_BIASES, default="intra",
                   help="dag-greedy's node bias (default intra: the texture of intra pixels, and of inter "
                        "blocks by the share of error the reuse gate measured a reuse step adding there; "
                        "texture: of every newly coded pixel, palantir's always; oracle runs the network on "
                        "every patch: an evaluation-only upper bound); docs/method.md §2.1, §2.2, §2.6")
    p.add_argument("--no-bias-compare", action="store_true",
                   help="skip dag-greedy and the fidelity with the other node biases (texture, predictor, "
                        "oracle, intra)")
    _add_gate_option(p)
    p.add_argument("--only", default=None, metavar="NAMES", help="comma-separated corpus clip names to measure")
    p.add_argument("--rederive", action="store_true",
                   help="recompute the derived figures and the report from OUT/quality.json, measuring nothing")


def _add_schedule_options(p: argparse.ArgumentParser) -> None:
    from .schedule import available_schedulers

    p.add_argument("--scheduler", choices=available_schedulers(), default="dag-greedy",
                   help="anchor scheduler (default dag-greedy)")
    p.add_argument("--budget", default="5%",
                   help="share of LR pixels that go through SR, e.g. 5%% or 0.05 (default 5%%)")
    p.add_argument("--chunk-frames", type=_positive_int, default=60, help="frames per scheduling chunk (default 60)")
    p.add_argument("--patch-px", type=_patch_px, default=None,
                   help="patch size in LR pixels, even, or auto (default auto: 64, or 32 where 64 px patches "
                        "would cut the frame into fewer than 500, i.e. below 1080p)")
    from .graph.predictor import STREAM_NODE_BIASES

    p.add_argument("--node-bias", choices=STREAM_NODE_BIASES, default="intra",
                   help="the graph's node bias: intra (default; what a down/up round trip loses on the "
                        "intra pixels, and on an inter block by the share of error the reuse gate measured "
                        "one reuse step adding there; none without the gate), texture (on every "
                        "newly coded pixel, residuals included) or predictor (what the SR network changes, "
                        "fitted to its weights; measured no better on the quality corpus, see README); "
                        "palantir always plans on texture, as published; docs/method.md §2.1, §2.2, §2.6")


def _command(name: str):
    def register(fn):
        if name in _COMMANDS:
            raise ValueError(f"duplicate command {name!r}")
        _COMMANDS[name] = fn
        return fn
    return register


@_command("demo")
def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, n_frames=args.frames, scale=args.scale, loop=args.loop, lr_model=args.lr_model)
    return 0


@_command("enhance")
def _run_enhance(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .pipeline import PipelineOptions, enhance_file
    from .schedule import parse_budget
    from .stream import is_hls_target

    from .stream.encode import check_output_file

    _check_outputs(args.input, args.output, plan=args.plan)
    if args.plan is not None:
        _check_plan_file(args.plan)
    if "://" not in args.output and not is_hls_target(args.output):
        check_output_file(args.output)
    if "://" in args.input or "://" in args.output or is_hls_target(args.output):
        return _run_enhance_live(args)

    options = PipelineOptions(scale=args.scale, loop=args.loop, lr_model=args.lr_model, scheduler=args.scheduler,
                              budget_fraction=parse_budget(args.budget), chunk_frames=args.chunk_frames,
                              patch_px=args.patch_px, model=args.model, device=args.device,
                              sr_engine=args.sr_engine, plan_path=args.plan,
                              transcode=not args.no_transcode, crf=args.crf, timeout_s=args.timeout,
                              max_frames=args.max_frames, audio=not args.no_audio, fps=args.fps,
                              node_bias=args.node_bias, gate=not args.no_gate, anchor_weight=args.anchor_weight)
    with Progress(TextColumn("[bold]enhance"), BarColumn(bar_width=None) if args.max_frames else TextColumn(""),
                  TextColumn("{task.completed} frames, {task.fields[fps]:.1f} fps, SR share {task.fields[share]:.1%}"),
                  TimeElapsedColumn(), transient=False,
                  # off a terminal the bar would only be drawn once, at the end (or as a blank
                  # line before an error): the summary line below says the same
                  disable=not sys.stdout.isatty()) as progress:
        task = progress.add_task("enhance", total=args.max_frames, fps=0.0, share=0.0)

        def on_frame(summary) -> None:
            progress.update(task, completed=summary.frames, fps=summary.fps, share=summary.sr_share)
            if summary.frames == 1:
                _mark_first_frame(summary.sr_engine)

        try:
            summary = enhance_file(args.input, args.output, options, on_frame=on_frame)
        except Exception:
            if progress.tasks[0].completed == 0:
                progress.live.transient = True  # nothing was made: the error line alone, no empty bar
            raise
    w, h = summary.sizes[0]
    print(f"wrote {summary.output}: {summary.frames} frames at {w}x{h}, {summary.fps:.1f} fps, "
          f"SR share {summary.sr_share:.1%}, {summary.corrupt_packets} corrupt packets skipped, "
          f"{summary.lost_frames} frames lost" + (", input transcoded" if summary.transcoded else ""))
    return 0


def _mark_first_frame(sr_engine: str) -> None:
    """For ``anchorsr bench startup``: record when the first output frame was written, the
    process's CPU time by then, what made its anchors, and whether it has imported torch."""
    path = os.environ.get(FIRST_FRAME_MARK)
    if path:
        import time

        with open(path, "w") as fh:
            json.dump({"time": time.time(), "cpu_s": time.process_time(), "sr_engine": sr_engine,
                       "torch_imported": "torch" in sys.modules}, fh)


# Environment variable naming a file where `enhance` writes the wall-clock time of its first
# output frame (read by the startup benchmark).
FIRST_FRAME_MARK = "ANCHORSR_FIRST_FRAME_MARK"


def _check_outputs(source: str, output: str, plan: str | None = None, partial: str | None = None) -> None:
    """Refuse an output that would overwrite what the user gave us: the input or the plan file
    (the same file under another name or through a link counts), before any work starts.
    ``partial``: the temporary name the output is written under (default: a video file's)."""
    from .stream import HLS_PLAYLIST, is_hls_target
    from .stream.encode import partial_path

    if "://" in output:
        return
    if is_hls_target(output):
        written = [output if output.endswith(".m3u8") else os.path.join(output, HLS_PLAYLIST)]
    else:
        written = [output, partial or partial_path(output)]
    for what, given in (("input", source), ("plan file", plan)):
        if given is None or "://" in given or not os.path.exists(given):
            continue
        for path in written:
            same = os.path.realpath(path) == os.path.realpath(given)
            try:
                same = same or (os.path.exists(path) and os.path.samefile(path, given))
            except OSError:
                pass
            if same:
                raise ConfigError(f"output {output!r} is the {what} {given!r}: it would be overwritten; "
                                  "expected another output path")


def _check_plan_file(path: str) -> None:
    """A plan given with --plan must exist and parse, before any work starts."""
    from .errors import PlanFormatError
    from .schedule import read_plans

    if not os.path.isfile(path):
        raise ConfigError(f"plan file not found: expected a file written by 'anchorsr plan', got {path!r}")
    try:
        plans = read_plans(path)
    except OSError as exc:
        raise ConfigError(f"cannot read the plan file {path!r}: {exc.strerror or exc}") from None
    except PlanFormatError as exc:
        raise PlanFormatError(f"{path!r} is not a plan written by 'anchorsr plan': {exc}") from None
    if not plans:
        raise ConfigError(f"the plan file {path!r} holds no plans (empty file)")


def _live_progress(label: str, total: int | None):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(f"[bold]{label}"), BarColumn(bar_width=None) if total else TextColumn(""),
                    TextColumn("{task.completed} frames, {task.fields[fps]:.1f} fps, SR share "
                               "{task.fields[share]:.1%}, {task.fields[late]} late, {task.fields[dropped]} dropped"),
                    TimeElapsedColumn(), transient=False)


class _FinaliseOnSignals:
    """SIGTERM (``timeout``, systemd, container stops) and SIGHUP (a closed terminal) end a run
    the way Ctrl-C does: KeyboardInterrupt, so what was produced is finalised. Only the first
    signal interrupts; later ones are ignored, so they cannot cut that finalisation short.
    The previous handlers come back on exit. Only the main thread can set handlers."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict = {}

    def _handler(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
            raise KeyboardInterrupt
        print("anchorsr: still finalising the output", file=sys.stderr, flush=True)

    def __enter__(self) -> "_FinaliseOnSignals":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _run_enhance_live(args: argparse.Namespace) -> int:
    import time

    from .pipeline import enhance_stream

    options = _live_options(args, realtime="://" in args.input)
    with _live_progress("enhance", args.max_frames) as progress:
        task = progress.add_task("enhance", total=args.max_frames, fps=0.0, share=0.0, late=0, dropped=0)

        def on_frame(stats) -> None:
            progress.update(task, completed=stats.frames_out, fps=stats.fps(time.monotonic()),
                            share=stats.sr_share, late=stats.late, dropped=stats.dropped)

        info = enhance_stream(args.input, args.output, options, model=args.model,
                              transcode=not args.no_transcode, timeout_s=args.timeout, on_frame=on_frame)
    w, h = info["output_size"]
    lat = info["latency_ms"]
    print(f"wrote {args.output}: {info['frames_out']} frames at {w}x{h}, {info['fps']:.1f} fps, "
          f"SR share {info['sr_share']:.1%}, {info['late']} late, {info['dropped']} dropped, "
          f"{info['sr_late_frames']} rebuilt without SR (deadline), {info['corrupt_packets']} corrupt packets "
          f"skipped, {info.get('lost_frames', 0) + info.get('missing_frames', 0)} frames lost; added latency median {lat['median']} ms, p95 {lat['p95']} ms")
    return 0


@_command("serve")
def _run_serve(args: argparse.Namespace) -> int:
    import time

    from .pipeline.serve import Server, ServeOptions

    listen = args.listen or getattr(args, "config_listen", None) or ["tcp://127.0.0.1:9000"]
    options = ServeOptions(listen=tuple(listen), out_dir=args.out,
                           host=args.host, http_port=args.port, model=args.model, sr_workers=args.sr_workers,
                           read_timeout_s=args.read_timeout, reconnect_grace_s=args.reconnect_grace,
                           transcode=not args.no_transcode,
                           retention=args.retention, keys=tuple(getattr(args, "keys", ())), ffmpeg=args.ffmpeg,
                           live=_live_options(args, realtime=True),
                           ray=args.ray, ray_cpus_per_stream=args.ray_cpus_per_stream,
                           ray_sr_workers=args.ray_sr_workers)
    server = Server(options)
    try:
        server.start()
        print(f"serving {server.http_url} (watch page; status: {server.http_url}/status, metrics: "
              f"{server.http_url}/metrics); HLS of each stream at {server.http_url}/NAME-N/master.m3u8; "
              "listening on " + ", ".join(li.url for li in server.listeners),
              flush=True)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    streams = server.status()["streams"]
    print(f"stopped; {len(streams)} stream(s) finalised: "
          + (", ".join(f"{s['name']} ({s['frames_out']} frames)" for s in streams) or "none"), flush=True)
    return 0


@_command("plan")
def _run_plan(args: argparse.Namespace) -> int:
    import itertools

    from .graph import node_bias_for
    from .reuse import ReuseConfig, gate_frames
    from .schedule import parse_budget, plan_stream, write_plans
    from .stream import VideoSource

    budget = parse_budget(args.budget)
    _check_outputs(args.input, args.output, partial=args.output + ".partial")
    _check_plan_output(args.output)
    src = VideoSource(args.input)
    frames = itertools.islice(src, args.max_frames) if args.max_frames else src
    frames = gate_frames(frames, not args.no_gate)  # the client's reconstruction gates the same blocks
    stats = {"chunks": 0, "anchors": 0, "area": 0.0}

    def plans():
        for chunk, plan in plan_stream(frames, args.scheduler, budget, args.chunk_frames, args.patch_px,
                                       node_bias=node_bias_for(args.node_bias, args.scale), scale=args.scale,
                                       anchor_weight=ReuseConfig(args.scale, anchor_weight=args.anchor_weight).anchor_weight):
            stats["chunks"] += 1
            stats["anchors"] += len(plan)
            stats["area"] += plan.anchor_fraction() * len(chunk)
            print(f"chunk {stats['chunks']:4d} (frames {chunk.start}-{chunk.start + len(chunk) - 1}): "
                  f"{len(plan)} anchors, {plan.anchor_fraction():.2%} of LR pixels", file=sys.stderr)
            yield plan

    tmp = args.output + ".partial"
    try:
        write_plans(tmp, plans())
        os.replace(tmp, args.output)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise SinkError(f"cannot write {args.output!r}: {exc.strerror or exc}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    print(f"wrote {args.output}: {stats['chunks']} chunk plans, {stats['anchors']} anchors ({args.scheduler}, "
          f"budget {budget:.2%})")
    return 0


def _check_plan_output(path: str) -> None:
    """The plan file's folder must exist and be writable, before any decoding."""
    from .stream.encode import check_output_folder

    check_output_folder(path, "a plan file name")


@_command("train")
def _run_train(args: argparse.Namespace) -> int:
    return args.handler(args)


_FPS_SOURCES = {"override": "--fps", "sps": "from the SPS timing info", "guessed": "FFmpeg's guess",
                "container": "from the container", "default": "assumed"}


@_command("inspect")
def _run_inspect(args: argparse.Namespace) -> int:
    from .stream import VideoSource

    src = VideoSource(args.input, fps=args.fps, audio=True)
    audio = src.audio and {"codec": src.audio.codec_name, "sample_rate": src.audio.sample_rate,
                           "layout": src.audio.layout}
    rows, size = [], None
    for frame in src:
        size = size or [frame.width, frame.height]
        if frame.index >= args.max_frames:
            break
        m = frame.motion
        rows.append({"index": frame.index, "kind": frame.kind, "bytes": frame.size_bytes,
                     "intra_share": round(m.intra_fraction, 4),
                     "mean_abs_mv_px": round(float(abs(m.mv[~m.intra]).mean() / 4) if (~m.intra).any() else 0.0, 3)})
    src.close()
    info = {"input": args.input, "codec": src.codec_name, "fps": src.fps, "fps_source": src.fps_source,
            "size": size, "audio": audio,
            "transcoded": src.stats.transcoded, "transcode_reason": src.stats.transcode_reason,
            "frames_read": len(rows), "key_frames": sum(r["kind"] == "I" for r in rows),
            "corrupt_packets": src.stats.corrupt_packets, "lost_frames": src.stats.lost_frames, "frames": rows}
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        print(f"{args.input}: {info['codec']} {info['size'][0]}x{info['size'][1]} at {info['fps']:.2f} fps"
              + f" ({_FPS_SOURCES[src.fps_source]})"
              + (f", audio {audio['codec']} {audio['sample_rate']} Hz {audio['layout']}" if audio else ", no audio")
              + (f" (would be transcoded: {info['transcode_reason']})" if info["transcoded"] else ""))
        print(f"{len(rows)} frames read, {info['key_frames']} key frames")
        for r in rows[:20]:
            print(f"  #{r['index']:4d} {r['kind']} {r['bytes']:8d} B  intra {r['intra_share']:.1%}  "
                  f"|mv| {r['mean_abs_mv_px']:.2f} px")
    return 0


@_command("bench")
def _run_bench(args: argparse.Namespace) -> int:
    if args.bench is None:
        raise ConfigError(f"expected a benchmark name ({', '.join(BENCHMARKS)}), see anchorsr bench --help")
    if args.bench == "reuse":
        from .bench.reuse_bench import run_reuse_bench

        result = run_reuse_bench(quick=args.quick, progress=None if args.json else _stderr_progress)
    elif args.bench == "live":
        from .bench.live_bench import run_live_bench

        result = run_live_bench(quick=args.quick, progress=None if args.json else _stderr_progress,
                                engine=args.sr_engine, lr_model=args.lr_model)
    elif args.bench == "engines":
        from .bench.engine_bench import run_engine_bench

        result = run_engine_bench(quick=args.quick, progress=None if args.json else _stderr_progress)
    elif args.bench == "startup":
        from .bench.startup_bench import run_startup_bench

        result = run_startup_bench(quick=args.quick, progress=None if args.json else _stderr_progress)
    elif args.bench in ("corpus", "quality"):
        result = _run_quality_bench(args, getattr(args, "argv", None))
    elif args.bench == "cluster":
        from .bench.cluster_bench import run_cluster_bench

        result = run_cluster_bench(args.streams, args.budget, quick=args.quick,
                                   progress=None if args.json else _stderr_progress,
                                   scale_counts=args.scale_streams, scale_extra_node=args.scale_extra_node,
                                   scale_sr_workers=args.scale_sr_workers or 0)
    elif args.bench == "schedule":
        from .bench.schedule_bench import run_schedule_bench

        result = run_schedule_bench(quick=args.quick)
    else:
        from .sr.bench import run_sr_bench

        if args.compare:
            from .sr.bench import compare_models

            result = compare_models(args.compare, device=args.device, quick=args.quick, engine=args.sr_engine)
        else:
            result = run_sr_bench(quick=args.quick, device=args.device, model_path=args.model,
                                  engine=args.sr_engine)
    text = json.dumps(result, indent=1)
    if args.output:
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        with open(args.output, "w") as fh:
            fh.write(text + "\n")
    print(text)
    return 0


def _run_quality_bench(args: argparse.Namespace, argv: list[str] | None = None) -> dict:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .envinfo import environment

    if args.bench == "corpus":
        from .bench.corpus import assemble, default_sources, require_available

        sources = default_sources()
        require_available(sources)
        states = {}
        corpus = assemble(args.corpus, sources, rebuild=args.rebuild,
                          on_clip=lambda n, st: (states.__setitem__(n, st),
                                                 print(f"corpus: {n}: {st}", file=sys.stderr, flush=True)))
        return {"benchmark": "corpus", "dir": os.path.abspath(args.corpus), "scale": corpus.scale,
                "clips": [{k: c[k] for k in ("name", "kind", "licence", "hr", "lr")} | {"state": states[c["name"]]}
                          for c in corpus.clips],
                "skipped": corpus.skipped, "environment": environment()}
    from .bench.quality import QUICK, QualitySettings, rederive, run_quality, select_sources
    from .schedule import parse_budget

    if args.rederive:
        path = os.path.join(args.out, "quality.json")
        if not os.path.exists(path):
            raise ConfigError(f"no {path} to rederive from; run 'anchorsr bench quality --out {args.out}' first")
        with open(path) as fh:
            return rederive(json.load(fh), args.out)

    options: dict = dict(QUICK) if args.quick else {}
    if args.budgets:
        options["budgets"] = tuple(parse_budget(b) for b in args.budgets.split(",") if b.strip())
    if args.schedulers:
        options["schedulers"] = tuple(n.strip() for n in args.schedulers.split(",") if n.strip())
    if args.frames:
        options["max_frames"] = args.frames
    if args.patch_px:
        options["patch_px"] = args.patch_px
    options["encoding"] = args.encoding
    options["vmaf"] = not args.no_vmaf
    options["node_bias"] = args.node_bias
    options["compare_biases"] = not args.no_bias_compare
    options["gate"] = not args.no_gate
    settings = QualitySettings(**options)
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    # Unknown names, missing clip files, or no available source at all: one error line before
    # anything is built or written.
    select_sources(settings, args.clips, args.quick, only)
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]quality"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), TextColumn("{task.description}"),
                  console=console, transient=args.json) as progress:
        task = progress.add_task("", total=None)
        # Not a terminal (a log file, a CI job): no live bar is drawn, so a plain line is
        # written at every 5% of the run instead.
        lines = _PercentLines("quality", _stderr_progress) if not console.is_terminal else None

        def on_progress(text: str, advance: float = 0.0, total: float | None = None) -> None:
            if total is not None:
                progress.update(task, total=total)
            progress.update(task, advance=advance, description=text[:60])
            if lines is not None:
                lines(progress.tasks[0].completed, progress.tasks[0].total, text)

        result = run_quality(args.out, settings, corpus_dir=args.corpus, clip_paths=args.clips,
                             quick=args.quick, progress=on_progress,
                             only=only,
                             command=" ".join(["anchorsr", *(argv or sys.argv[1:])]))
    if not args.json:
        print(f"wrote {os.path.join(args.out, 'report.md')}, report.html, quality.json and figures/",
              file=sys.stderr)
    return result


def _stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _PercentLines:
    """Calls ``write("LABEL: P% TEXT")`` each time the work done crosses another ``step``
    percent of the total (nothing while the total is unknown)."""

    def __init__(self, label: str, write, step: int = 5) -> None:
        self.label, self.write, self.step = label, write, step
        self.next = 0

    def __call__(self, done: float, total: float | None, text: str) -> None:
        if not total:
            return
        percent = int(100 * min(done / total, 1.0))
        if percent >= self.next:
            self.write(f"{self.label}: {percent}% {text}")
            self.next = (percent // self.step + 1) * self.step


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="anchorsr: %(levelname)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    signals = _FinaliseOnSignals() if args.command in _FINALISING else None
    try:
        if args.command == "serve" and args.config:  # the file's settings as defaults, then the flags again
            from .pipeline.config import load_serve_config

            parser.serve_parser.set_defaults(**load_serve_config(args.config))
            args = parser.parse_args(argv)
            args.argv = argv
        if signals is None:
            return _COMMANDS[args.command](args)
        with signals:
            return _COMMANDS[args.command](args)
    except AnchorsrError as exc:
        print(f"anchorsr: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return _interrupted(args, signals)
    except BrokenPipeError:
        os._exit(1)
    except Exception as exc:
        if interrupt_in(exc):  # a stop signal that a compiled library reported as its own error
            return _interrupted(args, signals)
        # An I/O failure (OSError, or an FFmpeg error from PyAV) that no stage turned into an
        # AnchorsrError still ends with one line; anything else is a bug and keeps its traceback.
        if not isinstance(exc, OSError) and not type(exc).__module__.startswith("av."):
            raise
        log.debug("I/O error", exc_info=True)
        where = f": {exc.filename!r}" if getattr(exc, "filename", None) else ""
        print(f"anchorsr: error: {getattr(exc, 'strerror', None) or exc}{where}", file=sys.stderr)
        return 1


def _interrupted(args, signals) -> int:
    """The one line and exit status of a run stopped by Ctrl-C or a stop signal."""
    import signal

    signum = signals.signum if signals is not None and signals.signum else signal.SIGINT
    name = signal.Signals(signum).name
    done = "no plan file written" if args.command == "plan" else "outputs written so far were finalised"
    print(f"anchorsr: interrupted ({name}); {done}", file=sys.stderr)
    return 128 + signum


# Commands whose SIGTERM / SIGHUP finalise their output like Ctrl-C (see _FinaliseOnSignals).
_FINALISING = ("enhance", "serve", "plan", "demo")


if __name__ == "__main__":
    sys.exit(main())
