"""Device and arithmetic, chosen once (`photoclass.runtime.Compute`): what "auto" picks, the
one-line errors for devices that are not there, and that GPU code paths are at least built."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

import photoclass
from photoclass.bundle import META, load_bundle
from photoclass.errors import ConfigError
from photoclass.runtime import Compute, auto_precision, select_device


def test_auto_is_the_cpu_on_a_machine_without_an_accelerator() -> None:
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator: auto picks it")
    assert select_device("auto") == torch.device("cpu")
    assert select_device("CPU") == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert select_device("auto") == torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device("auto") == torch.device("mps")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cuda", "PyTorch sees no GPU here"),
        ("cuda:3", "PyTorch sees no GPU here"),
        ("mps", "needs Apple silicon"),
        ("tpu", "unknown `device`"),
        ("meta", "unsupported `device`"),
    ],
)
def test_a_device_that_is_not_here_is_a_one_line_error(name: str, message: str) -> None:
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator")
    with pytest.raises(ConfigError, match=message) as info:
        select_device(name)
    assert "\n" not in str(info.value)


def test_a_gpu_index_past_the_last_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert select_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match=r"sees 2 GPU\(s\), cuda:0 to cuda:1"):
        select_device("cuda:2")


def test_auto_precision_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert auto_precision(torch.device("cuda", 0)) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert auto_precision(torch.device("cuda", 0)) == "fp16"  # an older GPU: fp16 + loss scaling
    assert auto_precision(torch.device("mps")) == "fp16"
    monkeypatch.setattr("photoclass.runtime.native_bf16", lambda: True)
    assert auto_precision(torch.device("cpu")) == "bf16"
    assert auto_precision(torch.device("cpu"), cpu_bf16=False) == "fp32"
    monkeypatch.setattr("photoclass.runtime.native_bf16", lambda: False)
    assert auto_precision(torch.device("cpu")) == "fp32"


@pytest.mark.parametrize(
    ("device", "precision", "dtype", "scaled"),
    [
        ("cuda", "fp16", torch.float16, True),
        ("cuda", "bf16", torch.bfloat16, False),
        ("mps", "fp16", torch.float16, True),
        ("cpu", "fp16", torch.float16, True),
        ("cpu", "bf16", torch.bfloat16, False),
        ("cpu", "fp32", None, False),
    ],
)
def test_gpu_code_paths_are_built(
    device: str, precision: str, dtype: torch.dtype | None, scaled: bool
) -> None:
    # No GPU here: the objects a GPU run uses are built and typed, not run.
    compute = Compute(torch.device(device), precision)
    assert compute.dtype == dtype
    with warnings.catch_warnings():  # torch warns that this machine lacks the device
        warnings.simplefilter("ignore")
        cast = compute.autocast()
        scaler = compute.grad_scaler()
    assert isinstance(cast, torch.autocast) and cast.device == device
    assert cast.fast_dtype == (dtype or torch.float32) or dtype is None
    assert isinstance(scaler, torch.amp.GradScaler)
    # fp16 gradients need loss scaling, and only they (a GPU's scaler switches itself off
    # on a machine without one, so it is checked where it runs: on the CPU).
    if device == "cpu":
        assert scaler.is_enabled() == scaled
    assert compute.pin_memory == (device == "cuda")


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(ConfigError, match="`precision` must be one of fp32 | bf16 | fp16 | auto"):
        Compute.create("cpu", "fp8")


def test_inference_keeps_the_trained_arithmetic_only_where_it_is_native(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("photoclass.runtime.native_bf16", lambda: False)
    assert Compute.for_inference("cpu", "bf16").precision == "fp32"
    assert Compute.for_inference("cpu", "fp16").precision == "fp32"  # trained on a GPU
    monkeypatch.setattr("photoclass.runtime.native_bf16", lambda: True)
    assert Compute.for_inference("cpu", "bf16").precision == "bf16"


def test_a_gpu_trained_bundle_predicts_on_the_cpu(
    trained_binary: Path, tmp_path: Path, cats_owls_tiny: Path
) -> None:
    # A bundle as a CUDA run writes it (weights are always saved from the CPU, in float32).
    gpu = tmp_path / "gpu-bundle"
    gpu.mkdir()
    for item in trained_binary.iterdir():
        (gpu / item.name).write_bytes(item.read_bytes())
    meta = json.loads((gpu / META).read_text())
    meta.update(device="cuda", precision="fp16")
    (gpu / META).write_text(json.dumps(meta))
    bundle = load_bundle(gpu, device="cpu")
    assert bundle.compute == Compute(torch.device("cpu"), "fp32")
    assert next(bundle.model.parameters()).device.type == "cpu"
    photos = sorted((cats_owls_tiny / "val" / "cat").iterdir())[:3]
    got = photoclass.predict(bundle, photos)
    want = photoclass.predict(load_bundle(trained_binary, device="cpu"), photos)
    assert [p.label for p in got] == [p.label for p in want]


def test_the_bundle_records_where_it_trained(trained_binary: Path) -> None:
    meta = json.loads((trained_binary / META).read_text())
    assert meta["device"] == "cpu" and meta["precision"] in ("fp32", "bf16")
    assert meta["config"]["device"] == "auto"
