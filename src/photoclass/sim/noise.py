"""Known problems put into a dataset folder, so that `photoclass check` can be measured
against the truth: labels flipped, off-topic photos added, training photos copied into a later
split. For tests and benchmarks, on a throw-away copy of the dataset (photos added from elsewhere
are copied in: a link leading outside the folder is not read unless `follow_symlinks=True`).

    >>> truth = inject(Path("/tmp/noisy"), flip=0.05, strays=eagles, drawn=20, leak=0.01)  # doctest: +SKIP
    >>> truth.expected()["mislabelled"]                                                      # doctest: +SKIP
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from photoclass.data.folder import class_folders, files_in
from photoclass.files import unused_path
from photoclass.sim.corpus import render_photo

DRAWN_SIDE = 400  # pixels: the longer side of a drawn stray, about a Flickr photo's


@dataclass
class Injected:
    """What was done to the folder: each changed or added file, and the truth about it."""

    flipped: dict[Path, str] = field(default_factory=dict)  # photo -> the class it really shows
    strays: set[Path] = field(default_factory=set)  # photos of no class (real ones and drawn ones)
    drawn: set[Path] = field(default_factory=set)  # the drawn strays
    leaked: dict[Path, Path] = field(default_factory=dict)  # copy in a later split -> train photo
    reencoded: set[Path] = field(default_factory=set)  # the leaked copies that are not byte-identical

    def expected(self) -> dict[str, set[Path]]:
        """Finding kind -> the files `check` should flag with it."""
        return {"mislabelled": set(self.flipped), "off_topic": set(self.strays), "leakage": set(self.leaked)}


def inject(
    root: Path,
    *,
    flip: float = 0.0,
    strays: Sequence[Path] = (),
    drawn: int = 0,
    leak: float = 0.0,
    into: str = "val",
    seed: int = 0,
) -> Injected:
    """Change `root` (`root/<split>/<class>/`, at least two classes in train/):

    - `flip`: this share of each class's photos, in every split, moved to another class folder;
    - `strays`: these photos (of no class) linked into random class folders and splits;
    - `drawn`: this many drawn pictures (`photoclass.sim.corpus`) written likewise;
    - `leak`: this share of all photos, taken from train/, copied into `into`/ under the same
      class: half byte-identical (a link), half re-encoded at 90% of the size.
    """
    rng = random.Random(seed)
    root = Path(root)
    splits = [s for s in ("train", "val", "test") if (root / s).is_dir()]
    classes = class_folders(root / "train")
    photos = {(s, c): files_in(root / s / c) for s in splits for c in class_folders(root / s)}
    total = sum(map(len, photos.values()))
    done = Injected()

    for cls in classes:
        members = [p for (s, c), files in photos.items() if c == cls for p in files]
        for path in rng.sample(members, round(flip * len(members))):
            other = rng.choice([c for c in classes if c != cls])
            target = unused_path(path.parent.parent / other / path.name)
            os.replace(path, target)
            done.flipped[target] = cls

    def place() -> Path:
        return root / rng.choice(splits) / rng.choice(classes)

    for stray in strays:
        target = unused_path(place() / Path(stray).name)
        shutil.copyfile(stray, target)
        done.strays.add(target)
    for i in range(drawn):
        target = unused_path(place() / f"drawing-{seed}-{i}.jpg")
        render_photo(f"drawing-{i}", i, DRAWN_SIDE, seed=seed).convert("RGB").save(target, quality=90)
        done.strays.add(target)
        done.drawn.add(target)

    flipped = set(done.flipped)
    train = [p for c in classes for p in files_in(root / "train" / c) if p not in flipped]
    for n, path in enumerate(rng.sample(train, min(len(train), round(leak * total)))):
        target = unused_path(root / into / path.parent.name / path.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if n % 2 == 0:
            shutil.copyfile(path, target)
        else:
            with Image.open(path) as img:
                smaller = img.convert("RGB").resize((round(img.width * 0.9), round(img.height * 0.9)))
                smaller.save(target, quality=85)
            done.reencoded.add(target)
        done.leaked[target] = path
    return done
