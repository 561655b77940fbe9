"""The environment record every benchmark result carries: commit, machine, library versions."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.abspath(__file__)), timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (None when it is not installed)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment(**extra) -> dict:
    """Commit, CPU, core count, load and library versions (plus ``extra`` keys) for a result file.

    Libraries are read from package metadata, so recording them imports nothing heavy; the numba
    thread count and the FFmpeg version come from the modules when they are already loaded.
    """
    import sys

    env = {"commit": _commit(), "cpu": _cpu_model(), "cores": os.cpu_count(),
           "load_average_1m": round(os.getloadavg()[0], 2), "python": platform.python_version()}
    for dist in ("numpy", "scipy", "numba", "av", "torch"):
        env[dist if dist != "av" else "pyav"] = package_version(dist)
    if "av" in sys.modules:
        env["ffmpeg_libavcodec"] = str(sys.modules["av"].library_versions.get("libavcodec"))
    if "numba" in sys.modules:
        env["numba_threads"] = sys.modules["numba"].get_num_threads()
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        env["torch_threads"] = torch.get_num_threads()
        env["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    env.update(extra)
    return env


def sha256_file(path: str) -> str:
    """SHA-256 of a file, hex (data sets, clips and weights are recorded with it)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
