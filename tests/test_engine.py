"""The inference engine: onnxruntime on the exported graph computes PyTorch's probabilities,
"auto" picks it only where it can and should, the graph is built once and checked, and a
fine-tune's frozen layers in onnxruntime give PyTorch's logits and gradients."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import photoclass
from photoclass.cli import app
from photoclass.config import TrainConfig
from photoclass.data.cache import cache_root, decode_all
from photoclass.data.preprocess import Normalize
from photoclass.errors import ConfigError, DependencyError
from photoclass.models import create_model, get_model_entry
from photoclass.models.classifier import PreLogitsAndLogits
from photoclass.prediction import engine
from photoclass.prediction.inference import CPU_FP32, logits_for, probabilities
from photoclass.runtime import Compute
from photoclass.training.phases import _forward

pytest.importorskip("onnxruntime", reason="pip install 'photoclass[export]'")


def real_pixels(folder: Path, size: int) -> np.ndarray:
    photos = sorted(folder.rglob("*.jpg"))
    return np.ascontiguousarray(decode_all(photos, size, use_cache=False).images)


def test_onnx_gives_torchs_probabilities_for_real_photos(trained_binary: Path, cats_owls_tiny: Path) -> None:
    bundle = photoclass.load_model(trained_binary, device="cpu")
    pixels = real_pixels(cats_owls_tiny / "val", bundle.image_size)
    want = probabilities(logits_for(bundle.model, pixels, bundle.normalize, engine="torch"))
    for batch_size in (1, 3, 32):  # any batch size, a last batch shorter than the others
        got = logits_for(bundle.model, pixels, bundle.normalize, engine="onnx", batch_size=batch_size)
        np.testing.assert_allclose(probabilities(got), want, atol=1e-4)
    # through the API, which picks the engine from the bundle (fp32 here, as on CPUs without bf16)
    bundle = photoclass.load_model(trained_binary, device="cpu", engine="onnx")
    bundle.compute = CPU_FP32
    evaluation = photoclass.evaluate(bundle, cats_owls_tiny / "val", progress=False)
    calibrated = probabilities(
        logits_for(bundle.model, pixels, bundle.normalize, engine="torch"), bundle.temperature
    )
    np.testing.assert_allclose(evaluation.probs, calibrated, atol=1e-4)
    torch_run = photoclass.predict(bundle, [cats_owls_tiny / "val"], top_k=2, engine="torch")
    onnx_run = photoclass.predict(bundle, [cats_owls_tiny / "val"], top_k=2)
    for a, b in zip(torch_run, onnx_run, strict=True):
        assert a.path == b.path and a.label == b.label
        assert a.probability == pytest.approx(b.probability, abs=1e-4)


def test_an_onnx_session_uses_the_threads_asked_for_and_computes_the_same(
    trained_binary: Path, cats_owls_tiny: Path
) -> None:
    bundle = photoclass.load_model(trained_binary, device="cpu")
    pixels = real_pixels(cats_owls_tiny / "val", bundle.image_size)
    runs = {}
    for threads in (1, 2):
        run = engine.runner_for(
            bundle.model, bundle.normalize, CPU_FP32, "onnx", size=bundle.image_size, threads=threads
        )
        assert run.session.get_session_options().intra_op_num_threads == threads
        runs[threads] = logits_for(bundle.model, pixels, bundle.normalize, engine="onnx", threads=threads)
    np.testing.assert_allclose(runs[1], runs[2], atol=1e-5)


@pytest.mark.slow
def test_onnx_gives_torchs_efficientnet_lite0_on_real_photos(cats_owls_tiny: Path) -> None:
    """The default model: pretrained EfficientNet-Lite0, its logits and its probe's features."""
    torch.manual_seed(0)
    model = create_model("efficientnet-lite0", 2, 96).eval().to(memory_format=torch.channels_last)
    cfg = get_model_entry("efficientnet-lite0").cfg
    normalize = Normalize(cfg.mean, cfg.std)
    pixels = real_pixels(cats_owls_tiny / "val", 96)
    want = logits_for(model, pixels, normalize, engine="torch")
    got = logits_for(model, pixels, normalize, engine="onnx")
    np.testing.assert_allclose(probabilities(got), probabilities(want), atol=1e-4)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_efficientnet_lite0s_padding_folds_into_its_convolutions(tmp_path: Path) -> None:
    """Its strided convolutions pad as TensorFlow does ("same", uneven): exported, each Pad
    is a constant that onnxruntime folds into the convolution after it, so none runs."""
    import onnx
    import onnxruntime as ort

    model = create_model("efficientnet-lite0", 2, 96).eval()
    cfg = get_model_entry("efficientnet-lite0").cfg
    graph = engine.export_graph(engine.Pixels(model, Normalize(cfg.mean, cfg.std)), 96)
    assert sum(node.op_type == "Pad" for node in onnx.load_from_string(graph).graph.node) == 5
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    assert "Pad" not in {node.op_type for node in onnx.load(tmp_path / "optimized.onnx").graph.node}


