"""Does the efficientnet-lite0 recipe generalise past val/? Held-out photos reframed the way
real users' photos differ from a training set: farther away (the photo shrunk onto a cluttered
background), closer (a tight crop), tilted, and in black and white.

    python bench/generalise.py                 # ~5 minutes on 2 cores
    python bench/generalise.py --photos 200    # a quicker look

It trains two models on cats-owls train/ (the probe alone, i.e. `--epochs 0`, and the full
recipe with its augmented fine-tune), evaluates both on val/ and on each reframed copy of
val/, and prints accuracy with its 95% interval for every pair.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from PIL import Image, ImageFilter, ImageOps

import photoclass

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cats-owls"


def farther(img: Image.Image, rng: random.Random, background: Image.Image) -> Image.Image:
    """The subject at 45% of the frame, somewhere on a blurred, unrelated scene."""
    canvas = background.resize(img.size).filter(ImageFilter.GaussianBlur(3))
    small = img.resize((int(img.width * 0.45), int(img.height * 0.45)))
    x = rng.randint(0, img.width - small.width)
    y = rng.randint(0, img.height - small.height)
    canvas.paste(small, (x, y))
    return canvas


def closer(img: Image.Image, rng: random.Random, background: Image.Image) -> Image.Image:
    """A tight, off-centre crop of 55% of each side."""
    w, h = int(img.width * 0.55), int(img.height * 0.55)
    x, y = rng.randint(0, img.width - w), rng.randint(0, img.height - h)
    return img.crop((x, y, x + w, y + h))


def tilted(img: Image.Image, rng: random.Random, background: Image.Image) -> Image.Image:
    return img.rotate(rng.choice([-1, 1]) * 25, expand=False, fillcolor=(128, 128, 128))


def grey(img: Image.Image, rng: random.Random, background: Image.Image) -> Image.Image:
    return ImageOps.grayscale(img).convert("RGB")


VARIANTS = {"farther": farther, "closer": closer, "tilted": tilted, "black-and-white": grey}


def reframe(split: Path, out: Path, variant, seed: int, limit: int | None) -> Path:
    rng = random.Random(seed)
    files = sorted(split.glob("*/*.jpg"))
    # Backgrounds come from photos of neither class in the same frame: other val photos,
    # shuffled so no photo is its own background.
    backgrounds = files[:]
    rng.shuffle(backgrounds)
    by_class: dict[str, list[Path]] = {}
    for path in files:
        by_class.setdefault(path.parent.name, []).append(path)
    for cls, paths in by_class.items():
        (out / cls).mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(paths[:limit]):
            img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
            background = Image.open(backgrounds[(i * 7) % len(backgrounds)]).convert("RGB")
            variant(img, rng, background).save(out / cls / path.name, quality=90)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--photos", type=int, default=None, help="val photos per class to reframe")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        splits = {"val/ as is": args.data / "val"}
        for name, variant in VARIANTS.items():
            splits[name] = reframe(args.data / "val", tmp / name, variant, seed=0, limit=args.photos)
        models = {
            "probe only (--epochs 0)": photoclass.train(
                args.data, tmp / "probe", epochs=0, progress=False
            ).out,
            "full recipe": photoclass.train(args.data, tmp / "full", progress=False).out,
        }
        print(f"\n{'held-out photos':<18}{'n':>5}" + "".join(f"{m:>28}" for m in models))
        for split_name, split in splits.items():
            results = [photoclass.evaluate(model, split, progress=False).metrics for model in models.values()]
            row = f"{split_name:<18}{results[0]['n']:>5}"
            for m in results:
                low, high = m["accuracy_ci95"]
                row += f"{m['accuracy']:>13.1%} ({low:.1%}-{high:.1%})"
            print(row)


if __name__ == "__main__":
    main()
