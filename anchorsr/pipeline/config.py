"""``anchorsr serve --config FILE``: the server's settings in a TOML file.

Keys are the long command-line options without their dashes (``-`` or ``_`` alike); a flag given
on the command line overrides the file. Listeners are a list of ``[NAME=]URL`` strings or a table
of NAME = URL::

    out = "hls"
    host = "0.0.0.0"
    port = 8080
    budget = "5%"
    retention = 10

    [listen]
    rtmp = "rtmp://0.0.0.0:1935/live"
    studio = "tcp://0.0.0.0:9000"

    [keys]  # RTMP stream keys: NAME = "KEY" publishes rtmp://HOST:1935/live/KEY as stream NAME
    cam = "k3y-for-the-camera"
    stage = { key = "an0ther-key", allow = ["192.168.1.0/24"] }  # and only from these addresses
"""

from __future__ import annotations

import ipaddress
import re
import tomllib

from ..errors import ConfigError
from ..types import LR_MODELS

# key -> (argparse dest, accepted TOML types, description of the expected value)
SERVE_KEYS: dict[str, tuple[str, tuple[type, ...], str]] = {
    "listen": ("config_listen", (list, dict), "a list of [NAME=]URL strings or a table of NAME = URL"),
    "out": ("out", (str,), "a folder"),
    "host": ("host", (str,), "an address"),
    "port": ("port", (int,), "a port number"),
    "retention": ("retention", (int,), "a number of sessions (0: keep all)"),
    "budget": ("budget", (str, int, float), "a share such as \"5%\" or 0.05"),
    "sr-workers": ("sr_workers", (int,), "a positive integer"),
    "read-timeout": ("read_timeout", (int, float), "seconds"),
    "reconnect-grace": ("reconnect_grace", (int, float), "seconds (0: a reconnecting publisher starts a new session)"),
    "model": ("model", (str,), "'default', 'bicubic' or a .safetensors file"),
    "scale": ("scale", (int,), "2, 3 or 4"),
    "scheduler": ("scheduler", (str,), "a scheduler name"),
    "chunk-frames": ("chunk_frames", (int,), "a positive integer"),
    "patch-px": ("patch_px", (int, str), "\"auto\" or an even number of pixels >= 2"),
    "crf": ("crf", (int, float), "an x264 CRF"),
    "preset": ("preset", (str,), "an x264 preset"),
    "segment-seconds": ("segment_seconds", (int, float), "seconds"),
    "max-latency": ("max_latency", (int, float), "seconds"),
    "no-transcode": ("no_transcode", (bool,), "true or false"),
    "no-gate": ("no_gate", (bool,), "true or false"),
    "no-light": ("no_light", (bool,), "true or false"),
    "lr-model": ("lr_model", (str,), "bicubic or box"),
    "anchor-weight": ("anchor_weight", (int, float), "a weight above 0 and at most 1"),
    "device": ("device", (str,), "cpu or cuda"),
    "keys": ("keys", (dict,), "a table of NAME = \"KEY\" or NAME = { key = \"KEY\", allow = [ADDRESSES] }"),
    "ffmpeg": ("ffmpeg", (str,), "the ffmpeg program that relays SRT"),
    "ray": ("ray", (str,), "local, auto or HOST:PORT of a Ray head node"),
    "ray-cpus-per-stream": ("ray_cpus_per_stream", (int, float), "CPUs (> 0)"),
    "ray-sr-workers": ("ray_sr_workers", (int,), "a number of SR worker actors (0: SR in each stream's actor)"),
    "sr-engine": ("sr_engine", (str,), "auto, numpy or torch"),
}
_KEY = re.compile(r"^[\x21-\x7e]{1,256}$")
_POSITIVE = {"ray_cpus_per_stream", "sr_workers", "read_timeout", "chunk_frames", "segment_seconds", "max_latency"}


