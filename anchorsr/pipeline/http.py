"""The HTTP side of ``anchorsr serve``: HLS files, ``/status`` (JSON), ``/metrics`` (Prometheus)
and the watch page at ``/``.

Every answer carries ``Access-Control-Allow-Origin: *`` and ``OPTIONS`` answers a CORS preflight,
so that a player on another origin (hls.js on a web page, a dashboard) can read the playlists,
the segments and the figures. Playlists are served uncached: a live playlist changes every segment.
"""

from __future__ import annotations

import html
import http.server
import json
import logging
import os
from importlib import resources
from typing import TYPE_CHECKING, Callable

from .metrics_text import render_metrics

if TYPE_CHECKING:
    from .serve import Server

log = logging.getLogger(__name__)

CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t", ".m4s": "video/iso.segment",
                 ".mp4": "video/mp4", ".aac": "audio/aac", ".vtt": "text/vtt", ".json": "application/json",
                 ".html": "text/html; charset=utf-8", ".js": "text/javascript"}
CORS_HEADERS = {"Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                "Access-Control-Allow-Headers": "Range, Content-Type, Accept",
                "Access-Control-Expose-Headers": "Content-Length, Content-Range",
                "Access-Control-Max-Age": "86400"}
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# hls.js, the watch page's player where a browser has no native HLS: installed from npm at
# set-up (`make tools`), never committed; $ANCHORSR_HLS_JS names another copy.
HLS_JS_PATHS = (os.environ.get("ANCHORSR_HLS_JS", ""),
                os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "node_modules", "hls.js", "dist", "hls.min.js"),
                os.path.join(os.getcwd(), "node_modules", "hls.js", "dist", "hls.min.js"))


def hls_js() -> bytes | None:
    """hls.js from the first place it is installed, or None."""
    for path in HLS_JS_PATHS:
        if path and os.path.isfile(path):
            with open(path, "rb") as fh:
                return fh.read()
    return None


def watch_page(status: dict) -> bytes:
    """The watch page, with the sessions listed in the HTML too (its script then keeps it current)."""
    items = []
    for s in reversed(status.get("streams", [])):
        links = [f'<a href="{html.escape(s.get("master") or s["playlist"])}">master playlist</a>']
        for key, r in (s.get("renditions") or {}).items():
            links.append(f'<a href="{html.escape(r["playlist"])}">{key.upper()} {r["size"][0]}x{r["size"][1]}</a>')
        state = "live" if s["running"] else "finished"
        items.append(f'<li class="{state}">{html.escape(s["name"])} ({state}, {s["frames_out"]} frames): '
                     + ", ".join(links) + "</li>")
    for s in status.get("earlier_sessions", []):
        items.append(f'<li class="earlier">{html.escape(s["name"])} (earlier run): '
                     f'<a href="{html.escape(s["master"])}">master playlist</a></li>')
    listing = '<ul id="index">' + "".join(items) + "</ul>" if items else '<p id="index">No sessions yet.</p>'
    page = resources.files(__package__).joinpath("watch.html").read_text(encoding="utf-8")
    return page.replace("<!--SESSIONS-->", listing, 1).encode()


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the output folder (``directory``) plus the server's own endpoints."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **CONTENT_TYPES}

    def __init__(self, server_obj: "Server", *args, **kwargs) -> None:
        self.anchorsr = server_obj
        super().__init__(*args, **kwargs)

    def _routes(self) -> dict[str, Callable[[], tuple[bytes, str]]]:
        return {"/status": lambda: (json.dumps(self.anchorsr.status(), indent=1).encode(), "application/json"),
                "/metrics": lambda: (render_metrics(self.anchorsr.status()).encode(), PROMETHEUS_TYPE),
                "/": lambda: (watch_page(self.anchorsr.status()), CONTENT_TYPES[".html"]),
                "/hls.min.js": lambda: (hls_js(), CONTENT_TYPES[".js"])}

    def _route(self):
        path = self.path.split("?")[0].split("#")[0]
        return self._routes().get(path.rstrip("/") or "/")

    def end_headers(self) -> None:
        for key, value in CORS_HEADERS.items():
            self.send_header(key, value)
        if self.path.split("?")[0].endswith(".m3u8"):
            self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _own(self, head: bool) -> bool:
        route = self._route()
        if route is None:
            return False
        body, ctype = route()
        if body is None:
            self.send_error(404, "hls.js is not installed on this server (make tools)")
            return True
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if not head:
            self.wfile.write(body)
        return True

    def do_GET(self) -> None:  # noqa: N802
        if not self._own(head=False):
            super().do_GET()

    def do_HEAD(self) -> None:  # noqa: N802
        if not self._own(head=True):
            super().do_HEAD()

    def log_message(self, fmt: str, *args) -> None:
        log.debug("http: " + fmt, *args)
