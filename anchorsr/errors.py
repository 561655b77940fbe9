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


def interrupt_in(exc: BaseException) -> bool:
    """True when ``exc`` is, or was raised while handling, a KeyboardInterrupt.

    A stop signal is raised as KeyboardInterrupt in the main thread (``anchorsr.cli``). When it
    lands inside a Python callback of a compiled library (numba loading a cached kernel, for
    one), the library reports it as its own error (a ``SystemError``) with the interrupt as the
    cause; the run must still be finalised as interrupted, not aborted as failed.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
