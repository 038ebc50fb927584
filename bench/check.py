"""`photoclass check` on cats-owls with known noise: how much of it is found, how much of what
is flagged was injected, how long it takes, and what `check --fix` does for training.

    python bench/check.py            # 2,000 photos, 4 trainings (~25 minutes on 2 cores)
    python bench/check.py --quick    # 500 photos, small-cnn for 10 epochs (~8 minutes)

cats-owls/train is split 80/20 per class into a noisy dataset's train/ and val/ (copies),
and then, by `photoclass.sim.noise`: 5% of each class's labels flipped, 2% off-topic
photos added (half real eagles from owls-eagles, half drawings), 1% of the photos copied from
train/ into val/ (half byte-identical, half re-encoded). The check runs through the real CLI
with a cold decode cache, timed. The clean dataset is checked too: what it flags already is
the photos' own problems, not the injected ones, and is shown apart.

Then efficientnet-lite0 and small-cnn are trained (default recipes) on the noisy dataset,
`check --fix` quarantines what it is confident about, both are trained again, and all four
are judged on cats-owls/val, which no noise touched.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

from _common import DATA, PHOTOCLASS, banner, class_files, cpu, machine, run, table

from photoclass.sim.noise import Injected, inject

EAGLES = DATA.parent / "owls-eagles" / "train" / "eagle"
MODELS = ("efficientnet-lite0", "small-cnn")


def build(dest: Path, per_class: int | None, seed: int = 0) -> Path:
    """cats-owls/train split 80/20 per class into dest/{train,val}/<class>/ (copies: links
    leading outside the folder would not be read)."""
    rng = random.Random(seed)
    for name, files in class_files(DATA / "train").items():
        files = rng.sample(files, min(per_class or len(files), len(files)))
        cut = round(0.8 * len(files))
        for split, part in (("train", files[:cut]), ("val", files[cut:])):
            folder = dest / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for path in part:
                shutil.copyfile(path, folder / path.name)
    return dest


def check(data: Path, work: Path, *fix: str) -> tuple[dict, float]:
    env = {"PHOTOCLASS_CACHE": tempfile.mkdtemp(dir=work)}  # a cold decode cache every time
    print("$ photoclass check", data, *fix, "--format json", flush=True)
    done = run([*PHOTOCLASS, "check", str(data), *fix, "--format", "json"], env=env)
    return json.loads(done.stdout), done.wall


def train_and_score(data: Path, model: str, out: Path, epochs: int | None) -> float:
    extra = ["--epochs", str(epochs)] if epochs and model == "small-cnn" else []
    print(f"$ photoclass train {data} --model {model} {' '.join(extra)}", flush=True)
    run([*PHOTOCLASS, "train", str(data), "--out", str(out), "--model", model, *extra])
    done = run([*PHOTOCLASS, "evaluate", str(out), str(DATA / "val"), "--json", "--out", str(out / "eval")])
    return json.loads(done.stdout)["accuracy"]


def scores(report: dict, root: Path, truth: Injected, natural: set[str] | None) -> list[list[object]]:
    """Rows of the table; `natural` is what the clean dataset's check flagged (None: not run)."""
    flagged: dict[str, set[str]] = {"any": {f["path"] for f in report["findings"]}}
    for finding in report["findings"]:
        flagged.setdefault(finding["kind"], set()).add(finding["path"])

    def rel(paths: set[Path]) -> set[str]:
        return {p.relative_to(root).as_posix() for p in paths}

    expected = {kind: rel(paths) for kind, paths in truth.expected().items()}
    rows = []
    for kind, label, subset in (
        ("mislabelled", "mislabelled (5% of each class)", expected["mislabelled"]),
        ("off_topic", "off-topic (2%)", expected["off_topic"]),
        ("off_topic", "  of which drawings", rel(truth.drawn)),
        ("off_topic", "  of which eagles", expected["off_topic"] - rel(truth.drawn)),
        ("any", "  eagles flagged as any kind", expected["off_topic"] - rel(truth.drawn)),
        ("leakage", "leakage train -> val (1%)", expected["leakage"]),
        ("leakage", "  of which re-encoded", rel(truth.reencoded)),
    ):
        got = flagged.get(kind, set())
        hits = got & subset
        whole = kind in expected and subset == expected[kind]
        wrong = got - expected.get(kind, set())
        rows.append([
            label,
            len(subset),
            len(got) if whole else "",
            len(hits),
            len(hits) / max(1, len(subset)),
            len(hits) / max(1, len(got)) if whole else float("nan"),
            ("not run" if natural is None else f"{len(wrong & natural)} of {len(wrong)}") if whole else "",
        ])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="250 photos per class, small-cnn for 10 epochs")
    args = parser.parse_args()
    per_class, epochs = (250, 10) if args.quick else (None, None)
    print(cpu())
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clean, noisy = build(work / "clean", per_class), build(work / "noisy", per_class)
        total = sum(1 for _ in noisy.rglob("*.jpg"))
        off_topic = round(0.02 * total)
        rng = random.Random(0)
        strays = rng.sample(sorted(EAGLES.iterdir()), off_topic - off_topic // 2)
        truth = inject(noisy, flip=0.05, strays=strays, drawn=off_topic // 2, leak=0.01, seed=0)

        banner("the clean dataset's own findings")
        natural: set[str] | None = None
        if not args.quick:
            report, _ = check(clean, work)
            natural = {f["path"] for f in report["findings"]}
            print(f"{len(report['findings'])} findings: {report['counts']}")

        banner("training on the noisy dataset")
        before = {m: train_and_score(noisy, m, work / f"{m}-noisy", epochs) for m in MODELS}

        banner("check --fix on the noisy dataset")
        report, wall = check(noisy, work, "--fix")
        files = sum(n for per_class_files in report["files"].values() for n in per_class_files.values())
        moved: dict[str, int] = {}
        for m in report["moved"]:
            moved[m["kind"]] = moved.get(m["kind"], 0) + 1

        banner("training on the fixed dataset")
        after = {m: train_and_score(noisy, m, work / f"{m}-fixed", epochs) for m in MODELS}

    headers = [
        "kind",
        "injected",
        "flagged",
        "found",
        "recall",
        "precision",
        "false alarms flagged in the clean set too",
    ]
    print()
    print(table(headers, scores(report, noisy, truth, natural), title="what check found"))
    print(f"\n`photoclass check` on {files} files: {wall:.0f} s wall (cold decode cache, features included)")
    print(f"`check --fix` moved {sum(moved.values())} files: {moved}")
    print()
    rows = [[m, f"{before[m]:.1%}", f"{after[m]:.1%}", f"{after[m] - before[m]:+.1%}"] for m in MODELS]
    print(table(["model", "val accuracy, noisy", "after check --fix", "change"], rows, title="cats-owls/val"))
    print(f"\n{os.path.basename(sys.argv[0])} {'--quick' if args.quick else ''}: {machine()}")


if __name__ == "__main__":
    main()
