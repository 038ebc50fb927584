"""Synthetic photos: deterministic, learnable, and not trivially so.

Each class maps to an object kind: a shape (star, ring, cross, ...) filled with a pattern
(solid, stripes, dots, checks). A photo draws that object at a random scale, position,
rotation and colour over a random background (gradient, clutter, noise), partly occluded.
Colours are drawn afresh for every photo, so the mean colour of a photo says nothing about its
class; a classifier has to see shape and texture, as with real photos.

The same (seed, class, index) always gives the same scene, at any size: every random choice
is made in unit coordinates before anything is drawn.

    >>> from photoclass.sim.corpus import render_photo
    >>> render_photo("owl", 7, 256, classes=("cat", "owl")).size   # doctest: +SKIP
    (256, 171)
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from photoclass.sim.tables import LICENSES, SIZES

# ----------------------------------------------------------------------------------------------
# Object kinds: a shape mask and a fill pattern

Point = tuple[float, float]
# A mask is drawn as a list of steps in unit coordinates ([-1, 1] on both axes):
# ("poly", points, value) or ("ellipse", (x0, y0, x1, y1), value); value 0 cuts a hole.
Step = tuple[str, Sequence[Point] | tuple[float, float, float, float], int]


def _regular(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> list[Point]:
    return [
        (radius * math.cos(phase + 2 * math.pi * k / n), radius * math.sin(phase + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _star() -> list[Point]:
    outer, inner = _regular(5), _regular(5, 0.42, -math.pi / 2 + math.pi / 5)
    return [p for pair in zip(outer, inner, strict=True) for p in pair]


def _heart() -> list[Point]:
    ts = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    xs = 16 * np.sin(ts) ** 3 / 17
    ys = -(13 * np.cos(ts) - 5 * np.cos(2 * ts) - 2 * np.cos(3 * ts) - np.cos(4 * ts)) / 17
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


SHAPES: dict[str, list[Step]] = {
    "disc": [("ellipse", (-1, -1, 1, 1), 255)],
    "ring": [("ellipse", (-1, -1, 1, 1), 255), ("ellipse", (-0.55, -0.55, 0.55, 0.55), 0)],
    "star": [("poly", _star(), 255)],
    "cross": [
        ("poly", [(-1, -0.3), (1, -0.3), (1, 0.3), (-1, 0.3)], 255),
        ("poly", [(-0.3, -1), (0.3, -1), (0.3, 1), (-0.3, 1)], 255),
    ],
    "crescent": [("ellipse", (-1, -1, 1, 1), 255), ("ellipse", (-0.45, -1.05, 1.25, 0.65), 0)],
    "triangle": [("poly", [(0, -1), (0.95, 0.8), (-0.95, 0.8)], 255)],
    "frame": [
        ("poly", [(-1, -1), (1, -1), (1, 1), (-1, 1)], 255),
        ("poly", [(-0.55, -0.55), (0.55, -0.55), (0.55, 0.55), (-0.55, 0.55)], 0),
    ],
    "hexagon": [("poly", _regular(6), 255)],
    "arrow": [
        ("poly", [(-1, -0.25), (0.1, -0.25), (0.1, -0.7), (1, 0), (0.1, 0.7), (0.1, 0.25), (-1, 0.25)], 255)
    ],
    "heart": [("poly", _heart(), 255)],
    "diamond": [("poly", [(0, -1), (0.6, 0), (0, 1), (-0.6, 0)], 255)],
    "bars": [
        ("poly", [(-1, -0.8), (1, -0.8), (1, -0.25), (-1, -0.25)], 255),
        ("poly", [(-1, 0.25), (1, 0.25), (1, 0.8), (-1, 0.8)], 255),
    ],
}
PATTERNS = ("solid", "stripes", "dots", "checks")
KINDS: tuple[tuple[str, str], ...] = tuple((s, p) for p in PATTERNS for s in SHAPES)


def _class_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def object_kind(class_name: str, classes: Sequence[str] = ()) -> tuple[str, str]:
    """The (shape, pattern) drawn for a class.

    Each class hashes to a kind; within `classes` collisions are resolved by probing in sorted
    order, so a set of up to 48 classes always gets distinct kinds whatever order it is given in.
    """
    taken: dict[str, int] = {}
    for name in sorted({*classes, class_name}):
        slot = _class_key(name) % len(KINDS)
        if len(classes) <= len(KINDS):
            while slot in taken.values():
                slot = (slot + 1) % len(KINDS)
        taken[name] = slot
    return KINDS[taken[class_name]]


# ----------------------------------------------------------------------------------------------
# Scenes: every random choice for one photo, in unit coordinates


ASPECTS = (4 / 3, 3 / 2, 1.0, 3 / 4, 2 / 3, 16 / 9)  # width / height, as cameras shoot


def photo_rng(seed: int, class_name: str, index: int, stream: int) -> np.random.Generator:
    """Independent random streams per photo: 0 = scene, 1 = aspect ratio, 2 = pixel noise."""
    return np.random.default_rng([seed, _class_key(class_name), index, stream])


def photo_aspect(class_name: str, index: int, seed: int = 0) -> float:
    return ASPECTS[int(photo_rng(seed, class_name, index, 1).integers(len(ASPECTS)))]


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))  # type: ignore[return-value]


@dataclass(frozen=True)
class Scene:
    kind: tuple[str, str]
    aspect: float
    background: tuple[tuple[int, int, int], tuple[int, int, int], float]  # colours, angle
    clutter: list[tuple[str, tuple[float, float, float, float], tuple[int, int, int], bool]]
    centre: tuple[float, float]  # unit coordinates of the image, 0..1
    radius: float  # fraction of the shorter side
    angle: float  # degrees
    colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    pattern_period: float  # fraction of the object's radius
    pattern_angle: float
    occluder: tuple[str, tuple[float, float, float, float], tuple[int, int, int]]
    noise: float
    blur: float
    quality: int


def make_scene(class_name: str, index: int, *, classes: Sequence[str] = (), seed: int = 0) -> Scene:
    rng = photo_rng(seed, class_name, index, 0)
    clutter = []
    for _ in range(int(rng.integers(4, 14))):
        x, y = rng.random(2)
        w, h = rng.uniform(0.03, 0.25, 2)
        shape = str(rng.choice(["ellipse", "rectangle", "line"]))
        clutter.append((shape, (x, y, x + w, y + h), _colour(rng), bool(rng.random() < 0.3)))
    cx, cy = rng.uniform(0.3, 0.7, 2)
    radius = float(rng.uniform(0.18, 0.4))
    ox, oy = cx + rng.uniform(-1, 1) * radius, cy + rng.uniform(-1, 1) * radius
    osize = rng.uniform(0.1, 0.25, 2) * radius * 2
    return Scene(
        kind=object_kind(class_name, classes),
        aspect=photo_aspect(class_name, index, seed),
        background=(_colour(rng), _colour(rng), float(rng.uniform(0, 2 * math.pi))),
        clutter=clutter,
        centre=(float(cx), float(cy)),
        radius=radius,
        angle=float(rng.uniform(0, 360)),
        colours=(_colour(rng), _colour(rng)),
        pattern_period=float(rng.uniform(0.22, 0.4)),
        pattern_angle=float(rng.uniform(0, math.pi)),
        occluder=(
            str(rng.choice(["ellipse", "rectangle"])),
            (float(ox), float(oy), float(ox + osize[0]), float(oy + osize[1])),
            _colour(rng),
        ),
        noise=float(rng.uniform(3, 14)),
        blur=float(rng.choice([0.0, 0.0, 0.6, 1.2])),
        quality=int(rng.integers(80, 94)),
    )


# ----------------------------------------------------------------------------------------------
# Drawing


def _dimensions(aspect: float, size: int) -> tuple[int, int]:
    """Width and height whose longest side is `size`, as Flickr's size suffixes promise."""
    if aspect >= 1:
        return size, max(1, round(size / aspect))
    return max(1, round(size * aspect)), size


