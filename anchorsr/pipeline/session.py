"""One publisher session of ``anchorsr serve``: its folder, its renditions and its master playlist.

Layout of a session folder ``OUT/NAME-N`` (N one past any folder of that stream already in OUT,
so a restarted server never writes into an earlier session)::

    master.m3u8       both renditions, with BANDWIDTH and RESOLUTION
    index.m3u8        the enhanced (UHD) rendition, seg00000.ts ...
    lr/index.m3u8     the input itself, its H.264 packets copied (not re-encoded): the fallback

``retention`` keeps the newest N finished sessions of each stream name and deletes older ones.
"""

from __future__ import annotations

import logging
import os
import re
import shutil

import av
from av.bitstream import BitStreamFilterContext

from ..errors import SinkError
from ..stream import EncodeSettings, HlsPlaylist, hls_options, hls_sink

log = logging.getLogger(__name__)

MASTER = "master.m3u8"
LR_FOLDER = "lr"
_SESSION = re.compile(r"^(?P<name>.+)-(?P<n>\d+)$")


def sessions_on_disk(out_dir: str, name: str) -> list[tuple[int, str]]:
    """(N, folder name) of every session folder of stream ``name`` in ``out_dir``, oldest first."""
    found = []
    try:
        entries = os.listdir(out_dir)
    except FileNotFoundError:
        return []
    for entry in entries:
        m = _SESSION.match(entry)
        if m and m["name"] == name and os.path.isdir(os.path.join(out_dir, entry)):
            found.append((int(m["n"]), entry))
    return sorted(found)


def earlier_sessions(out_dir: str, exclude: set[str]) -> list[dict]:
    """Session folders in ``out_dir`` with a playlist that are not in ``exclude`` (earlier runs'),
    newest first, described as ``Session.info`` does (sizes unknown: None)."""
    found = []
    try:
        entries = os.listdir(out_dir)
    except OSError:
        return []
    for entry in entries:
        m = _SESSION.match(entry)
        folder = os.path.join(out_dir, entry)
        if not m or entry in exclude or not os.path.isfile(os.path.join(folder, "index.m3u8")):
            continue
        rend = {"uhd": {"playlist": f"/{entry}/index.m3u8", "size": None}}
        if os.path.isfile(os.path.join(folder, LR_FOLDER, "index.m3u8")):
            rend["lr"] = {"playlist": f"/{entry}/{LR_FOLDER}/index.m3u8", "size": None}
        master = f"/{entry}/{MASTER}" if os.path.isfile(os.path.join(folder, MASTER)) else f"/{entry}/index.m3u8"
        found.append((os.path.getmtime(folder), {"name": entry, "stream": m["name"], "session": entry,
                                                 "master": master, "renditions": rend}))
    return [info for _, info in sorted(found, key=lambda x: x[0], reverse=True)]


def new_session_folder(out_dir: str, name: str) -> tuple[str, str]:
    """Create and return (session name, folder) for the next session of ``name``; never an existing one."""
    existing = sessions_on_disk(out_dir, name)
    n = existing[-1][0] + 1 if existing else 1
    while True:
        session = f"{name}-{n}"
        folder = os.path.join(out_dir, session)
        try:
            os.mkdir(folder)
            return session, folder
        except FileExistsError:  # a file of that name, or a folder made since the scan
            n += 1


def apply_retention(out_dir: str, name: str, keep: int, live: set[str]) -> list[str]:
    """Delete all but the newest ``keep`` finished sessions of ``name`` (``keep`` 0: none deleted).
    Sessions in ``live`` are never deleted nor counted. Returns the deleted session names."""
    if keep <= 0:
        return []
    finished = [s for _, s in sessions_on_disk(out_dir, name) if s not in live]
    removed = []
    for session in finished[:-keep]:
        try:
            shutil.rmtree(os.path.join(out_dir, session))
            removed.append(session)
        except OSError as exc:
            log.warning("retention: cannot remove %s: %s", session, exc)
    if removed:
        log.info("retention: removed %s (keeping the last %d of %s)", ", ".join(removed), keep, name)
    return removed


def peak_bandwidth(playlist: str) -> int | None:
    """The peak bit rate of a finished media playlist (segment bytes over its EXTINF duration)."""
    try:
        with open(playlist) as fh:
            lines = [ln.strip() for ln in fh]
    except OSError:
        return None
    peak, duration = None, None
    folder = os.path.dirname(playlist)
    for ln in lines:
        if ln.startswith("#EXTINF:"):
            duration = float(ln[len("#EXTINF:"):].split(",")[0])
        elif ln and not ln.startswith("#") and duration:
            try:
                bits = os.path.getsize(os.path.join(folder, ln)) * 8
            except OSError:
                continue
            peak = max(peak or 0, int(bits / duration))
            duration = None
    return peak


