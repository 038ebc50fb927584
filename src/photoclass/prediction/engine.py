"""Inference engines: what computes a network that only infers (prediction, evaluation,
serving, the probe's frozen features, the frozen layers of a fine-tune).

- "torch": the PyTorch module itself, on its device, in its arithmetic.
- "onnx": onnxruntime on the module exported as an ONNX graph (CPU, float32). On CPUs it
  computes the same float32 network 1.7-2.5x faster than PyTorch eager at batch 32, and at
  batch 1 too (EfficientNet-Lite0 on an AVX2-only Zen 1, on an AVX-512 Zen 4; see
  bench/README.md): its graph optimiser folds batch norm into the convolutions and fuses
  activations, and its depthwise kernels are faster than oneDNN's.
- "auto": onnxruntime where it helps and can be used: the model runs on the CPU in float32
  and onnxruntime is installed. PyTorch elsewhere: on GPUs, and where the model computes in
  bf16 natively (there PyTorch's bf16 is as fast or faster, and predicting in another
  arithmetic would change the numbers validation measured). Falling back is logged at debug.

A graph is exported once per network and weights and kept in the user cache
(`<cache>/onnx/<hash>.onnx`, the hash of the layers, their weights, the preprocessing and
the input size), so later runs only load it. When exported it is checked against PyTorch on
two images (outputs within `TOLERANCE`, relative to their size; else "auto" falls back to
PyTorch and "onnx" is an `ExportError`), and a record beside it (`<hash>.json`) keeps the
file's SHA-256 and the onnxruntime version it was checked with: a file that does not match
its record, or a newer onnxruntime, is exported and checked again. So a run with a cached
graph never runs the model in PyTorch at all.

Every runner takes a batch of (N, H, W, 3) uint8 pixels (the decoded cache's layout, the
exported file's input) and returns float32 outputs on the CPU.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import logging
import os
import sys
import threading
import warnings
import weakref
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from photoclass.data.cache import cache_root, evict
from photoclass.data.preprocess import Normalize
from photoclass.errors import ConfigError, DependencyError, ExportError
from photoclass.runtime import Compute, check_engine

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # largest difference allowed between onnxruntime's and PyTorch's outputs
GRAPH_CACHE_GB = 2.0  # graphs kept in the user cache, least recently used deleted first
_FORMAT = "photoclass-onnx-graph v2"  # bump when the exported graph changes for the same module


class Runner(Protocol):
    """One batch of (N, H, W, 3) uint8 pixels -> float32 outputs on the CPU."""

    name: str

    def __call__(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor: ...


class Pixels(nn.Module):
    """(N, H, W, 3) uint8 pixels -> `module`'s output: the preprocessing and the network in
    one graph, so a consumer of the exported file needs only an image library."""

    def __init__(self, module: nn.Module, normalize: Normalize) -> None:
        super().__init__()
        self.module, self.normalize = module, normalize

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module(self.normalize(pixels.permute(0, 3, 1, 2)))


class TorchRunner:
    """The module itself (in eval mode), on `compute.device`, in `compute.precision`. The
    uint8 pixels travel to the device (a quarter of the bytes of float32) and are normalised
    there."""

    name = "torch"

    def __init__(self, module: nn.Module, normalize: Normalize, compute: Compute) -> None:
        self.module, self.normalize, self.compute = module, normalize, compute

    @torch.inference_mode()
    def __call__(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        # Arrays are copied: the decoded cache is a read-only memory map.
        chunk = pixels if isinstance(pixels, torch.Tensor) else torch.from_numpy(np.array(pixels))
        if self.compute.pin_memory:
            chunk = chunk.pin_memory()
        with self.compute.autocast():
            x = self.normalize(self.compute.to_device(chunk).permute(0, 3, 1, 2))
            return self.module(x).float().cpu()


class OnnxRunner:
    """onnxruntime on the exported graph of `Pixels(module, normalize)`, `CHUNK` photos per
    call whatever the batch."""

    name = "onnx"
    # EfficientNet-Lite0 costs 11.5 ms of CPU a photo in calls of 1-2 photos, 16.4 ms in calls
    # of 32: the expanded activations of a few photos stay in the caches (Zen 4, 2 threads;
    # seed-cnn and small-cnn cost within 10% either way). Larger batches still pay elsewhere:
    # fewer Python round trips, and larger GPU kernels for PyTorch.
    CHUNK = 2

    def __init__(self, session: Any, path: Path) -> None:
        self.session, self.path = session, path

    def __call__(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        array = pixels.numpy() if isinstance(pixels, torch.Tensor) else pixels
        array = np.ascontiguousarray(array, dtype=np.uint8)
        out = [
            self.session.run(None, {"pixels": array[i : i + self.CHUNK]})[0]
            for i in range(0, len(array), self.CHUNK)
        ]
        return torch.from_numpy(np.concatenate(out))


def runner_for(
    module: nn.Module,
    normalize: Normalize,
    compute: Compute,
    engine: str = "auto",
    *,
    size: int,
    threads: int | None = None,
) -> Runner:
    """The runner for `module` (which takes normalised (N, 3, size, size) input) under
    `engine` ("auto" | "torch" | "onnx", see the module docstring). `threads`: how many threads
    one call of an onnxruntime runner uses (default: as many as PyTorch); PyTorch's own are
    set for the whole process (`torch.set_num_threads`)."""
    if check_engine(engine) == "torch":
        return TorchRunner(module, normalize, compute)
    reason = _onnx_unusable(compute, explicit=engine == "onnx")
    if reason is not None:
        log.debug("engine auto: PyTorch, since %s", reason)
        return TorchRunner(module, normalize, compute)
    try:
        return _onnx_runner(module, normalize, size, threads or torch.get_num_threads())
    except (ExportError, DependencyError) as e:
        if engine == "onnx":
            raise
        log.debug("engine auto: PyTorch, since %s", e)
        return TorchRunner(module, normalize, compute)


def _onnx_unusable(compute: Compute, *, explicit: bool) -> str | None:
    """Why onnxruntime cannot or should not run a model computing under `compute` (None: it
    can). What `engine="onnx"` cannot do is an error; "auto" just falls back."""
    if compute.device.type != "cpu":
        if explicit:
            raise ConfigError(
                f'`engine="onnx"` runs on the CPU, but the model is on {compute.device.type}; '
                'use `device="cpu"` or `engine="torch"`'
            )
        return f"the model runs on {compute.device.type}"
    missing = next((name for name in ("onnxruntime", "onnx") if not _installed(name)), None)
    if missing:
        if explicit:
            raise DependencyError(
                f"the onnx engine needs {missing}; install it with: pip install 'photoclass[export]'",
                extra="export",
            )
        return f"{missing} is not installed"
    if compute.precision != "fp32" and not explicit:
        return f"the model computes in {compute.precision}, natively on this CPU"
    return None


def _installed(name: str) -> bool:
    """Whether `name` can be imported (without importing it: start-up time)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    return _findable(name)


