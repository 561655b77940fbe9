"""One error hierarchy for anchorsr.

Every error the package raises on purpose derives from :class:`AnchorsrError`, and also from the
built-in exception a caller would naturally catch (``ValueError``, ``OSError``, ...), the way
PyAV's errors do. Messages name what was expected and what was received; the CLI prints them on
one line and exits non-zero.
"""

from __future__ import annotations


class AnchorsrError(Exception):
    """Root of all anchorsr errors."""


class SourceError(AnchorsrError, OSError):
    """An input could not be opened or read (missing file, unreachable URL, I/O failure)."""


class InvalidMediaError(AnchorsrError, ValueError):
    """The input opened but is not a decodable video (not video, empty, truncated, corrupt)."""


class UnsupportedStreamError(AnchorsrError, ValueError):
    """The video cannot be used as it is (e.g. B-frames with ``--no-transcode``)."""


class ConfigError(AnchorsrError, ValueError):
    """Impossible or inconsistent options."""


class PlanFormatError(AnchorsrError, ValueError):
    """Bytes that do not hold a valid serialised anchor plan."""


class ModelError(AnchorsrError, OSError):
    """An SR model file is missing, unreadable, or does not match its contract."""


class SinkError(AnchorsrError, OSError):
    """An output could not be written."""
