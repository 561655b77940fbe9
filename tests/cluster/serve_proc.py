"""`anchorsr serve` in a child process for the cluster tests: started, polled over HTTP, stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request

from tests.pipeline.live_media import wait_for


class Serve:
    """serve with the bicubic stand-in model and tiny chunks; ``extra`` adds options (``--ray``)."""

    def __init__(self, tmp, listen: dict[str, str], extra=(), start_timeout_s: float = 180.0, env=None) -> None:
        self.out = str(tmp / "hls")
        args = [sys.executable, "-m", "anchorsr.cli", "-v", "serve", "--out", self.out, "--port", "0",
                "--model", "bicubic", "--chunk-frames", "15", "--patch-px", "32", "--segment-seconds", "0.5",
                "--read-timeout", "2", *extra]
        for name, url in listen.items():
            args += ["--listen", f"{name}={url}"]
        self.log = tmp / "serve.log"
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(self.log, "w"), text=True,
                                     env=env, start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        try:
            line = wait_for(lambda: next((ln for ln in self.lines if ln.startswith("serving")), None)
                            or (self.proc.poll() is not None and "exited"), start_timeout_s, "the server to start")
            assert line != "exited", self.log.read_text()[-3000:]
        except BaseException:
            self.close()
            raise
        self.url = line.split()[1]

    def _read(self) -> None:
        for ln in self.proc.stdout:
            self.lines.append(ln)

    def status(self) -> dict:
        with urllib.request.urlopen(self.url + "/status", timeout=10) as r:
            return json.loads(r.read())

    def stream(self, name: str) -> dict | None:
        return next((s for s in self.status()["streams"] if s["name"] == name), None)

    def finished(self, name: str) -> dict | None:
        s = self.stream(name)
        return s if s is not None and not s["running"] else None

    def close(self, timeout_s: float = 60.0) -> None:
        """SIGTERM (streams finalised), then SIGKILL of the whole group if it does not end."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        try:  # the group: Ray processes started by a local cluster included
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(10)
