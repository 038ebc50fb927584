"""Do the recipes generalise past val/? The judge for recipes: each shared task, each model and
recipe, scored on val/ and on shifted check sets built from the shared photos the way users'
photos differ from a training set.

    python bench/generalise.py                                 # everything: ~1 h on 2 busy cores
    python bench/generalise.py --tasks owls-eagles --recipes lite0,lite0-probe,lite0-today
    python bench/generalise.py --recipe "sc-ls=small-cnn:label_smoothing=0.1,epochs=20"

The check sets, per task (cats-owls, owls-eagles under ../shared/data, or --data-root):

- held-out look (cluster): per class, the photos of its most atypical k-means cluster (k=6, on
  L2-normalised ImageNet features of efficientnet-lite0; the cluster whose centre is least like
  the rest of the class, among those holding 8-30% of it), taken out of train/ and val/;
- look-alikes: per class, the 15% of photos whose features lie closest to another class's
  centre relative to their own (owls that look like the eagle photos), taken out likewise:
  the real test photos a model misses are of this kind (owls in flight, in the open, far away);
- farther, off-centre, grey, low-res: every remaining val/ photo shrunk to 30-45% onto its own
  blurred copy, cropped to a 55% corner, in black and white, and at 1/8 of its resolution.

Every recipe trains on what remains of train/ (validating on what remains of val/), so no
check photo and no look-alike of one is seen in training. Each cell is the accuracy with its
95% Wilson interval; "s" is the wall time of the whole `photoclass.train` call (decoding is
cached after the first recipe). The machine is shared: compare times only within one run.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cpu, machine, table  # noqa: E402

import photoclass  # noqa: E402
from photoclass.data.cache import decode_all  # noqa: E402
from photoclass.data.folder import scan_dataset  # noqa: E402
from photoclass.data.preprocess import Normalize  # noqa: E402
from photoclass.evaluation.metrics import wilson_interval  # noqa: E402
from photoclass.models import create_model, get_model_entry  # noqa: E402
from photoclass.prediction.novelty import l2_normalize, pre_logits  # noqa: E402

DATA_ROOT = Path(os.environ.get("PHOTOCLASS_SHARED", ROOT.parent / "shared")) / "data"
TASKS = ("owls-eagles", "cats-owls")

# Today's recipes (before issue 15), spelled out so they stay reproducible after the defaults move.
LITE0_TODAY = dict(
    model="efficientnet-lite0", epochs=2, unfreeze=2, probe_epochs=30, lr=1e-4, weight_decay=1e-4,
    patience=2, crop_scale=0.35, rotate=10.0, color_jitter=0.2, prior=0.0, label_smoothing=0.0,
)  # fmt: skip
SMALL_TODAY = dict(
    model="small-cnn", image_size=128, epochs=30, patience=30, lr=3e-3, weight_decay=5e-4, scheduler="onecycle",
    crop_scale=0.35, rotate=10.0, color_jitter=0.2, label_smoothing=0.0, grayscale=0.0,
)  # fmt: skip
RECIPES: dict[str, dict[str, Any]] = {
    "lite0-today": LITE0_TODAY,
    "lite0-probe": {**LITE0_TODAY, "epochs": 0},
    "lite0": {"model": "efficientnet-lite0"},  # the default recipe
    "small-cnn-today": SMALL_TODAY,
    "small-cnn": {"model": "small-cnn"},
}


# -- check sets ------------------------------------------------------------------------------------


def kmeans(x: np.ndarray, k: int, seed: int = 0, iterations: int = 50) -> np.ndarray:
    """Cluster index of each row of `x` (Lloyd's algorithm, seeded)."""
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), k, replace=False)]
    for _ in range(iterations):
        which = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack([x[which == j].mean(0) if (which == j).any() else centres[j] for j in range(k)])
    return which


def atypical_cluster(features: np.ndarray, labels: np.ndarray, k: int = 6) -> np.ndarray:
    """Per class, the members of its k-means cluster least like the rest of the class."""
    held = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        which = kmeans(features[idx], k)
        best, best_similarity = None, np.inf
        for j in range(k):
            if not 0.08 <= (which == j).mean() <= 0.30:
                continue
            centre, rest = features[idx][which == j].mean(0), features[idx][which != j].mean(0)
            similarity = centre @ rest / (np.linalg.norm(centre) * np.linalg.norm(rest))
            if similarity < best_similarity:
                best, best_similarity = j, similarity
        held[idx[which == best]] = True
    return held


def look_alikes(features: np.ndarray, labels: np.ndarray, share: float = 0.15) -> np.ndarray:
    """Per class, the `share` of photos closest to another class's centre relative to their own."""
    classes = np.unique(labels)
    centres = l2_normalize(np.stack([features[labels == c].mean(0) for c in classes]))
    similarity = features @ centres.T
    own = similarity[np.arange(len(labels)), labels]
    other = np.where(np.eye(len(classes), dtype=bool)[labels], -np.inf, similarity).max(1)
    held = np.zeros(len(labels), bool)
    for c in classes:
        idx = np.flatnonzero(labels == c)
        held[idx[np.argsort(own[idx] - other[idx], kind="stable")[: int(share * len(idx))]]] = True
    return held


def farther(img: Image.Image, rng: random.Random) -> Image.Image:
    """The photo shrunk to 30-45% of its sides, somewhere on a heavily blurred copy of itself."""
    w, h = img.size
    canvas = img.filter(ImageFilter.GaussianBlur(max(w, h) / 12))
    s = rng.uniform(0.3, 0.45)
    small = img.resize((max(1, int(w * s)), max(1, int(h * s))), Image.Resampling.LANCZOS)
    canvas.paste(small, (rng.randint(0, w - small.width), rng.randint(0, h - small.height)))
    return canvas


