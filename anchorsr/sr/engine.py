"""The numpy SR engine: the deployed plain network (``repsr-plain``) without torch.

``import torch`` alone costs 2.5-3.5 s of CPU on this project's machine, more than the whole
2 s start-up target of ``anchorsr enhance``. The shipped networks are small plain stacks (3x3
convolutions 1 -> C -> ... -> C -> s*s with ReLU between, pixel shuffle, plus a skip
upsampling: nearest, bicubic or a learnt 7x7 per-phase linear filter; ``nets.PlainSRNet``), so
numpy runs them at the speed torch does on this CPU (README, "Start-up"). The weights come
from the same safetensors file, read by ``safetensors.numpy``; the contract checks are
``contract.py``'s, shared with the torch engine.

How a 3x3 convolution runs here without an im2col copy of the activations: a group of patches
is zero-padded by one pixel and flattened, channels first, to (C, M) with M = G * (h+2) * (w+2).
Output pixel p is then ``sum_k W_k @ act[:, p + off_k]`` over the nine taps, off_k = dy*(w+2)
+ dx - (w+3), so the whole group is nine (C_out, C_in) @ (C_in, L) matrix products over
contiguous, shifted column ranges of one array (L = M - 2(w+3)), each added into the output.
Where numpy's BLAS is its bundled OpenBLAS, the products go straight to its ``cblas_sgemm``
with beta = 1, which adds them into the output in place (the strided views need no copy);
that took about a fifth less CPU than numpy's matmul into a buffer plus an add. Elsewhere the
engine falls back to numpy's matmul (the same function; a test runs both).
Positions that land on the padding ring come out as garbage and are zeroed after the ReLU, so
the next layer sees exact zero padding again. A group holds about 16k pixels so its buffers stay
in cache; the first layer (one input channel) is one (C, 9) @ (9, L) product over nine shifted
copies of the input row. Whole planes run in row bands with a halo of the receptive radius.
Measured against torch on the shipped x2/x3/x4 weights: within 1e-6 (Y/255 units).

BLAS threads: OpenBLAS' own threading made these small products several times slower on a
busy 2-core machine, so every call sets the calling thread's OpenBLAS threads to one for its
duration (``openblas_set_num_threads_local``, a per-thread setting) and ``threads`` > 1 runs
groups on that many Python threads instead (matrix products and large ufuncs release the GIL).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .contract import (LINEAR_SKIP_PX, PLAIN_ARCH, SKIPS, SRModel, default_path, read_contract, read_tensors,
                       tensor_mismatch)
from .resample import BICUBIC_RADIUS_PX, bicubic_planes_np

log = logging.getLogger(__name__)

GROUP_PX = 16384  # padded pixels per group of patches (buffers of C * GROUP_PX floats stay in cache)
BAND_PX = 65536  # a plane larger than this runs in row bands of about this many pixels


# cblas_sgemm of an ILP64 OpenBLAS (numpy's wheels bundle one with these suffixed names)
_SGEMM_NAMES = ("scipy_cblas_sgemm64_", "cblas_sgemm64_")
_ROW_MAJOR, _NO_TRANS = 101, 111


@lru_cache(maxsize=1)
def _openblas() -> tuple:
    """(set_threads_local, sgemm): OpenBLAS' per-thread ``openblas_set_num_threads_local`` and its
    64-bit-index ``cblas_sgemm``, from the OpenBLAS numpy has loaded; each None where not found
    (another BLAS: then BLAS keeps its own threading and the convolutions use numpy's matmul)."""
    set_local = sgemm = None
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({line.split()[-1] for line in fh
                            if "openblas" in line.lower() and line.split()[-1].startswith("/")})
    except OSError:
        paths = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if set_local is None and hasattr(lib, "openblas_set_num_threads_local"):
            set_local = lib.openblas_set_num_threads_local
            set_local.argtypes, set_local.restype = [ctypes.c_int], ctypes.c_int
        for name in _SGEMM_NAMES:
            if sgemm is None and hasattr(lib, name):
                sgemm = getattr(lib, name)
                i, i64, f, p = ctypes.c_int, ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
                sgemm.argtypes = [i, i, i, i64, i64, i64, f, p, i64, p, i64, f, p, i64]
                sgemm.restype = None
    if set_local is None or sgemm is None:
        log.debug("OpenBLAS per-thread setting %s, sgemm %s", set_local is not None, sgemm is not None)
    return set_local, sgemm


def edge_pad(x: np.ndarray, r: int) -> np.ndarray:
    """float32 (G, h, w) padded by ``r`` on both sides of the last two axes, edges replicated
    (``np.pad(mode="edge")`` without its per-call overhead, which showed in profiles)."""
    g, h, w = x.shape
    out = np.empty((g, h + 2 * r, w + 2 * r), np.float32)
    out[:, r:r + h, r:r + w] = x
    out[:, r:r + h, :r] = x[:, :, :1]
    out[:, r:r + h, r + w:] = x[:, :, -1:]
    out[:, :r] = out[:, r:r + 1]
    out[:, r + h:] = out[:, r + h - 1:r + h]
    return out


def _zero_ring(act: np.ndarray, groups: int, hp: int, wp: int) -> None:
    """Zero the one-pixel padding ring of every patch of a (C, G*hp*wp) activation."""
    v = act.reshape(act.shape[0], groups, hp, wp)
    v[:, :, 0] = 0
    v[:, :, -1] = 0
    v[:, :, :, 0] = 0
    v[:, :, :, -1] = 0


class NumpyPlainNet:
    """``nets.PlainSRNet``'s function in numpy float32.

    Maps float32 (N, 1, h, w) Y/255 to (N, 1, scale*h, scale*w), as the torch network does.
    tensors: the network's ``state_dict`` as numpy arrays (what ``save_model`` writes).
    threads: Python threads the groups of a call are spread over (each with one BLAS thread).
    """

    engine = "numpy"

    def __init__(self, scale: int, channels: int, body: int, skip: str, tensors: dict[str, np.ndarray],
                 threads: int = 1):
        self.scale, self.channels, self.body, self.skip = scale, channels, body, skip
        self.threads = threads
        self.use_sgemm = True  # OpenBLAS' sgemm accumulating in place where found (False: numpy only)
        widths = [1] + [channels] * (body + 1) + [scale * scale]
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []  # (9, cout, cin) taps, (cout, 1) bias
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            w = np.asarray(tensors[f"convs.{i}.weight"], np.float32)
            b = np.asarray(tensors[f"convs.{i}.bias"], np.float32)
            self.layers.append((np.ascontiguousarray(w.transpose(2, 3, 0, 1).reshape(9, cout, cin)),
                                np.ascontiguousarray(b.reshape(cout, 1))))
        # addresses of every (cout, cin) tap matrix, for OpenBLAS' sgemm (the arrays live in self)
        self.tap_ptrs = [[int(taps[k].ctypes.data) for k in range(9)] for taps, _ in self.layers]
        # first layer: one input channel, so its nine taps are one (cout, 9) matrix
        self.first = np.ascontiguousarray(self.layers[0][0][:, :, 0].T)
        if skip == "linear":
            k = LINEAR_SKIP_PX
            self.skip_weight = np.ascontiguousarray(
                np.asarray(tensors["skip_path.weight"], np.float32).reshape(scale * scale, k * k))
            self.skip_bias = np.asarray(tensors["skip_path.bias"], np.float32).reshape(-1, 1, 1, 1)
            # per kernel row dy: the (s*s, 7) weights of its seven taps
            self.skip_rows = np.ascontiguousarray(self.skip_weight.reshape(-1, k, k).transpose(1, 0, 2))
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @property
    def receptive_radius(self) -> int:
        skip_radius = {"nearest": 0, "bicubic": BICUBIC_RADIUS_PX, "linear": LINEAR_SKIP_PX // 2}[self.skip]
        return max(len(self.layers), skip_radius)

    # -- one group of same-sized images ----------------------------------------------------------
    def _body(self, x: np.ndarray) -> np.ndarray:
        """float32 (G, h, w) -> the last conv's output (s*s, G, h, w), before the shuffle."""
        g, h, w = x.shape
        hp, wp = h + 2, w + 2
        m = g * hp * wp
        a = wp + 1  # the first and last a positions are padding whatever the taps read
        n = m - 2 * a
        offsets = [dy * wp + dx for dy in range(3) for dx in range(3)]
        padded = np.zeros((g, hp, wp), np.float32)
        padded[:, 1:-1, 1:-1] = x
        flat = padded.reshape(m)
        cols = np.empty((9, n), np.float32)
        for k, off in enumerate(offsets):
            cols[k] = flat[off:off + n]
        cout = self.first.shape[0]
        act = np.empty((cout, m), np.float32)
        act[:, :a] = 0
        act[:, a + n:] = 0
        np.matmul(self.first, cols, out=act[:, a:a + n])
        act[:, a:a + n] += self.layers[0][1]
        sgemm = _openblas()[1] if self.use_sgemm else None
        tmp = None if sgemm else np.empty((max(t.shape[1] for t, _ in self.layers), n), np.float32)
        for (taps, bias), ptrs in zip(self.layers[1:], self.tap_ptrs[1:]):
            np.maximum(act, 0, out=act)
            _zero_ring(act, g, hp, wp)
            cout, cin = taps.shape[1], taps.shape[2]
            nxt = np.empty((cout, m), np.float32)
            nxt[:, :a] = 0
            nxt[:, a + n:] = 0
            dst = nxt[:, a:a + n]
            if sgemm is not None:  # accumulate in place: dst += taps[k] @ act[:, off:off + n]
                dst[...] = bias
                base, dst_ptr = act.ctypes.data, nxt.ctypes.data + 4 * a
                for ptr, off in zip(ptrs, offsets):
                    sgemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, cout, n, cin, 1.0, ptr, cin, base + 4 * off, m, 1.0,
                          dst_ptr, m)
            else:
                t = tmp[:cout]
                np.matmul(taps[0], act[:, 0:n], out=dst)
                for k in range(1, 9):
                    off = offsets[k]
                    np.matmul(taps[k], act[:, off:off + n], out=t)
                    dst += t
                dst += bias
            act = nxt
        return act.reshape(-1, g, hp, wp)[:, :, 1:-1, 1:-1]

    def _linear_skip(self, x: np.ndarray) -> np.ndarray:
        """float32 (G, h, w) -> (s*s, G, h, w): the learnt per-phase filter on the edge-replicated
        input (``nets.Skip`` "linear"), before the shuffle.

        Seven shifted copies of the flat padded input (one per dx) serve all 49 taps: the rows
        of tap (dy, dx) are copy dx from dy*(w+6) on, a strided view that OpenBLAS' sgemm reads
        in place (numpy's matmul needs the 49-row copy instead)."""
        g, h, w = x.shape
        k = LINEAR_SKIP_PX
        r = k // 2
        hp, wp = h + 2 * r, w + 2 * r
        m = g * hp * wp
        a = r * wp + r
        n = m - 2 * a
        flat = edge_pad(x, r).reshape(m)
        ss = self.skip_weight.shape[0]
        out = np.empty((ss, m), np.float32)
        sgemm = _openblas()[1] if self.use_sgemm else None
        if sgemm is not None:
            span = n + (k - 1) * wp
            cols = np.empty((k, span), np.float32)
            for dx in range(k):
                cols[dx] = flat[dx:dx + span]
            out[:, a:a + n] = self.skip_bias.reshape(ss, 1)
            cols_ptr, out_ptr, rows_ptr = cols.ctypes.data, out.ctypes.data + 4 * a, self.skip_rows.ctypes.data
            for dy in range(k):
                sgemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, ss, n, k, 1.0, rows_ptr + 4 * dy * ss * k, k,
                      cols_ptr + 4 * dy * wp, span, 1.0, out_ptr, m)
            return out.reshape(ss, g, hp, wp)[:, :, r:-r, r:-r]
        cols = np.empty((k * k, n), np.float32)
        for i in range(k * k):
            off = (i // k) * wp + i % k
            cols[i] = flat[off:off + n]
        np.matmul(self.skip_weight, cols, out=out[:, a:a + n])
        out = out.reshape(ss, g, hp, wp)[:, :, r:-r, r:-r]
        return out + self.skip_bias

    def _group(self, x: np.ndarray) -> np.ndarray:
        """float32 (G, h, w) -> (G, s*h, s*w): the network, the skip added in the same pass as
        the pixel shuffle (written through a transposed view of the output)."""
        set_local = _openblas()[0]
        previous = set_local(1) if set_local is not None else None  # this thread's BLAS: one thread
        try:
            return self._group_one_thread(x)
        finally:
            if previous is not None:
                set_local(previous)

    def _group_one_thread(self, x: np.ndarray) -> np.ndarray:
        s = self.scale
        g, h, w = x.shape
        y = self._body(x).reshape(s, s, g, h, w)  # [p, q, G, i, j]: sub-pixel (p, q) of LR pixel (i, j)
        out = np.empty((g, h, s, w, s), np.float32)
        shuffled = out.transpose(2, 4, 0, 1, 3)  # the same [p, q, G, i, j] order over HR pixel (s*i+p, s*j+q)
        if self.skip == "nearest":
            np.add(y, x, out=shuffled)
        elif self.skip == "linear":
            np.add(y, self._linear_skip(x).reshape(s, s, g, h, w), out=shuffled)
        else:
            np.copyto(shuffled, y)
        out = out.reshape(g, s * h, s * w)
        if self.skip == "bicubic":
            out += bicubic_planes_np(x, s)
        return out

    # -- batches and planes ----------------------------------------------------------------------
    def _map(self, fn, items: list) -> list:
        if self.threads <= 1 or len(items) <= 1:
            return [fn(i) for i in items]
        with self._pool_lock:
            if self._pool is None or self._pool._max_workers != self.threads:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="sr-numpy")
            pool = self._pool
        return list(pool.map(fn, items))

    def _bands(self, plane: np.ndarray) -> list[tuple[int, int, int, int]]:
        """(in0, in1, out0, out1): row bands of a large plane, each read with a halo of the
        receptive radius (cut off afterwards), so the bands join exactly."""
        h, w = plane.shape
        rows = max(1, BAND_PX // max(w, 1))
        halo = self.receptive_radius
        return [(max(r0 - halo, 0), min(r0 + rows + halo, h), r0, min(r0 + rows, h)) for r0 in range(0, h, rows)]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, 1, h, w) Y/255 -> (N, 1, s*h, s*w), not clamped."""
        x = np.asarray(x, np.float32)
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected (N, 1, h, w) luma, got shape {x.shape}")
        n, _, h, w = x.shape
        s = self.scale
        out = np.empty((n, 1, s * h, s * w), np.float32)
        if h * w > BAND_PX:
            jobs = [(i, band) for i in range(n) for band in self._bands(x[i, 0])]

            def run_band(job):
                i, (in0, in1, out0, out1) = job
                hr = self._group(x[i, :, in0:in1])[0]
                out[i, 0, s * out0:s * out1] = hr[s * (out0 - in0):s * (out1 - in0)]

            self._map(run_band, jobs)
            return out
        per = max(1, GROUP_PX // ((h + 2) * (w + 2)))

        def run_group(i0):
            out[i0:i0 + per, 0] = self._group(x[i0:i0 + per, 0])

        self._map(run_group, list(range(0, n, per)))
        return out


def _plain_fields(path: Path, contract: dict) -> tuple[int, int, str]:
    """(channels, body, skip) of a repsr-plain contract, with the torch engine's messages."""
    arch = contract.get("arch")
    if arch != PLAIN_ARCH:
        raise ModelError(f"SR model {path}: the numpy SR engine runs {PLAIN_ARCH} networks, its contract "
                         f"says arch {arch!r}; expected --sr-engine torch (or auto) for it")
    fields = ("channels", "body", "skip")
    contract = {"skip": "nearest", **contract}
    missing = [f for f in fields if f not in contract]
    if missing:
        raise ModelError(f"contract of arch {arch!r} must give {', '.join(fields)}; missing {', '.join(missing)}")
    try:
        channels, body, skip = int(contract["channels"]), int(contract["body"]), str(contract["skip"])
        if skip not in SKIPS:
            raise ValueError(f"skip must be one of {SKIPS}, got {skip!r}")
        if channels < 1 or body < 0:
            raise ValueError(f"expected channels >= 1 and body >= 0, got {channels} and {body}")
    except (TypeError, ValueError) as exc:
        raise ModelError(f"contract of arch {arch!r}: invalid fields ({exc})") from None
    return channels, body, skip


