"""Inference engines behind one interface: TensorRT, onnxruntime (TensorRT / CUDA / CPU providers).

Engines are registered by name in ``ENGINES`` (a factory each). ``make_engine`` tries engines in the caller's
order of preference and returns the first that really runs here,
with the reason each skipped one was skipped. An onnxruntime session that silently fell back to another
provider counts as unavailable: the engine named is the engine used. TensorRT engines are built from the
artifact's ONNX on first use and cached per GPU architecture, TensorRT version and precision (artifacts are
immutable, so the cache lives outside them). No ROS here.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from vla_core.registry import Registry

ORT_PROVIDERS = {"onnxruntime-trt": "TensorrtExecutionProvider", "onnxruntime-cuda": "CUDAExecutionProvider",
                 "onnxruntime-cpu": "CPUExecutionProvider"}


class EngineUnavailable(RuntimeError):
    """This engine cannot run here; the message says why (library, provider or GPU missing)."""


class Engine:
    name: str = ""

    @property
    def inputs(self) -> dict[str, tuple[tuple, np.dtype]]:
        """Input name -> (shape, dtype)."""
        raise NotImplementedError

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class OrtEngine(Engine):
    """onnxruntime with one execution provider (plus CPU for the ops a GPU provider does not take)."""

    def __init__(self, onnx_path: Path, name: str = "onnxruntime-cpu", threads: int = 1, fp16: bool = False,
                 cache_dir: Path | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EngineUnavailable("onnxruntime is not installed (pip install onnxruntime or onnxruntime-gpu)") from exc
        provider = ORT_PROVIDERS[name]
        available = ort.get_available_providers()
        if provider not in available:
            raise EngineUnavailable(f"{provider} is not available in this onnxruntime (it has: {', '.join(available)})")
        options = ort.SessionOptions()
        # Threads chosen deliberately: a control loop shares the CPU with the rest of the robot.
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers: list = []
        if name == "onnxruntime-trt":
            cache = Path(cache_dir or default_cache_dir()) / "ort-trt"
            cache.mkdir(parents=True, exist_ok=True)
            providers.append((provider, {"trt_fp16_enable": bool(fp16), "trt_engine_cache_enable": True,
                                         "trt_engine_cache_path": str(cache)}))
            providers.append("CUDAExecutionProvider")
        elif name == "onnxruntime-cuda":
            providers.append(provider)
        providers.append("CPUExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise EngineUnavailable(f"onnxruntime could not load {onnx_path.name} with {provider}: {exc}") from exc
        active = self.session.get_providers()
        if active[0] != provider:
            raise EngineUnavailable(f"onnxruntime fell back from {provider} to {active[0]} (missing CUDA/TensorRT "
                                    "libraries?)")
        self.name = name
        self._inputs = {i.name: (tuple(i.shape), _ort_dtype(i.type)) for i in self.session.get_inputs()}
        self._outputs = [o.name for o in self.session.get_outputs()]

    @property
    def inputs(self):
        return self._inputs

    def run(self, feeds):
        return dict(zip(self._outputs, self.session.run(self._outputs, feeds)))


class TensorRTEngine(Engine):
    """A TensorRT engine (TensorRT 10 API) with device buffers held by torch CUDA tensors."""

    name = "tensorrt"

    def __init__(self, onnx_path: Path, fp16: bool = False, cache_dir: Path | None = None,
                 engine_path: Path | None = None):
        try:
            import tensorrt as trt
            import torch
        except ImportError as exc:
            raise EngineUnavailable(f"TensorRT needs the 'tensorrt' package and CUDA torch ({exc})") from exc
        if not torch.cuda.is_available():
            raise EngineUnavailable("TensorRT needs a CUDA GPU; torch sees none")
        self.trt, self.torch = trt, torch
        self.logger = trt.Logger(trt.Logger.WARNING)
        path = engine_path if engine_path and engine_path.is_file() else None
        path = path or build_tensorrt_engine(onnx_path, fp16=fp16, cache_dir=cache_dir, logger=self.logger)
        runtime = trt.Runtime(self.logger)
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise EngineUnavailable(f"TensorRT could not deserialize {path} (built by another TensorRT version?)")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self._inputs, self._outputs = {}, []
        for i in range(self.engine.num_io_tensors):
            tname = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(tname))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(tname)))
            if self.engine.get_tensor_mode(tname) == trt.TensorIOMode.INPUT:
                self._inputs[tname] = (shape, dtype)
            else:
                self._outputs.append((tname, shape, dtype))
        self.engine_path = path

    @property
    def inputs(self):
        return self._inputs

    def run(self, feeds):
        torch = self.torch
        keep = []
        with torch.cuda.stream(self.stream):
            for tname, (_, dtype) in self._inputs.items():
                t = torch.from_numpy(np.ascontiguousarray(feeds[tname], dtype=dtype)).cuda(non_blocking=True)
                self.context.set_input_shape(tname, tuple(t.shape))
                self.context.set_tensor_address(tname, t.data_ptr())
                keep.append(t)
            outs = {}
            for tname, _, dtype in self._outputs:
                shape = tuple(self.context.get_tensor_shape(tname))
                out = torch.empty(shape, dtype=_torch_dtype(torch, dtype), device="cuda")
                self.context.set_tensor_address(tname, out.data_ptr())
                outs[tname] = out
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed")
        self.stream.synchronize()
        return {k: v.cpu().numpy() for k, v in outs.items()}


def default_cache_dir() -> Path:
    return Path(os.environ.get("VLA_CACHE", Path.home() / ".cache" / "vla"))


def tensorrt_engine_name(onnx_path: Path, fp16: bool) -> str:
    """<onnx sha256 prefix>.<sm_XY>.trt<version>.<fp16|fp32>.engine — an engine only runs where it was built."""
    import tensorrt as trt
    import torch
    major, minor = torch.cuda.get_device_capability()
    digest = hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()[:16]
    return f"{digest}.sm{major}{minor}.trt{trt.__version__}.{'fp16' if fp16 else 'fp32'}.engine"


def build_tensorrt_engine(onnx_path: Path, fp16: bool, cache_dir: Path | None, logger=None) -> Path:
    """Build (or reuse from the cache) a serialized TensorRT engine for this GPU."""
    import tensorrt as trt
    cache = Path(cache_dir or default_cache_dir()) / "tensorrt"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / tensorrt_engine_name(onnx_path, fp16)
    if path.is_file():
        return path
    logger = logger or trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineUnavailable(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineUnavailable(f"TensorRT failed to build an engine from {onnx_path.name}")
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(bytes(serialized))
    os.replace(tmp, path)
    return path


# name -> factory(onnx_path, threads=, fp16=, cache_dir=, engine_path=) -> Engine (EngineUnavailable if it
# cannot run here).
ENGINES: Registry[Callable[..., Engine]] = Registry("engine")


@ENGINES.register("tensorrt")
def _tensorrt(onnx_path: Path, threads: int, fp16: bool, cache_dir: Path | None, engine_path: Path | None) -> Engine:
    return TensorRTEngine(onnx_path, fp16=fp16, cache_dir=cache_dir, engine_path=engine_path)


def _ort(name: str) -> Callable[..., Engine]:
    def factory(onnx_path: Path, threads: int, fp16: bool, cache_dir: Path | None, engine_path: Path | None):
        return OrtEngine(onnx_path, name, threads=threads, fp16=fp16, cache_dir=cache_dir)
    return factory


for _name in ORT_PROVIDERS:
    ENGINES.add(_name, _ort(_name))

# In the order a GPU machine prefers them (the policy node's default 'engines').
ENGINE_NAMES = ("tensorrt", "onnxruntime-trt", "onnxruntime-cuda", "onnxruntime-cpu")


def make_engine(onnx_path: Path, preference: list[str], threads: int = 1, fp16: bool = False,
                cache_dir: Path | None = None, engine_path: Path | None = None) -> tuple[Engine, list[str]]:
    """The first engine in ``preference`` that runs here, and why each earlier one was skipped.

    Raises:
        UnknownName (a ValueError): a name in ``preference`` is no engine (checked before any is tried).
        EngineUnavailable: none of them runs here.
    """
    factories = [(name, ENGINES.get(name)) for name in preference]
    skipped = []
    for name, factory in factories:
        try:
            return factory(onnx_path, threads=threads, fp16=fp16, cache_dir=cache_dir, engine_path=engine_path), skipped
        except EngineUnavailable as exc:
            skipped.append(f"{name}: {exc}")
    raise EngineUnavailable("no engine can run this policy here: " + " | ".join(skipped))


def _ort_dtype(type_name: str) -> np.dtype:
    return np.dtype({"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
                     "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8",
                     "tensor(bool)": "bool"}.get(type_name, "float32"))


def _torch_dtype(torch, dtype: np.dtype):
    return {np.dtype("float32"): torch.float32, np.dtype("float16"): torch.float16, np.dtype("int32"): torch.int32,
            np.dtype("int64"): torch.int64, np.dtype("uint8"): torch.uint8, np.dtype("bool"): torch.bool}[dtype]