def test_auto_uses_onnxruntime_on_a_cpu_in_float32_only() -> None:
    model = create_model("small-cnn", 2, 32).eval()
    normalize = Normalize((0.5,) * 3, (0.5,) * 3)

    def chosen(device: str, precision: str, choice: str = "auto") -> str:
        compute = Compute(torch.device(device), precision)
        return engine.runner_for(model, normalize, compute, choice, size=32).name

    assert chosen("cpu", "fp32") == "onnx"
    assert chosen("cpu", "bf16") == "torch"  # PyTorch's native bf16, the arithmetic validated
    assert chosen("cuda", "fp32") == "torch"  # GPUs: PyTorch (no GPU is touched to decide)
    assert chosen("cpu", "fp32", "torch") == "torch"
    assert chosen("cpu", "bf16", "onnx") == "onnx"  # asked for: float32 in onnxruntime
    with pytest.raises(ConfigError, match=r'^`engine="onnx"` runs on the CPU, but the model is on cuda;'):
        chosen("cuda", "fp32", "onnx")
    with pytest.raises(
        ConfigError, match=r"^`engine` must be one of auto \| torch \| onnx \(got 'tensorrt'\)$"
    ):
        chosen("cpu", "fp32", "tensorrt")
    with pytest.raises(ConfigError, match="`engine` must be one of"):
        TrainConfig(engine="fast").resolve({})