@functools.cache  # searching sys.path stats files: 0.2 ms, at every batch the server runs
def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


# -- building, caching and checking graphs ---------------------------------------------------

# One runner per network and weights in a process: the server predicts batch after batch, and
# prediction may wrap the same model anew each call. Keyed by the network's first weight (the
# entry goes when it does), then its layers (their types, and their weights by identity: a
# layer replaced by a new one is a new network); a weight changed in place bumps its version
# counter, and the runner is rebuilt. Not `repr(module)`, which names each layer's settings
# too: it took 2 ms per call for EfficientNet-Lite0, a tenth of a forward pass of two photos.
_runners: dict[int, dict[tuple, tuple[tuple, OnnxRunner]]] = {}
_lock = threading.Lock()


def _onnx_runner(module: nn.Module, normalize: Normalize, size: int, threads: int) -> OnnxRunner:
    layers, tensors = [], []
    for m in module.modules():
        own = [t for t in (*m._parameters.values(), *m._buffers.values()) if t is not None]
        layers.append((type(m), tuple(map(id, own))))
        tensors += own
    key = (tuple(layers), repr(normalize), size, threads)
    versions = tuple(t._version for t in tensors)
    with _lock:
        memo: dict[tuple, tuple[tuple, OnnxRunner]] = {}
        if tensors:
            anchor = tensors[0]
            if id(anchor) not in _runners:
                weakref.finalize(anchor, _runners.pop, id(anchor), None)
            memo = _runners.setdefault(id(anchor), {})
        known = memo.get(key)
        if known is not None and known[0] == versions:
            return known[1]
        runner = _build_runner(Pixels(module, normalize), size, threads)
        memo[key] = (versions, runner)
        return runner


