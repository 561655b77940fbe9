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
    cam = "rtmp://0.0.0.0:1935/live/cam"
    studio = "tcp://0.0.0.0:9000"
"""

from __future__ import annotations

import tomllib

from ..errors import ConfigError

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
    "model": ("model", (str,), "'default', 'bicubic' or a .safetensors file"),
    "scale": ("scale", (int,), "2, 3 or 4"),
    "scheduler": ("scheduler", (str,), "a scheduler name"),
    "chunk-frames": ("chunk_frames", (int,), "a positive integer"),
    "patch-px": ("patch_px", (int,), "a positive even integer"),
    "crf": ("crf", (int, float), "an x264 CRF"),
    "preset": ("preset", (str,), "an x264 preset"),
    "segment-seconds": ("segment_seconds", (int, float), "seconds"),
    "max-latency": ("max_latency", (int, float), "seconds"),
    "no-transcode": ("no_transcode", (bool,), "true or false"),
    "device": ("device", (str,), "cpu or cuda"),
    "sr-engine": ("sr_engine", (str,), "auto, numpy or torch"),
}
_POSITIVE = {"sr_workers", "read_timeout", "chunk_frames", "patch_px", "segment_seconds", "max_latency"}


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
        if dest in _POSITIVE and not value > 0 or dest == "retention" and value < 0 \
                or dest == "port" and not 0 <= value < 65536 or dest == "scale" and value not in (2, 3, 4):
            raise ConfigError(f"config key {key!r} in {path!r}: expected {expected}, got {value!r}")
        if dest == "scheduler":
            from ..schedule import available_schedulers

            if value not in available_schedulers():
                raise ConfigError(f"config key {key!r} in {path!r}: expected one of "
                                  f"{', '.join(available_schedulers())}, got {value!r}")
        if dest == "config_listen":
            value = _listeners(value, path)
        elif dest == "budget":
            value = str(value)
        out[dest] = value
    return out


def _listeners(value, path: str) -> list[str]:
    items = [f"{k}={v}" for k, v in value.items()] if isinstance(value, dict) else value
    if not items or not all(isinstance(v, str) for v in items):
        raise ConfigError(f"config key 'listen' in {path!r}: expected a list of [NAME=]URL strings or a table "
                          f"of NAME = URL, got {value!r}")
    return items