def off_centre(img: Image.Image, rng: random.Random) -> Image.Image:
    """A corner holding 55% of each side: the (usually centred) subject is cut off."""
    w, h = img.size
    cw, ch = int(w * 0.55), int(h * 0.55)
    x, y = rng.choice([0, w - cw]), rng.choice([0, h - ch])
    return img.crop((x, y, x + cw, y + ch))


def grey(img: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.grayscale(img).convert("RGB")


def low_res(img: Image.Image, rng: random.Random) -> Image.Image:
    """1/8 of the resolution, scaled back up (a distant subject cropped, a poor camera)."""
    w, h = img.size
    small = img.resize((max(1, w // 8), max(1, h // 8)), Image.Resampling.BILINEAR)
    return small.resize((w, h), Image.Resampling.BILINEAR)


VARIANTS = {"farther": farther, "off-centre": off_centre, "grey": grey, "low-res": low_res}


def link(paths: list[Path], labels: list[str], folder: Path) -> Path:
    for path, label in zip(paths, labels, strict=True):
        (folder / label).mkdir(parents=True, exist_ok=True)
        (folder / label / path.name).symlink_to(path)
    return folder


def build_checks(data: Path, work: Path) -> tuple[Path, dict[str, Path]]:
    """The training folder (what remains of train/ and val/) and each check folder."""
    dataset = scan_dataset(data)
    samples = dataset.train + (dataset.val or [])
    n_train = len(dataset.train)
    decoded = decode_all([s.path for s in samples], 224)
    model = create_model("efficientnet-lite0", len(dataset.classes), 224).eval()
    entry = get_model_entry("efficientnet-lite0")
    features = l2_normalize(
        pre_logits(model, decoded.images, Normalize(entry.cfg.mean, entry.cfg.std), description="features")
    )
    keep = np.asarray(decoded.ok)
    labels = np.asarray([samples[i].label for i in keep])
    held = {"cluster": atypical_cluster(features, labels), "look-alikes": look_alikes(features, labels)}
    any_held = held["cluster"] | held["look-alikes"]
    names = [dataset.classes[label] for label in labels]
    paths = [samples[i].path for i in keep]
    is_train = keep < n_train

    def pick(mask: np.ndarray) -> tuple[list[Path], list[str]]:
        rows = np.flatnonzero(mask)
        return [paths[i] for i in rows], [names[i] for i in rows]

    train_folder = work / "data"
    link(*pick(is_train & ~any_held), train_folder / "train")
    link(*pick(~is_train & ~any_held), train_folder / "val")
    checks = {"val": train_folder / "val"}
    for name, mask in held.items():
        checks[name] = link(*pick(mask), work / "checks" / name)
    val_paths, val_names = pick(~is_train & ~any_held)
    for name, variant in VARIANTS.items():
        rng = random.Random(0)
        for path, label in zip(val_paths, val_names, strict=True):
            folder = work / "checks" / name / label
            folder.mkdir(parents=True, exist_ok=True)
            photo = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
            variant(photo, rng).save(folder / f"{path.stem}.jpg", quality=90)
        checks[name] = work / "checks" / name
    return train_folder, checks


# -- the run ---------------------------------------------------------------------------------------


def parse_recipe(text: str) -> tuple[str, dict[str, Any]]:
    """NAME=MODEL:key=value,key=value (values as Python literals where they parse)."""
    import ast

    name, spec = text.split("=", 1)
    model, _, rest = spec.partition(":")
    options: dict[str, Any] = {"model": model}
    for pair in filter(None, rest.split(",")):
        key, value = pair.split("=", 1)
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return name, options


def cell(correct: int, n: int) -> str:
    low, high = wilson_interval(correct, n)
    return f"{correct / n:.1%} ({low:.0%}-{high:.0%})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"of {', '.join(RECIPES)}")
    parser.add_argument("--recipe", action="append", default=[], help="extra NAME=MODEL:key=value,...")
    parser.add_argument("--keep", type=Path, default=None, help="keep the work folder here")
    args = parser.parse_args()
    recipes = {name: RECIPES[name] for name in filter(None, args.recipes.split(","))}
    recipes.update(parse_recipe(r) for r in args.recipe)

    print(cpu(), machine(), sep="\n", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work_root = args.keep or Path(tmp)
        for task in args.tasks.split(","):
            work = work_root / task
            data, checks = build_checks(args.data_root / task, work)
            sizes = {name: sum(1 for _ in folder.glob("*/*")) for name, folder in checks.items()}
            print(f"\n{task}: " + ", ".join(f"{k} {v}" for k, v in sizes.items()), flush=True)
            for name, options in recipes.items():
                tick = time.perf_counter()
                # The check sets are symbolic links to the shared photos.
                run = photoclass.train(
                    data,
                    work / "models" / name,
                    progress=False,
                    overwrite=True,
                    follow_symlinks=True,
                    **options,
                )
                seconds = time.perf_counter() - tick
                row = [task, name]
                for folder in checks.values():
                    m = photoclass.evaluate(run.out, folder, progress=False, follow_symlinks=True).metrics
                    row.append(cell(m["correct"], m["n"]))
                prior = run.meta.get("prior", {})
                row += [f"{seconds:.0f}", f"{prior.get('weight', 0):g}"]
                rows.append(row)
                print("  " + "  ".join(row), flush=True)
            headers = ["task", "recipe", *checks, "s", "prior"]
    print()
    print(table(headers, rows))
    print(f"\nafter: {machine()}")


if __name__ == "__main__":
    main()