@pytest.mark.parametrize("missing", ["onnxruntime", "onnx"])
def test_without_onnxruntime_auto_falls_back_and_onnx_says_what_to_install(
    missing: str,
    trained_binary: Path,
    cats_owls_tiny: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # as if not installed
    monkeypatch.setattr(engine, "_runners", {})
    photos = [cats_owls_tiny / "val" / "owl"]
    bundle = photoclass.load_model(trained_binary, device="cpu")
    bundle.compute = CPU_FP32  # where "auto" would pick onnxruntime
    with caplog.at_level(logging.DEBUG, logger="photoclass.prediction.engine"):
        predictions = photoclass.predict(bundle, photos)
    assert len(predictions) == 10 and all(p.error is None for p in predictions)
    assert f"engine auto: PyTorch, since {missing} is not installed" in caplog.text
    with pytest.raises(DependencyError, match=rf"^the onnx engine needs {missing}; install it with: pip"):
        photoclass.predict(bundle, photos, engine="onnx")
    result = CliRunner().invoke(app, ["predict", str(trained_binary), str(photos[0]), "--engine", "onnx"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert " ".join(result.output.split()) == (
        f"error: the onnx engine needs {missing}; install it with: pip install 'photoclass[export]'"
    )


def test_the_graph_is_built_once_and_rebuilt_when_damaged_or_stale(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PHOTOCLASS_CACHE", str(tmp_path))
    monkeypatch.setattr(engine, "_runners", {})
    torch.manual_seed(0)
    model = create_model("small-cnn", 2, 32).eval()
    normalize = Normalize((0.5,) * 3, (0.5,) * 3)
    pixels = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    want = logits_for(model, pixels, normalize)

    def runner(fresh_process: bool = True) -> engine.OnnxRunner:
        if fresh_process:
            monkeypatch.setattr(engine, "_runners", {})
        got = engine.runner_for(model, normalize, CPU_FP32, "onnx", size=32)
        np.testing.assert_allclose(got(pixels), logits_for(model, pixels, normalize), atol=1e-5)
        return got

    first = runner()
    graph, record = first.path, first.path.with_suffix(".json")
    assert graph.parent == cache_root() / "onnx" and sorted(graph.parent.iterdir()) == sorted([graph, record])
    assert runner(fresh_process=False) is first  # the same process: the same session
    exports: list[int] = []
    monkeypatch.setattr(engine, "export_graph", lambda *a, **k: exports.append(1) or export(*a, **k))
    runner()  # a new process loads the file and never runs the model in PyTorch
    assert exports == []
    graph.write_bytes(graph.read_bytes()[:-1] + b"x")  # damaged: exported and checked again
    runner()
    assert exports == [1]
    record.write_text(record.read_text().replace('"onnxruntime": "', '"onnxruntime": "0.'))
    runner()  # checked with another onnxruntime: again
    assert exports == [1, 1]
    with torch.no_grad():  # weights changed in place: a new graph, never the stale one
        next(model.parameters()).mul_(1.5)
    changed = runner(fresh_process=False)
    assert changed.path != first.path and len(exports) == 3
    assert not torch.equal(logits_for(model, pixels, normalize), want)
    # A layer replaced by a new one of the same shape (a new head, say): the same layers'
    # settings and weight versions, other weights: a new graph too.
    head = model[-1][0]
    model[-1][0] = torch.nn.Linear(head.in_features, head.out_features)
    replaced = runner(fresh_process=False)
    assert replaced.path not in (first.path, changed.path) and len(exports) == 4
    # The same layers in a new wrapper (prediction wraps the model anew each call): the same runner.
    wrapped = [
        engine.runner_for(PreLogitsAndLogits(model), normalize, CPU_FP32, "onnx", size=32) for _ in "ab"
    ]
    assert wrapped[0] is wrapped[1] is not replaced and len(exports) == 5


export = engine.export_graph


@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_frozen_layers_in_onnxruntime_give_torchs_logits_and_gradients(tmp_path: Path, ratio: float) -> None:
    """The fine-tune's split: the frozen leading blocks in onnxruntime, the rest in PyTorch,
    also when it trains on smaller photos than it validates on (`train_size_ratio`)."""
    torch.manual_seed(0)
    model = create_model("efficientnet-lite0", 2, 64, pretrained=False).to(memory_format=torch.channels_last)
    trained = model.unfrozen(2)
    model.requires_grad_(False)
    for module in trained:
        module.requires_grad_(True)
    frozen = [m for m in model if all(m is not t for t in trained)]
    model.eval()
    normalize = Normalize((0.5,) * 3, (0.5,) * 3)
    side = round(64 * ratio)
    x = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (4, 3, side, side), dtype=np.uint8))
    pixels = np.random.default_rng(3).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    labels = torch.tensor([0, 1, 1, 0])
    results = {}
    for choice in ("torch", "onnx"):
        cfg = get_model_entry("efficientnet-lite0").resolve(
            TrainConfig(engine=choice, image_size=64, train_size_ratio=ratio)
        )
        forward, validate = _forward(model, model, frozen, normalize, CPU_FP32, cfg)
        logits = forward(x)
        model.zero_grad()
        F.cross_entropy(logits, labels).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results[choice] = logits.detach(), grads, validate(pixels)
        np.testing.assert_array_equal(validate(pixels), results[choice][2])  # again: the kept features
    (l_torch, g_torch, v_torch), (l_onnx, g_onnx, v_onnx) = results["torch"], results["onnx"]
    np.testing.assert_allclose(l_onnx, l_torch, atol=1e-4)
    np.testing.assert_allclose(v_onnx, v_torch, atol=1e-4)
    assert g_onnx.keys() == g_torch.keys() and len(g_torch) > 2
    for name, grad in g_torch.items():
        np.testing.assert_allclose(g_onnx[name], grad, atol=1e-4, rtol=1e-3, err_msg=name)


def test_cli_engine_option(trained_binary: Path, cats_owls_tiny: Path) -> None:
    photo = sorted((cats_owls_tiny / "val" / "cat").iterdir())[0]
    outputs = []
    for choice in ("torch", "onnx", "auto"):
        result = CliRunner().invoke(
            app, ["predict", str(trained_binary), str(photo), "-f", "csv", "--engine", choice]
        )
        assert result.exit_code == 0, result.output
        outputs.append(result.output.splitlines()[1].split(","))
    assert outputs[0][:2] == outputs[1][:2] == outputs[2][:2]  # path and label
    result = CliRunner().invoke(
        app, ["evaluate", str(trained_binary), str(cats_owls_tiny / "val"), "--engine", "x"]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "`engine` must be one of" not in result.output and "--engine must be one of" in result.output