def load_serve_config(path: str) -> dict:
    """argparse defaults (dest -> value) from a TOML file; one-line ConfigError on any problem."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path!r}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path!r} is not valid TOML: {exc}") from None
    data = data.get("serve", data) if set(data) == {"serve"} else data
    out = {}
    for key, value in data.items():
        spec = SERVE_KEYS.get(key.replace("_", "-"))
        if spec is None:
            raise ConfigError(f"unknown key {key!r} in config file {path!r}; expected one of: "
                              + ", ".join(SERVE_KEYS))
        dest, types, expected = spec
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ConfigError(f"config key {key!r} in {path!r}: expected {expected}, got {value!r}")
        if dest in _POSITIVE and not value > 0 or dest in ("retention", "reconnect_grace", "ray_sr_workers") and value < 0 \
                or dest == "port" and not 0 <= value < 65536 or dest == "scale" and value not in (2, 3, 4) \
                or dest == "anchor_weight" and not 0 < value <= 1:
            raise ConfigError(f"config key {key!r} in {path!r}: expected {expected}, got {value!r}")
        if dest == "scheduler":
            from ..schedule import available_schedulers

            if value not in available_schedulers():
                raise ConfigError(f"config key {key!r} in {path!r}: expected one of "
                                  f"{', '.join(available_schedulers())}, got {value!r}")
        if dest == "lr_model" and value not in LR_MODELS:
            raise ConfigError(f"config key {key!r} in {path!r}: expected {expected}, got {value!r}")
        if dest == "config_listen":
            value = _listeners(value, path)
        elif dest == "keys":
            value = _keys(value, path)
        elif dest == "budget":
            value = str(value)
        elif dest == "patch_px":
            value = _patch_size(value, key, path, expected)
        out[dest] = value
    return out


def _patch_size(value: int | str, key: str, path: str, expected: str) -> int | None:
    """``patch-px``: "auto" (None: the default for each frame size) or an even pixel count."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    if isinstance(value, str) or value < 2 or value % 2:
        raise ConfigError(f"config key {key!r} in {path!r}: expected {expected}, got {value!r}")
    return value


def _listeners(value, path: str) -> list[str]:
    items = [f"{k}={v}" for k, v in value.items()] if isinstance(value, dict) else value
    if not items or not all(isinstance(v, str) for v in items):
        raise ConfigError(f"config key 'listen' in {path!r}: expected a list of [NAME=]URL strings or a table "
                          f"of NAME = URL, got {value!r}")
    return items


def _keys(table: dict, path: str) -> tuple:
    """The [keys] table as StreamKey entries; every problem is one ConfigError line."""
    from .rtmp import StreamKey
    from .serve import check_stream_name

    keys, seen = [], set()
    for name, entry in table.items():
        where = f"keys.{name} in {path!r}"
        check_stream_name(name, where)
        if isinstance(entry, str):
            entry = {"key": entry}
        if not isinstance(entry, dict) or set(entry) - {"key", "allow"} or not isinstance(entry.get("key"), str):
            raise ConfigError(f"config key {where}: expected \"KEY\" or {{ key = \"KEY\", allow = [ADDRESSES] }}, "
                              f"got {entry!r}")
        key = entry["key"]
        if not _KEY.match(key) or "/" in key or "?" in key:
            raise ConfigError(f"config key {where}: expected a key of 1 to 256 printable characters without "
                              f"spaces, '/' or '?'")
        if key in seen:
            raise ConfigError(f"config key {where}: the same key is given to two streams")
        seen.add(key)
        allow = entry.get("allow", [])
        if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
            raise ConfigError(f"config key {where}: expected allow = a list of addresses or networks, got {allow!r}")
        try:
            nets = tuple(ipaddress.ip_network(a, strict=False) for a in allow)
        except ValueError as exc:
            raise ConfigError(f"config key {where}: {exc}") from None
        keys.append(StreamKey(name, key, nets))
    return tuple(keys)
