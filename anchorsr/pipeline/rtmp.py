"""RTMP ingest with stream keys and any number of publishers on one port.

FFmpeg's RTMP listen mode (``listen=1``) serves one connection and accepts whatever app and
stream name the publisher sends. So ``serve`` owns the port itself: :class:`RtmpGate` accepts
every connection in a thread of its own (an idle or slow client holds only its own thread), and
relays each one to a private FFmpeg RTMP listener on a loopback port, which demuxes it as
before. While relaying it reads the client's side of the conversation (the handshake, then the
chunk stream up to the ``publish`` command; :class:`ChunkReader`, :func:`amf0_values`) and holds
the ``publish`` command back until it has checked the app and the stream key: a publisher with
an unknown key, from an address the key does not allow, or with a key that is already live, is
disconnected before a single media byte reaches FFmpeg, and the refusal is logged. After an
accepted ``publish`` the relay copies bytes without looking at them.

A publisher's URL is ``rtmp://HOST:PORT/APP/KEY`` (FFmpeg, OBS: server ``rtmp://HOST:PORT/APP``,
stream key ``KEY``); the stream is named by its key's entry (:class:`StreamKey`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)

HANDSHAKE_BYTES = 1 + 1536 + 1536  # C0, C1, C2: what a client sends before its first chunk
_BUF = 65536


@dataclass(frozen=True)
class StreamKey:
    """One key that may publish: the stream it names, and (optional) the addresses allowed to use it."""

    name: str
    key: str
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def allows(self, address: str) -> bool:
        if not self.allow:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.allow)


def masked(key: str) -> str:
    """A key as logged: enough to tell keys apart, not enough to publish with."""
    return (key[:2] + "..." if len(key) > 4 else "...") + f" ({len(key)} characters)"


# -- AMF0 (the encoding of RTMP commands) ------------------------------------------------------

class AMFError(ValueError):
    pass


def amf0_values(data: bytes, limit: int = 8) -> list:
    """Decode up to ``limit`` AMF0 values from ``data`` (numbers, booleans, strings, objects,
    ECMA and strict arrays, null/undefined, dates); stops quietly at the end of the data."""
    values, pos = [], 0
    while pos < len(data) and len(values) < limit:
        value, pos = _amf0_value(data, pos, 0)
        values.append(value)
    return values


def _need(data: bytes, pos: int, n: int) -> None:
    if pos + n > len(data):
        raise AMFError("truncated AMF0 value")


def _amf0_value(data: bytes, pos: int, depth: int):
    if depth > 16:
        raise AMFError("AMF0 nesting too deep")
    _need(data, pos, 1)
    marker, pos = data[pos], pos + 1
    if marker == 0x00:  # number
        _need(data, pos, 8)
        return struct.unpack_from(">d", data, pos)[0], pos + 8
    if marker == 0x01:  # boolean
        _need(data, pos, 1)
        return bool(data[pos]), pos + 1
    if marker in (0x02, 0x0C):  # string, long string
        size = 2 if marker == 0x02 else 4
        _need(data, pos, size)
        n = int.from_bytes(data[pos:pos + size], "big")
        _need(data, pos + size, n)
        return data[pos + size:pos + size + n].decode("utf-8", "replace"), pos + size + n
    if marker in (0x03, 0x08):  # object, ECMA array (a count, then the same properties)
        if marker == 0x08:
            _need(data, pos, 4)
            pos += 4
        obj = {}
        while True:
            _need(data, pos, 2)
            n = int.from_bytes(data[pos:pos + 2], "big")
            pos += 2
            if n == 0:
                _need(data, pos, 1)
                if data[pos] == 0x09:  # object end
                    return obj, pos + 1
            _need(data, pos, n)
            name = data[pos:pos + n].decode("utf-8", "replace")
            obj[name], pos = _amf0_value(data, pos + n, depth + 1)
    if marker in (0x05, 0x06):  # null, undefined
        return None, pos
    if marker == 0x0A:  # strict array
        _need(data, pos, 4)
        count, pos = int.from_bytes(data[pos:pos + 4], "big"), pos + 4
        items = []
        for _ in range(count):
            item, pos = _amf0_value(data, pos, depth + 1)
            items.append(item)
        return items, pos
    if marker == 0x0B:  # date: milliseconds, then a time zone
        _need(data, pos, 10)
        return struct.unpack_from(">d", data, pos)[0], pos + 10
    raise AMFError(f"unsupported AMF0 marker 0x{marker:02x}")


# -- the client's chunk stream -----------------------------------------------------------------

@dataclass
class _ChunkStream:
    length: int = 0
    type_id: int = 0
    extended: bool = False
    payload: bytearray = field(default_factory=bytearray)


class ChunkReader:
    """Reads what an RTMP client sends: the handshake, then chunks, reassembled into messages.

    ``parse(buf)`` consumes whole chunks only and returns (bytes consumed, [(type id, payload)])
    for the messages those chunks completed; a partial chunk is left for the next call. It
    follows the client's Set Chunk Size messages.
    """

    def __init__(self) -> None:
        self.handshake_left = HANDSHAKE_BYTES
        self.chunk_size = 128
        self.streams: dict[int, _ChunkStream] = {}

    def parse(self, buf: bytes | bytearray) -> tuple[int, list[tuple[int, bytes]]]:
        pos, messages = 0, []
        if self.handshake_left:
            if buf and self.handshake_left == HANDSHAKE_BYTES and buf[0] != 3:
                raise AMFError(f"not an RTMP handshake (version byte {buf[0]})")
            pos = min(self.handshake_left, len(buf))
            self.handshake_left -= pos
        while True:
            end = self._chunk(buf, pos, messages)
            if end is None:
                return pos, messages
            pos = end

    def _chunk(self, buf, pos: int, messages: list) -> int | None:
        """Parse one chunk at ``pos``; its end, or None when it is not all there yet."""
        if pos >= len(buf):
            return None
        first = buf[pos]
        fmt, csid, p = first >> 6, first & 0x3F, pos + 1
        if csid in (0, 1):
            n = 1 if csid == 0 else 2
            if p + n > len(buf):
                return None
            csid = 64 + buf[p] + (buf[p + 1] * 256 if n == 2 else 0)
            p += n
        header = (11, 7, 3, 0)[fmt]
        if p + header > len(buf):
            return None
        state = self.streams.get(csid) or _ChunkStream()
        length, type_id, extended = state.length, state.type_id, state.extended
        if fmt < 3:
            extended = buf[p:p + 3] == b"\xff\xff\xff"
        if fmt < 2:
            length = int.from_bytes(buf[p + 3:p + 6], "big")
            type_id = buf[p + 6]
        p += header
        if extended:
            p += 4
        continuing = fmt == 3 and bool(state.payload)  # only a type 3 chunk continues a message
        take = min(self.chunk_size, length - len(state.payload) if continuing else length)
        if p + take > len(buf):
            return None
        # the whole chunk is here: commit
        self.streams[csid] = state
        if not continuing:
            state.payload.clear()
        state.length, state.type_id, state.extended = length, type_id, extended
        state.payload += buf[p:p + take]
        p += take
        if len(state.payload) >= length:
            payload = bytes(state.payload)
            state.payload.clear()
            if type_id == 1 and len(payload) >= 4:  # Set Chunk Size
                self.chunk_size = max(1, int.from_bytes(payload[:4], "big") & 0x7FFFFFFF)
            messages.append((type_id, payload))
        return p


def command(type_id: int, payload: bytes) -> list | None:
    """The AMF0 values of a command message (type 20, or 17 whose AMF3 wrapper starts with 0)."""
    if type_id == 17 and payload[:1] == b"\x00":
        payload = payload[1:]
    elif type_id != 20:
        return None
    try:
        return amf0_values(payload)
    except AMFError:
        return None


# -- the gate ----------------------------------------------------------------------------------

@dataclass
class Publisher:
    """One accepted RTMP connection: filled in as its commands arrive."""

    address: str
    app: str | None = None
    key: str | None = None
    stream: str | None = None  # the stream name, once ``publish`` was accepted
    backend_url: str = ""
    refused: str | None = None


class RtmpGate:
    """Accepts RTMP publishers on one port; see the module docstring.

    ``keys``: the keys that may publish (with their stream names); ``app``: the application name
    a publisher must use. ``open_session(publisher)`` is called in a new thread for every connection
    that sent data: it opens the FFmpeg listener at ``publisher.backend_url`` (which returns once
    an accepted publisher's stream is probed; ``publisher.stream`` is then its name) and runs
    the stream until it ends. ``is_live(name)`` says whether a stream of that name is
    being published now (a second publisher of it is refused).
    """

    def __init__(self, host: str, port: int, app: str, keys: dict[str, StreamKey],
                 open_session: Callable[[Publisher], None], is_live: Callable[[str], bool],
                 handshake_timeout_s: float = 10.0, backend_connect_s: float = 10.0) -> None:
        self.host, self.port, self.app, self.keys = host, port, app, keys
        self.open_session, self.is_live = open_session, is_live
        self.handshake_timeout_s, self.backend_connect_s = handshake_timeout_s, backend_connect_s
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._claimed: set[str] = set()  # streams whose publish was accepted, until their relay ends
        self._lock = threading.Lock()
        self.connections = 0
        self.refusals = 0

    def listen(self) -> None:
        self._sock = socket.create_server((self.host, self.port), backlog=64, reuse_port=False)
        self._sock.settimeout(0.5)

    def serve(self) -> None:
        """The accept loop (run it in a thread); ends after ``stop()``."""
        while not self._stop.is_set():
            try:
                client, addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(client, addr[0]), daemon=True,
                             name=f"rtmp-{addr[0]}:{addr[1]}").start()

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()

    # -- one connection ------------------------------------------------------------------------
    def _handle(self, client: socket.socket, address: str) -> None:
        pub = Publisher(address)
        backend = None
        try:
            client.settimeout(self.handshake_timeout_s)
            try:
                first = client.recv(_BUF)
            except OSError:  # idle past the handshake time, or reset
                log.info("rtmp %s:%d: %s sent nothing within %g s; closed", self.host, self.port, address,
                         self.handshake_timeout_s)
                return
            if not first:
                return
            with socket.socket() as probe:  # a free loopback port for this connection's FFmpeg listener
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            pub.backend_url = f"rtmp://127.0.0.1:{port}/{self.app or 'live'}/stream"
            threading.Thread(target=self.open_session, args=(pub,), daemon=True, name=f"rtmp-session-{port}").start()
            backend = self._connect_backend(port)
            if backend is None:
                log.error("rtmp %s:%d: the stream reader did not start; dropped %s", self.host, self.port, address)
                return
            self._relay(client, backend, first, pub)
        finally:
            for s in (client, backend):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
            if pub.stream is not None:
                with self._lock:
                    self._claimed.discard(pub.stream)

    def _connect_backend(self, port: int) -> socket.socket | None:
        import time

        end = time.monotonic() + self.backend_connect_s
        while time.monotonic() < end and not self._stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=1.0)
                s.settimeout(None)
                return s
            except OSError:
                time.sleep(0.02)
        return None

    def _relay(self, client: socket.socket, backend: socket.socket, first: bytes, pub: Publisher) -> None:
        back = threading.Thread(target=_copy, args=(backend, client), daemon=True, name="rtmp-relay-back")
        back.start()
        reader, buf = ChunkReader(), bytearray(first)
        try:
            while pub.stream is None:  # until an accepted publish: parse, check, then forward
                used, messages = reader.parse(buf)
                for type_id, payload in messages:
                    values = command(type_id, payload)
                    if values and not self._check(values, pub):
                        return
                backend.sendall(buf[:used])
                del buf[:used]
                if pub.stream is not None:
                    break
                data = client.recv(_BUF)
                if not data:
                    return
                buf += data
            backend.sendall(buf)
            client.settimeout(None)
            _copy(client, backend)
        except (OSError, AMFError) as exc:
            if pub.stream is None:
                log.info("rtmp %s:%d: %s dropped before publishing: %s", self.host, self.port, pub.address, exc)
        finally:
            try:
                backend.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            back.join(5)

    def _check(self, values: list, pub: Publisher) -> bool:
        """Look at one command; False (with a log line) refuses the publisher."""
        name = values[0] if isinstance(values[0], str) else None
        if name == "connect":
            obj = values[2] if len(values) > 2 and isinstance(values[2], dict) else {}
            pub.app = str(obj.get("app", "")).split("?")[0].strip("/")
            if self.app and pub.app != self.app:
                return self._refuse(pub, f"unknown app {pub.app!r} (expected {self.app!r})")
        elif name == "publish":
            key = values[3] if len(values) > 3 and isinstance(values[3], str) else ""
            pub.key = key.split("?")[0]
            entry = self.keys.get(pub.key)
            if entry is None:
                return self._refuse(pub, f"unknown stream key {masked(pub.key)}")
            if not entry.allows(pub.address):
                return self._refuse(pub, f"address not allowed to publish {entry.name!r}")
            with self._lock:
                if entry.name in self._claimed or self.is_live(entry.name):
                    return self._refuse(pub, f"stream {entry.name!r} is already being published")
                self._claimed.add(entry.name)
            pub.stream = entry.name
            log.info("rtmp %s:%d: %s publishes %r", self.host, self.port, pub.address, entry.name)
        return True

    def _refuse(self, pub: Publisher, why: str) -> bool:
        pub.refused = why
        self.refusals += 1
        log.warning("rtmp %s:%d: refused a publisher from %s: %s", self.host, self.port, pub.address, why)
        return False


def _copy(src: socket.socket, dst: socket.socket) -> None:
    """Copy bytes until ``src`` ends or either side fails; then end ``dst``'s sending side."""
    try:
        while data := src.recv(_BUF):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
