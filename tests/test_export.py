"""`photoclass export`: an ONNX file that onnxruntime runs to PyTorch's probabilities."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import photoclass
from photoclass import exporting
from photoclass.cli import app
from photoclass.data.cache import decode_all
from photoclass.errors import ExportError
from photoclass.prediction.inference import logits_for, probabilities

ort = pytest.importorskip("onnxruntime", reason="pip install 'photoclass[export]'")


@pytest.fixture(scope="module")
def exported(trained_binary: Path, cats_owls_tiny: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("onnx") / "nested" / "model.onnx"
    return photoclass.export(trained_binary, out, [cats_owls_tiny / "val"])


def test_onnx_gives_pytorchs_probabilities_for_real_photos(
    exported, trained_binary: Path, cats_owls_tiny: Path
) -> None:
    assert exported.path.is_file() and exported.size_bytes == exported.path.stat().st_size
    assert exported.checked == 20 and exported.same_labels == 20 and exported.max_difference < 1e-4
    bundle = photoclass.load_model(trained_binary)
    photos = sorted((cats_owls_tiny / "val").rglob("*.jpg"))
    pixels = np.ascontiguousarray(decode_all(photos, bundle.image_size, use_cache=False).images)
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    want = probabilities(logits_for(bundle.model, pixels, bundle.normalize), bundle.temperature)
    for batch in (pixels[:1], pixels[1:4], pixels):  # any batch size
        got = session.run(None, {"pixels": batch})[0]
        np.testing.assert_allclose(got, want[: len(batch)] if len(batch) != 3 else want[1:4], atol=1e-4)
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["photoclass.classes"]) == ["cat", "owl"]
    assert meta["photoclass.image_size"] == "48" and meta["photoclass.resize"] == "squash"


def test_a_failed_check_writes_nothing(trained_binary: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(exporting, "TOLERANCE", -1.0)
    with pytest.raises(ExportError, match="differs from PyTorch"):
        photoclass.export(trained_binary, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_without_the_export_extra_the_error_says_what_to_install(trained_binary: Path, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    result = CliRunner().invoke(app, ["export", str(trained_binary), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1
    assert "ONNX export needs onnxscript; install it with: pip install 'photoclass[export]'" in result.output
    assert "Traceback" not in result.output


def test_cli_export(trained_binary: Path, cats_owls_tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    args = ["export", str(trained_binary), "--out", str(out), "--check", str(cats_owls_tiny / "val" / "owl")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"wrote {out}" in text and "on 10 photos" in text and "same label 10/10" in text
