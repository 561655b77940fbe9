"""Which photographs the SR network may learn from, which it is measured on, and why.

Training may use only photographs from Debian's ``mate-backgrounds``, ``ukui-wallpapers`` and
``gnome-backgrounds`` packages and scikit-image's bundled sample photos. In Debian 12 the
``ukui-wallpapers`` and ``gnome-backgrounds`` packages hold only rendered art (gradients,
shapes, tiles, illustrations), none of it a photograph, so none of it is listed. Rendered art
teaches a network sharp synthetic edges and flat areas that camera video never has.

Held out, never trained on:

* the SR evaluation photos (:data:`EVAL_PHOTOS`, ten of them);
* the demo's photo (scikit-image's *astronaut*, also an evaluation photo);
* every photo the quality corpus films (``anchorsr.bench.corpus``: Wood, LadyBird,
  YellowFlower, Storm, Garden, TwoWings and Elephants of ``mate-backgrounds``);
* scikit-image's *motorcycle_right*, the other half of the stereo pair whose left view is an
  evaluation photo (nearly the same picture).

Each weight file's contract records :func:`records` of the photos it was trained on: name,
path, SHA-256 of the file and licence.
"""

from __future__ import annotations

import os

from ..envinfo import sha256_file

MATE_DIR = "/usr/share/backgrounds/mate"
MATE_LICENCE = "GPL-2+ (Debian mate-backgrounds; /usr/share/doc/mate-backgrounds/copyright)"
SKIMAGE_LICENCES = {  # from each sample's docstring in skimage.data
    "camera": "CC0 / public domain (skimage.data.camera)",
    "rocket": "public domain, NASA (skimage.data.rocket)",
    "brick": "CC0, Stefan van der Walt (skimage.data.brick)",
    "grass": "CC0, Stefan van der Walt (skimage.data.grass)",
    "gravel": "CC0, Stefan van der Walt (skimage.data.gravel)",
    "moon": "public domain (skimage.data.moon)",
    "coins": "public domain, Walters Art Museum (skimage.data.coins)",
    "hubble_deep_field": "public domain, NASA/ESA (skimage.data.hubble_deep_field)",
    "retina": "CC0 (skimage.data.retina)",
    "ihc": "public domain (skimage.data.immunohistochemistry)",
    "page": "BSD-3-Clause, scikit-image (skimage.data.page)",
    "text": "public domain (skimage.data.text)",
    "astronaut": "public domain, NASA (skimage.data.astronaut)",
    "coffee": "CC0, Rachel Michetti (skimage.data.coffee)",
    "chelsea": "CC0, Stefan van der Walt (skimage.data.chelsea)",
    "motorcycle_left": "Middlebury stereo data set, free for research (skimage.data.stereo_motorcycle)",
}

TRAIN_PHOTOS: tuple[str, ...] = (
    *(f"file:{MATE_DIR}/nature/{n}.jpg" for n in (
        "Aqua", "Blinds", "Dune", "FreshFlower", "GreenMeadow", "RainDrops")),
    *(f"skimage:{n}" for n in (
        "camera", "rocket", "brick", "grass", "gravel", "moon", "coins", "hubble_deep_field",
        "retina", "ihc", "page", "text")),
)
EVAL_PHOTOS: tuple[str, ...] = (
    "skimage:astronaut", "skimage:coffee", "skimage:chelsea", "skimage:motorcycle_left",
    *(f"file:{MATE_DIR}/nature/{n}.jpg" for n in (
        "Storm", "Wood", "LadyBird", "YellowFlower", "Garden", "TwoWings")),
)
NEVER_TRAIN: tuple[str, ...] = (  # held out besides EVAL_PHOTOS (see the module doc)
    "skimage:motorcycle_right",
    *(f"file:{MATE_DIR}/abstract/Elephants{s}.jpg" for s in ("", "_3840x2160", "_5640x3172")),
)


def skimage_file(stem: str) -> str:
    """Path of a photo bundled inside scikit-image's package (no download)."""
    import skimage

    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    for ext in (".png", ".jpg"):
        if os.path.isfile(os.path.join(folder, stem + ext)):
            return os.path.join(folder, stem + ext)
    return os.path.join(folder, stem + ".png")


def photo_path(name: str) -> str:
    """File path of a named photo ("skimage:NAME" or "file:PATH"); '' for an unknown kind."""
    kind, _, ref = name.partition(":")
    if kind == "skimage":
        try:
            return skimage_file(ref)
        except ImportError:
            return ""
    return ref if kind == "file" else ""


def photo_available(name: str) -> bool:
    path = photo_path(name)
    return bool(path) and os.path.isfile(path)


def licence(name: str) -> str:
    kind, _, ref = name.partition(":")
    if kind == "skimage":
        return SKIMAGE_LICENCES.get(ref, "see skimage.data")
    if ref.startswith(MATE_DIR):
        return MATE_LICENCE
    return "unknown (a file given by the user)"


def records(names) -> list[dict]:
    """name, path, SHA-256 and licence of every available photo in ``names``."""
    return [{"name": n, "path": photo_path(n), "sha256": sha256_file(photo_path(n)), "licence": licence(n)}
            for n in names if photo_available(n)]


def held_out(name: str) -> bool:
    """True for a photo that training must never see."""
    return name in EVAL_PHOTOS or name in NEVER_TRAIN
