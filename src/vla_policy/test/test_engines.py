"""Engines on a real ONNX graph exported from torch (a small MLP policy head)."""
import numpy as np
import pytest
import torch

from vla_policy.engines import EngineUnavailable, OrtEngine, make_engine


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    model.eval()
    path = tmp_path_factory.mktemp("onnx") / "policy.onnx"
    example = torch.randn(1, 6)
    torch.onnx.export(model, (example,), str(path), input_names=["state"], output_names=["action"],
                      dynamo=False, opset_version=17)
    return path, model


def test_cpu_engine_matches_torch(onnx_model):
    path, model = onnx_model
    engine = OrtEngine(path, "onnxruntime-cpu", threads=1)
    x = np.random.default_rng(0).standard_normal((1, 6)).astype(np.float32)
    out = engine.run({"state": x})["action"]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert engine.inputs["state"][1] == np.float32


def test_preference_falls_through_to_what_runs_here_with_reasons(onnx_model):
    path, _ = onnx_model
    import onnxruntime as ort
    engine, skipped = make_engine(path, ["tensorrt", "onnxruntime-cuda", "onnxruntime-cpu"])
    if "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available():
        pytest.skip("a CUDA machine: the GPU engines are exercised by test_gpu_engines")
    assert engine.name == "onnxruntime-cpu"
    assert len(skipped) == 2
    assert skipped[0].startswith("tensorrt: ") and skipped[1].startswith("onnxruntime-cuda: ")


def test_unknown_and_impossible_preferences(onnx_model):
    path, _ = onnx_model
    with pytest.raises(ValueError, match="unknown engine 'gpu'"):
        make_engine(path, ["gpu"])
    if not torch.cuda.is_available():
        with pytest.raises(EngineUnavailable, match="no engine can run this policy here"):
            make_engine(path, ["tensorrt"])


def test_gpu_engines(onnx_model):
    """TensorRT and the onnxruntime GPU providers, where the machine has them (never faked)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    path, model = onnx_model
    x = np.random.default_rng(1).standard_normal((1, 6)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    ran = []
    for name in ("onnxruntime-cuda", "onnxruntime-trt", "tensorrt"):
        try:
            engine, _ = make_engine(path, [name])
        except EngineUnavailable as exc:
            print(f"{name} unavailable: {exc}")
            continue
        np.testing.assert_allclose(engine.run({"state": x})["action"], ref, atol=1e-3)
        ran.append(name)
    if not ran:
        pytest.skip("CUDA is present but neither onnxruntime-gpu providers nor TensorRT are installed")
