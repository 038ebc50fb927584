"""The reference tutorial's training pipeline in Keras, as `bench/train.py` runs it.

Not run directly: `bench/train.py` starts it with the TensorFlow venv's interpreter, e.g.

    /work/tfvenv/bin/python bench/keras_reference.py DATA/train DATA/val --epochs 3 --json out.json

It is the tutorial's code path, nothing tuned: `ImageDataGenerator(rescale=1/255, shear_range=0.2,
zoom_range=0.2, horizontal_flip=True).flow_from_directory(..., target_size=(300, 300),
batch_size=5, class_mode='binary')` (validation: rescale only), Conv2D(32)-MaxPool,
Conv2D(64)-MaxPool, Conv2D(128)-MaxPool, Flatten, Dense(64), Dropout(0.5), Dense(1)-sigmoid,
RMSprop, binary cross-entropy, `model.fit(..., validation_data=...)`. Each epoch's wall time
(training + validation, as photoclass's per-epoch `seconds`) and validation metrics are written
as JSON. Needs tensorflow-cpu (the project's `bench` extra), kept out of the main venv.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.keras import layers, models  # noqa: E402
from tensorflow.keras.preprocessing.image import ImageDataGenerator  # noqa: E402

SIZE, BATCH = 300, 5


def build() -> tf.keras.Model:
    model = models.Sequential(
        [
            layers.Input((SIZE, SIZE, 3)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2), padding="same"),  # 298 is even: same as "valid" here
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(128, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),  # 35 x 35 x 128 = 156,800 features, as the reference's ~157k
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return model


class EpochTimer(tf.keras.callbacks.Callback):
    """Wall time of each epoch, validation included (it runs before `on_epoch_end`)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, float]] = []

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._tick = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = logs or {}
        row = {"epoch": epoch + 1, "seconds": time.perf_counter() - self._tick}
        row.update({k: float(v) for k, v in logs.items()})
        self.rows.append(row)
        print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train")
    parser.add_argument("val")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", required=True, help="where to write the per-epoch results")
    args = parser.parse_args()

    started = time.perf_counter()
    tf.keras.utils.set_random_seed(args.seed)
    train_gen = ImageDataGenerator(rescale=1 / 255, shear_range=0.2, zoom_range=0.2, horizontal_flip=True)
    val_gen = ImageDataGenerator(rescale=1 / 255)
    train = train_gen.flow_from_directory(
        args.train, target_size=(SIZE, SIZE), batch_size=BATCH, class_mode="binary"
    )
    val = val_gen.flow_from_directory(
        args.val, target_size=(SIZE, SIZE), batch_size=BATCH, class_mode="binary"
    )
    model = build()
    timer = EpochTimer()
    model.fit(train, epochs=args.epochs, validation_data=val, callbacks=[timer], verbose=0)
    result = {
        "epochs": timer.rows,
        "train_photos": train.samples,
        "val_photos": val.samples,
        "seconds": time.perf_counter() - started,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