def expected_shapes(scale: int, channels: int, body: int, skip: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of ``nets.PlainSRNet(scale, channels, body, skip)``'s state_dict."""
    widths = [1] + [channels] * (body + 1) + [scale * scale]
    shapes = {}
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
        shapes[f"convs.{i}.weight"] = (cout, cin, 3, 3)
        shapes[f"convs.{i}.bias"] = (cout,)
    if skip == "linear":
        shapes["skip_path.weight"] = (scale * scale, 1, LINEAR_SKIP_PX, LINEAR_SKIP_PX)
        shapes["skip_path.bias"] = (scale * scale,)
    return shapes


def load_numpy_model(scale: int, path: str | Path | None = None, contract: dict | None = None,
                     threads: int = 1) -> SRModel:
    """Load a repsr-plain model (the shipped default for ``scale``, or the file at ``path``) for
    the numpy engine. ``contract``: already read by ``contract.read_contract`` (else read here).

    Raises ModelError as ``model.load_model`` does (missing or unreadable file or contract,
    another scale, tensors that do not match), and for an architecture this engine does not run.
    """
    if contract is None:
        path, contract = read_contract(scale, path)
    path = default_path(scale) if path is None else Path(path)
    channels, body, skip = _plain_fields(path, contract)
    tensors = read_tensors(path, "numpy")
    want = expected_shapes(scale, channels, body, skip)
    missing = [k for k in want if k not in tensors]
    unexpected = [k for k in tensors if k not in want]
    wrong = [f"{k} has shape {tuple(tensors[k].shape)}, expected {shape}"
             for k, shape in want.items() if k in tensors and tuple(tensors[k].shape) != shape]
    if missing or unexpected or wrong:
        detail = "; ".join(filter(None, [missing and "missing " + ", ".join(missing),
                                         unexpected and "unexpected " + ", ".join(unexpected), *wrong[:2]]))
        raise tensor_mismatch(path, contract, scale, detail)
    net = NumpyPlainNet(scale, channels, body, skip, tensors, threads=threads)
    return SRModel(net, scale, contract)