class LRCopy:
    """The input's own packets remuxed into an HLS rendition (no decoding, no encoding).

    ``write`` is called with every demuxed input packet; a failure disables the copy (logged once)
    without touching the enhanced stream.
    """

    def __init__(self, folder: str, template: av.video.stream.VideoStream, segment_s: float) -> None:
        os.makedirs(folder, exist_ok=True)
        self.playlist = os.path.join(folder, "index.m3u8")
        self.width, self.height = template.codec_context.width, template.codec_context.height
        self.bit_rate = template.codec_context.bit_rate or template.container.bit_rate or None
        self.packets = 0
        # segments start at the input's own key frames; the republished playlist has a valid
        # TARGETDURATION (at least 1 s, and never below a segment: the input's GOP may be longer)
        self._published = HlsPlaylist(self.playlist, segment_s)
        self._container = av.open(self._published.muxer_path, mode="w", format="hls",
                                  options=hls_options(folder, segment_s))
        self._stream = self._container.add_stream_from_template(template)
        # H.264 from FLV/MP4 (RTMP) holds length-prefixed NAL units; MPEG-TS needs start codes and
        # the parameter sets in band, or strict players (browsers) cannot parse the segments
        ctx = template.codec_context
        self._annexb = None
        if ctx.name == "h264" and (ctx.extradata or b"")[:1] == b"\x01":
            self._annexb = BitStreamFilterContext("h264_mp4toannexb", in_stream=template)
        self._failed = False
        self._started = False

    @property
    def ok(self) -> bool:
        return not self._failed

    def write(self, pkt: av.Packet) -> None:
        if self._failed or pkt.dts is None:
            return
        if not self._started and not pkt.is_keyframe:
            return  # a rendition starts at a key frame: before it nothing decodes
        self._started = True
        copy = av.Packet(bytes(pkt))  # the input packet goes on to the decoder unchanged
        copy.pts, copy.dts, copy.time_base = pkt.pts, pkt.dts, pkt.time_base
        copy.is_keyframe = pkt.is_keyframe
        try:
            for out in self._annexb.filter(copy) if self._annexb is not None else (copy,):
                out.stream = self._stream
                self._container.mux(out)
            self.packets += 1
            self._published.refresh()
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._failed = True
            log.warning("LR rendition %s stopped: %s", self.playlist, exc)

    def close(self) -> None:
        try:
            self._container.close()  # writes the last segment and #EXT-X-ENDLIST
            self._published.finish()
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            log.warning("closing the LR rendition %s failed: %s", self.playlist, exc)


class Session:
    """A publisher's folder, the LR copy of its input and the master playlist of both renditions."""

    def __init__(self, out_dir: str, stream: str, source, segment_s: float) -> None:
        self.stream = stream
        self.name, self.folder = new_session_folder(out_dir, stream)
        self.segment_s = segment_s
        self.fps = float(getattr(source, "fps", 0.0) or 0.0)
        self.uhd: tuple[int, int] | None = None
        self.audio = getattr(source, "audio", None)  # the input's audio, passed through to the UHD rendition
        self.lr: LRCopy | None = None
        template = getattr(source, "stream", None)
        if template is not None:
            try:
                self.lr = LRCopy(os.path.join(self.folder, LR_FOLDER), template, segment_s)
                source.on_packet = self.lr.write
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                log.warning("%s: no LR rendition: %s", self.name, exc)
                self.lr = None

    def set_source(self, source) -> None:
        """The session reads ``source`` (a ``SessionSource`` over the publisher's input): the
        LR copy takes its packets, every part's."""
        if self.lr is not None:
            source.on_packet = self.lr.write

    def make_sink(self, width: int, height: int, settings: EncodeSettings):
        sink = hls_sink(self.folder, width, height, settings, self.segment_s, self.audio)
        self.uhd = (width, height)
        self.write_master()
        return sink

    def write_master(self, final: bool = False) -> None:
        """``master.m3u8``: BANDWIDTH is an estimate while live, the measured peak once finished."""
        variants = []
        fps = self.fps or 30.0
        if self.uhd is not None:
            w, h = self.uhd
            measured = peak_bandwidth(os.path.join(self.folder, "index.m3u8")) if final else None
            variants.append((measured or int(w * h * fps * 0.1), w, h, "index.m3u8", "UHD"))
        if self.lr is not None and self.lr.ok:
            measured = peak_bandwidth(self.lr.playlist) if final else None
            bw = measured or self.lr.bit_rate or int(self.lr.width * self.lr.height * fps * 0.1)
            variants.append((int(bw), self.lr.width, self.lr.height, f"{LR_FOLDER}/index.m3u8", "LR"))
        if not variants:
            return
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
        for bw, w, h, uri, label in variants:
            lines += [f'#EXT-X-STREAM-INF:BANDWIDTH={bw},RESOLUTION={w}x{h},FRAME-RATE={fps:.3f},'
                      f'NAME="{label}"', uri]
        tmp = os.path.join(self.folder, MASTER + ".tmp")
        try:
            with open(tmp, "w") as fh:
                fh.write("\n".join(lines) + "\n")
            os.replace(tmp, os.path.join(self.folder, MASTER))
        except OSError as exc:
            raise SinkError(f"cannot write {os.path.join(self.folder, MASTER)!r}: {exc.strerror}") from None

    def close(self) -> None:
        """After the pipeline ended: finalise the LR copy, then the master with measured bandwidths."""
        if self.lr is not None:
            self.lr.close()
        try:
            self.write_master(final=True)
        except SinkError as exc:
            log.warning("%s: %s", self.name, exc)

    def info(self) -> dict:
        rend = {}
        if self.uhd is not None:
            rend["uhd"] = {"playlist": f"/{self.name}/index.m3u8", "size": list(self.uhd)}
        if self.lr is not None and self.lr.ok:
            rend["lr"] = {"playlist": f"/{self.name}/{LR_FOLDER}/index.m3u8", "size": [self.lr.width, self.lr.height]}
        return {"stream": self.stream, "session": self.name, "master": f"/{self.name}/{MASTER}", "renditions": rend}