def _background(width: int, height: int, scene: Scene) -> Image.Image:
    """A linear gradient between two colours; drawn small and upscaled, since it is smooth."""
    c0, c1, theta = scene.background
    w, h = max(2, width // 8), max(2, height // 8)
    t = np.linspace(0, 1, w)[None, :] * math.cos(theta) + np.linspace(0, 1, h)[:, None] * math.sin(theta)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0a, c1a = np.asarray(c0, np.float32), np.asarray(c1, np.float32)
    rgb = c0a + t[..., None].astype(np.float32) * (c1a - c0a)
    return Image.fromarray(rgb.astype(np.uint8)).resize((width, height), Image.Resampling.BILINEAR)


# Quantiles of the standard normal: indexing this with random bytes gives Gaussian noise
# several times faster than `standard_normal`, which dominated rendering time.
_NORMAL = np.array([NormalDist().inv_cdf((k + 0.5) / 256) for k in range(256)], np.float32)


def _add_noise(image: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image, np.int16)
    lut = np.round(_NORMAL * sigma).astype(np.int16)
    noise = lut[np.frombuffer(rng.bytes(pixels.size), np.uint8)].reshape(pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def _draw_primitive(
    draw: ImageDraw.ImageDraw, shape: str, box: Sequence[float], fill: tuple, width: int
) -> None:
    x0, y0, x1, y1 = box
    if shape == "ellipse":
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif shape == "rectangle":
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    else:
        draw.line((x0, y0, x1, y1), fill=fill, width=width)


def _draw_clutter(image: Image.Image, scene: Scene, front: bool) -> None:
    draw = ImageDraw.Draw(image)
    w, h = image.size
    for shape, (x0, y0, x1, y1), colour, in_front in scene.clutter:
        if in_front == front:
            box = (x0 * w, y0 * h, x1 * w, y1 * h)
            _draw_primitive(draw, shape, box, colour, max(1, min(w, h) // 60))


def _mask(shape: str, side: int) -> Image.Image:
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)

    def px(p: Point) -> Point:
        return ((p[0] + 1) / 2 * (side - 1), (p[1] + 1) / 2 * (side - 1))

    for op, geometry, value in SHAPES[shape]:
        if op == "ellipse":
            x0, y0, x1, y1 = geometry  # type: ignore[misc]
            draw.ellipse((*px((x0, y0)), *px((x1, y1))), fill=value)
        else:
            draw.polygon([px(p) for p in geometry], fill=value)  # type: ignore[union-attr]
    return mask


def _pattern(pattern: str, side: int, scene: Scene) -> Image.Image:
    fg, bg = (np.asarray(c, np.float32) for c in scene.colours)
    if pattern == "solid":
        return Image.new("RGB", (side, side), tuple(int(v) for v in fg))
    period = max(2.0, scene.pattern_period * side / 2)
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
    u = xs * math.cos(scene.pattern_angle) + ys * math.sin(scene.pattern_angle)
    v = -xs * math.sin(scene.pattern_angle) + ys * math.cos(scene.pattern_angle)
    if pattern == "stripes":
        on = (u / period) % 1 < 0.5
    elif pattern == "checks":
        on = ((np.floor(u / period) + np.floor(v / period)) % 2) == 0
    else:  # dots
        du, dv = (u / period) % 1 - 0.5, (v / period) % 1 - 0.5
        on = du * du + dv * dv < 0.09
    rgb = np.where(on[..., None], fg, bg)
    return Image.fromarray(rgb.astype(np.uint8))


def draw_scene(scene: Scene, size: int, noise_rng: np.random.Generator) -> Image.Image:
    """Render a scene with its longest side `size` pixels."""
    width, height = _dimensions(scene.aspect, size)
    image = _background(width, height, scene)
    _draw_clutter(image, scene, front=False)

    shape, pattern = scene.kind
    side = max(4, round(scene.radius * min(width, height) * 2))
    obj = _pattern(pattern, side, scene)
    obj.putalpha(_mask(shape, side))
    obj = obj.rotate(scene.angle, resample=Image.Resampling.BILINEAR, expand=True)
    cx, cy = scene.centre[0] * width, scene.centre[1] * height
    image.paste(obj, (round(cx - obj.width / 2), round(cy - obj.height / 2)), obj)

    kind, (x0, y0, x1, y1), colour = scene.occluder
    unit = min(width, height)
    box = (cx + (x0 - scene.centre[0]) * unit, cy + (y0 - scene.centre[1]) * unit)
    box += (box[0] + (x1 - x0) * unit, box[1] + (y1 - y0) * unit)
    _draw_primitive(ImageDraw.Draw(image), kind, box, colour, 1)
    _draw_clutter(image, scene, front=True)

    if scene.blur:
        image = image.filter(ImageFilter.GaussianBlur(scene.blur * size / 500))
    return _add_noise(image, scene.noise, noise_rng)


def render_photo(
    class_name: str, index: int, size: int = 256, *, classes: Sequence[str] = (), seed: int = 0
) -> Image.Image:
    """The `index`-th synthetic photo of a class, longest side `size` pixels, as an RGB image.

    Pass the full class list as `classes` so that every class gets a distinct object kind.
    """
    scene = make_scene(class_name, index, classes=classes, seed=seed)
    return draw_scene(scene, size, photo_rng(seed, class_name, index, 2))


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def render_jpeg(
    class_name: str, index: int, size: int, *, classes: Sequence[str] = (), seed: int = 0
) -> bytes:
    """`render_photo` encoded as the JPEG a photo host would serve."""
    scene = make_scene(class_name, index, classes=classes, seed=seed)
    image = draw_scene(scene, size, photo_rng(seed, class_name, index, 2))
    return encode_jpeg(image, scene.quality)


# ----------------------------------------------------------------------------------------------
# Metadata: what flickr.photos.search knows about each photo

LICENSE_IDS = [row[0] for row in LICENSES]
LICENSE_WEIGHTS = [row[3] for row in LICENSES]
OTHER_TAGS = ("nature", "animal", "portrait", "city", "summer", "winter", "light", "home", "blue")
ADJECTIVES = ("Sleepy", "Curious", "Little", "Old", "Happy", "Wild", "Quiet", "Bright")
FIRST_UPLOAD, LAST_UPLOAD = 1104537600, 1735603200  # 2005-01-01 .. 2024-12-31
LARGE_SIZES_FROM = 1274745600  # url_l (1024 px) exists for uploads after 2010-05-25
URL_C_FROM = 1330560000  # url_c (800 px) only for uploads after March 2012, as on Flickr


@dataclass(frozen=True)
class SimPhoto:
    id: str
    class_name: str
    index: int
    owner: str
    owner_name: str
    license: int
    title: str
    tags: tuple[str, ...]
    uploaded: int
    secret: str
    server: str
    aspect: float
    sizes: tuple[str, ...]  # size extras this photo has, e.g. ("m", "z", "c")
    relevance: float
    interestingness: float
    source: int  # index of the photo whose pixels it shows (itself, unless a re-upload)
    exact_copy: bool  # a re-upload of the same bytes (else re-encoded)

    def dimensions(self, size: str) -> tuple[int, int]:
        return _dimensions(self.aspect, SIZES[size][1])


def normalize_tag(text: str) -> str:
    """Flickr's "clean" tag form: lower case, letters and digits only."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def photo_id(class_name: str, index: int) -> str:
    """An 11-digit id, like Flickr's, stable for a class name and index."""
    return f"{_class_key(class_name) % 90000 + 10000}{index:06d}"


class Corpus:
    """Every photo of every class, as metadata; pixels are rendered on demand."""

    def __init__(
        self,
        classes: Sequence[str],
        photos_per_class: int,
        *,
        seed: int = 0,
        duplicates: float = 0.0,
    ) -> None:
        if photos_per_class > 999_999:
            raise ValueError("photos_per_class must be below 1,000,000")
        self.classes, self.seed = tuple(classes), seed
        rng = np.random.default_rng([seed, 7])
        owners = [
            (f"{int(rng.integers(10**7, 10**11))}@N0{int(rng.integers(0, 8))}", f"user{k:04d}")
            for k in range(max(8, len(self.classes) * photos_per_class // 4))
        ]
        # Zipf-like: a few owners upload many of the photos, as on Flickr.
        weights = 1 / np.arange(1, len(owners) + 1) ** 0.7
        self._owner_p = weights / weights.sum()
        self._owners = owners
        restricted = set(rng.choice(len(owners), size=len(owners) // 12, replace=False).tolist())
        self.photos: list[SimPhoto] = []
        for name in self.classes:
            self.photos += self._class_photos(name, photos_per_class, duplicates, restricted)
        self.by_id = {p.id: p for p in self.photos}
        if len(self.by_id) != len(self.photos):
            raise ValueError(f"two class names map to the same photo ids: {self.classes}")

    def _class_photos(self, name: str, n: int, duplicates: float, restricted: set[int]) -> list[SimPhoto]:
        rng = np.random.default_rng([self.seed, _class_key(name)])
        owner_ix = rng.choice(len(self._owners), size=n, p=self._owner_p)
        uploads = rng.integers(FIRST_UPLOAD, LAST_UPLOAD, size=n)
        licenses = rng.choice(LICENSE_IDS, size=n, p=LICENSE_WEIGHTS)
        copies = rng.random(n) < duplicates
        tag = normalize_tag(name)
        photos = []
        for i in range(n):
            owner, owner_name = self._owners[int(owner_ix[i])]
            extra = [str(t) for t in rng.choice(OTHER_TAGS, size=2, replace=False)]
            # A re-upload shows what the photo it copies shows (which may be a copy itself).
            source = photos[int(rng.integers(0, i))].source if copies[i] and i > 0 else i
            photos.append(
                SimPhoto(
                    id=photo_id(name, i),
                    class_name=name,
                    index=i,
                    owner=owner,
                    owner_name=owner_name,
                    license=int(licenses[i]),
                    title=f"{ADJECTIVES[i % len(ADJECTIVES)]} {name} {i}",
                    tags=(tag, *extra),
                    uploaded=int(uploads[i]),
                    secret=f"{int(rng.integers(16**9, 16**10)):010x}",
                    server=str(int(rng.integers(1000, 66000))),
                    aspect=photo_aspect(name, source, self.seed),
                    sizes=_sizes(int(uploads[i]), int(owner_ix[i]) in restricted),
                    relevance=float(rng.random()),
                    interestingness=float(rng.random()),
                    source=source,
                    exact_copy=bool(rng.random() < 0.5),
                )
            )
        return photos

    def jpeg(self, photo: SimPhoto, size: str) -> bytes:
        """The bytes a photo host serves for this photo at this size."""
        own = render_jpeg(
            photo.class_name, photo.source, SIZES[size][1], classes=self.classes, seed=self.seed
        )
        if photo.source == photo.index or photo.exact_copy:
            return own
        # A re-upload that went through another encoder: same picture, different bytes.
        scene = make_scene(photo.class_name, photo.source, classes=self.classes, seed=self.seed)
        with Image.open(io.BytesIO(own)) as image:
            return encode_jpeg(image, scene.quality - 12)


def _sizes(uploaded: int, restricted: bool) -> tuple[str, ...]:
    if restricted:  # owners may hide their large sizes
        return ("t", "s", "n", "m")
    sizes = ["t", "s", "n", "m", "z"]
    if uploaded >= LARGE_SIZES_FROM:
        sizes.append("l")
    if uploaded >= URL_C_FROM:
        sizes.append("c")
    return tuple(sizes)