def _build_runner(wrapper: Pixels, size: int, threads: int) -> OnnxRunner:
    """An onnxruntime session on `wrapper`'s cached graph when that file is the one checked
    against PyTorch with this onnxruntime version (its `.json` record says so); else export
    the graph, check it, and cache it with its record."""
    folder = cache_root() / "onnx"
    path = folder / f"{_graph_key(wrapper, size)}.onnx"
    record = path.with_suffix(".json")
    ort_version = _onnxruntime().__version__
    try:
        graph = path.read_bytes()
        checked = json.loads(record.read_text())
        if checked == {"sha256": hashlib.sha256(graph).hexdigest(), "onnxruntime": ort_version}:
            os.utime(path)  # recently used: evicted last
            return OnnxRunner(open_session(graph, threads), path)
    except (OSError, ValueError):
        pass  # not cached yet, or its record is missing or damaged
    except Exception as e:  # noqa: BLE001  (onnxruntime's own error types)
        log.debug("cached graph %s does not load (%s)", path, str(e).splitlines()[0])
    modes = [(m, m.training) for m in wrapper.modules()]  # put back exactly as they were
    wrapper.eval()
    try:
        graph = export_graph(wrapper, size)
        session = open_session(graph, threads)
        pixels = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
        with torch.inference_mode():
            want = wrapper(torch.from_numpy(pixels)).float().cpu().numpy()
    finally:
        for m, training in modes:
            m.training = training
    got = session.run(None, {"pixels": pixels})[0]
    difference = float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max()))
    if got.shape != want.shape or not difference <= TOLERANCE:
        raise ExportError(
            f"onnxruntime does not compute what PyTorch computes for {type(wrapper.module).__name__} "
            f'(differs by {difference:.2g}, over {TOLERANCE:g}); use `engine="torch"`, or update torch/onnxruntime'
        )
    folder.mkdir(parents=True, exist_ok=True)
    part = f".{os.getpid()}.{threading.get_ident()}.part"  # then renamed: never half a file
    for target, data in (
        (path, graph),
        (
            record,
            json.dumps({"sha256": hashlib.sha256(graph).hexdigest(), "onnxruntime": ort_version}).encode(),
        ),
    ):
        tmp = target.with_name(target.name + part)
        tmp.write_bytes(data)
        os.replace(tmp, target)
    evict(folder, keep=path, limit_gb=GRAPH_CACHE_GB, pattern="*.onnx")
    log.debug("exported %s", path)
    return OnnxRunner(session, path)


def _graph_key(wrapper: Pixels, size: int) -> str:
    """A hash of what the graph computes: every layer's kind and settings, in order, and
    every weight, the preprocessing, the input size, and the exporter's version."""
    digest = hashlib.sha256(f"{_FORMAT}\0{torch.__version__}\0{size}\0{wrapper.normalize!r}".encode())
    for name, m in wrapper.module.named_modules():
        digest.update(f"\0{name}\0{type(m).__qualname__}({m.extra_repr()})".encode())
        for key, t in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]:
            data = t.detach().cpu().contiguous().reshape(-1)
            digest.update(f"\0{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
            digest.update(data.view(torch.uint8).numpy())
    return digest.hexdigest()[:24]


def export_graph(module: nn.Module, size: int, output: str = "outputs") -> bytes:
    """`module` (in eval mode, taking (N, size, size, 3) uint8 pixels) as ONNX bytes, the batch dimension
    free. PyTorch's TorchScript exporter first: it exports EfficientNet-Lite0 in ~1.5 s where
    the torch.export-based one takes 15-20 s on 2 cores (and 80 s under load). It is
    deprecated, so where it is gone or fails, the torch.export-based one."""
    example = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                buffer,
                dynamo=False,
                input_names=["pixels"],
                output_names=[output],
                dynamic_axes={"pixels": {0: "batch"}, output: {0: "batch"}},
            )
        graph = buffer.getvalue()
    except Exception as e:  # noqa: BLE001  (whatever the deprecated exporter raises, try the other)
        log.debug("TorchScript ONNX export failed (%s); using torch.export", str(e).splitlines()[0])
        graph = _dynamo_export(module, example, output)
    return _without_omitted_inputs(graph)


def _without_omitted_inputs(graph: bytes) -> bytes:
    """`graph` without the empty names an exporter writes for optional inputs left out at the
    end of a node's inputs (the TorchScript one for Pad's constant value). onnxruntime folds a Pad into the
    convolution after it only when every input it has is a constant: EfficientNet-Lite0's five
    strided convolutions ("same" padding) each ran a Pad and two layout reorders, ~25% of its
    forward pass (bench/README.md)."""
    import onnx

    model = onnx.load_from_string(graph)
    for node in model.graph.node:
        while node.input and not node.input[-1]:
            node.input.pop()
    return model.SerializeToString()


def _dynamo_export(module: nn.Module, example: torch.Tensor, output: str) -> bytes:
    try:
        import onnxscript  # noqa: F401  (torch.export's ONNX exporter needs it)
    except ImportError as e:
        raise DependencyError(
            f"ONNX export needs {e.name}; install it with: pip install 'photoclass[export]'", extra="export"
        ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=["pixels"],
                output_names=[output],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                external_data=False,
                verbose=False,
            )
    except Exception as e:  # noqa: BLE001  (both exporters failed: the model cannot be exported)
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ExportError(
            f'{type(module).__name__} cannot be exported to ONNX ({reason}); use `engine="torch"`'
        ) from None
    return program.model_proto.SerializeToString()


def open_session(graph: Path | bytes, threads: int | None = None) -> Any:
    """An onnxruntime CPU session using `threads` threads (default: as many as PyTorch, which
    follows OMP_NUM_THREADS), whose idle threads sleep rather than spin: the machines are
    shared, and in training augmentation workers need the cores between batches."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: its warnings are about its own internals
    source = os.fspath(graph) if isinstance(graph, Path) else graph
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
