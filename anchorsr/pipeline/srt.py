"""SRT ingest through an FFmpeg relay process.

The FFmpeg inside PyAV's wheel has no libsrt; Debian's ``ffmpeg`` program has. So for
``--listen srt://HOST:PORT`` the server runs ``ffmpeg`` as an SRT listener that copies the
publisher's MPEG-TS (no decoding, no encoding) to a pipe, and reads the pipe as it reads any
MPEG-TS input. One relay process serves one publisher; when the publisher leaves, the relay
ends, the pipe ends, and the stream is finalised at once (no read timeout to wait out).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections import deque
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigError

log = logging.getLogger(__name__)

INSTALL_HINT = "Debian: apt-get install ffmpeg, or `make ffmpeg` as root"


def check_relay(ffmpeg: str) -> str:
    """The path of ``ffmpeg`` when it exists and reads SRT; a one-line ConfigError otherwise."""
    path = shutil.which(ffmpeg)
    if path is None:
        raise ConfigError(f"SRT ingest needs the ffmpeg program with SRT support ({INSTALL_HINT}); "
                          f"not found: {ffmpeg!r}")
    try:
        out = subprocess.run([path, "-hide_banner", "-protocols"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"cannot run {path!r} for SRT ingest: {exc}") from None
    inputs = out.split("Output:")[0].split()
    if "srt" not in inputs:
        raise ConfigError(f"{path!r} has no SRT support (built without libsrt); SRT ingest needs one that has "
                          f"({INSTALL_HINT})")
    return path


def listener_url(url: str, read_timeout_s: float) -> str:
    """The publisher-facing SRT URL for the relay: listener mode, and a read timeout so a
    publisher that goes silent ends its stream (the user's own query options are kept)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("mode", "listener")
    query.setdefault("timeout", str(int(read_timeout_s * 1e6)))  # microseconds
    return urlunsplit(parts._replace(query=urlencode(query)))


class SrtRelay:
    """``ffmpeg`` listening on an SRT URL, its input's packets copied as MPEG-TS to a pipe.

    ``input_url`` is what to open (``pipe:FD``); it blocks until a publisher sends. ``close()``
    ends the process; ``cpu_s`` is the CPU time the relay used (user + system).
    """

    def __init__(self, ffmpeg: str, url: str, read_timeout_s: float) -> None:
        self.url = listener_url(url, read_timeout_s)
        args = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-analyzeduration", "1000000",
                "-i", self.url, "-map", "0:v", "-map", "0:a?", "-c", "copy", "-flush_packets", "1",
                "-f", "mpegts", "pipe:1"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.input_url = f"pipe:{self.proc.stdout.fileno()}"
        self.cpu_s = 0.0
        self._errors: deque[str] = deque(maxlen=3)
        threading.Thread(target=self._read_errors, daemon=True, name="srt-relay-log").start()

    def _read_errors(self) -> None:
        for line in self.proc.stderr:
            text = line.decode("utf-8", "replace").strip()
            if text:
                self._errors.append(text)
                log.debug("srt relay: %s", text)

    def why(self) -> str:
        """The relay's last error lines, for a log line ("" when it said nothing)."""
        return f" (ffmpeg: {' / '.join(self._errors)})" if self._errors else ""

    def _cpu(self) -> float:
        try:  # a finished but not yet reaped process still has its counters here
            with open(f"/proc/{self.proc.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return self.cpu_s

    def terminate(self) -> None:
        """End the process (its pipe then ends); the pipe stays open for its reader."""
        if self.proc.returncode is None:  # not reaped yet (poll() would reap it, and its counters)
            self.cpu_s = self._cpu()
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def close(self) -> None:
        """End the process and close the pipe (after its reader is done with it)."""
        self.terminate()
        self.proc.stdout.close()
