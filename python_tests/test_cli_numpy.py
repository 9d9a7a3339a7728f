"""Round trips of the l2norm CLI against files written and read by NumPy itself, checked
against a float64 reference computed from the same (already rounded) inputs."""

import math
import os
import subprocess

import numpy as np
import pytest

CLI = os.environ.get("L2NORM_CLI", "l2norm")


def run(*args, expect=0):
    result = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert result.returncode == expect, result.stderr
    return result


def reference(x, eps=1e-6, scale=1.0, mode="add"):
    rows = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    norm_sq = np.sum(rows * rows, axis=1, keepdims=True)
    denominator = np.sqrt(norm_sq + eps) if mode == "add" else np.maximum(np.sqrt(norm_sq), eps)
    return (rows / denominator * scale).reshape(x.shape)


def ulp_errors(got, expected, dtype):
    """Distance in ulps of `dtype` at the expected value (the subnormal spacing near zero)."""
    spacing = np.spacing(np.abs(expected).astype(dtype)).astype(np.float64)
    return np.abs(got.astype(np.float64) - expected) / spacing


def f32_budget(dim, scaled=False):
    return (math.ceil(math.log2(dim)) + 2) / 2 + 2.5 + (1 if scaled else 0)


def save(path, array, version):
    with open(path, "wb") as handle:
        np.lib.format.write_array(handle, array, version=version)


def random_rows(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * rng.lognormal(size=shape[:-1] + (1,))).astype(dtype)


SHAPES = [(300,), (120, 64), (4, 25, 96)]


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("descr", ["<f4", "<f2", "<f8"])
def test_npy_round_trip(tmp_path, version, shape, descr):
    x = random_rows(shape, descr, seed=len(shape) * 7 + version[0])
    save(tmp_path / "in.npy", x, version)
    run("normalize", tmp_path / "in.npy", "-o", tmp_path / "out.npy", "--chunk-size", "3000", "-q")
    y = np.load(tmp_path / "out.npy")
    assert y.shape == x.shape
    if descr == "<f2":
        assert y.dtype == np.float16
        assert ulp_errors(y, reference(x), np.float16).max() <= 1.0
    else:
        assert y.dtype == np.float32  # f64 is computed in f32 and written as f32
        expected = reference(x.astype(np.float32))
        assert ulp_errors(y, expected, np.float32).max() <= f32_budget(shape[-1])


def test_output_header_is_aligned_and_version_1(tmp_path):
    np.save(tmp_path / "in.npy", random_rows((10, 7), "<f4", 1))
    run("normalize", tmp_path / "in.npy", "-o", tmp_path / "out.npy", "-q")
    with open(tmp_path / "out.npy", "rb") as handle:
        assert np.lib.format.read_magic(handle) == (1, 0)
        np.lib.format.read_array_header_1_0(handle)
        assert handle.tell() % 64 == 0


def test_f32_to_f16_with_scale_and_clamp(tmp_path):
    x = random_rows((200, 128), "<f4", 3)
    np.save(tmp_path / "in.npy", x)
    run("normalize", tmp_path / "in.npy", "-o", tmp_path / "out.npy", "--out-dtype", "f16",
        "--eps-mode", "clamp", "--eps", "1e-3", "--scale", "0.25", "-q")
    y = np.load(tmp_path / "out.npy")
    assert y.dtype == np.float16
    expected = reference(x, eps=1e-3, scale=0.25, mode="clamp")
    assert ulp_errors(y, expected, np.float16).max() <= 1.0


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(values):
    bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def test_bf16_as_saved_by_ml_dtypes(tmp_path):
    """ml_dtypes bfloat16 arrays are saved with descr '<V2'; we write them the same way."""
    bits = f32_to_bf16_bits(random_rows((64, 48), "<f4", 4))
    with open(tmp_path / "in.npy", "wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<V2", "fortran_order": False, "shape": bits.shape})
        handle.write(bits.tobytes())
    result = run("normalize", tmp_path / "in.npy", "-o", tmp_path / "out.npy", expect=2)
    assert "--in-dtype bf16" in result.stderr
    run("normalize", tmp_path / "in.npy", "-o", tmp_path / "out.npy", "--in-dtype", "bf16", "-q")
    y = np.load(tmp_path / "out.npy")
    assert y.dtype == np.dtype("V2") and y.shape == bits.shape
    with open(tmp_path / "out.npy", "rb") as handle:
        np.lib.format.read_magic(handle)
        assert np.lib.format.read_array_header_1_0(handle)[2] == np.dtype("<V2")
    got = bf16_to_f32(y.view(np.uint16))
    expected = reference(bf16_to_f32(bits))
    ulp = np.spacing(bf16_to_f32(f32_to_bf16_bits(np.abs(expected)))).astype(np.float64) * 2**16
    assert (np.abs(got - expected) / ulp).max() <= 1.0


def test_fortran_order_is_rejected(tmp_path):
    np.save(tmp_path / "in.npy", np.asfortranarray(random_rows((8, 5), "<f4", 5)))
    result = run("normalize", tmp_path / "in.npy", "-o", tmp_path / "out.npy", expect=2)
    assert result.stderr.startswith(f"l2norm: error: {tmp_path / 'in.npy'}: fortran_order is True")
    assert sorted(os.listdir(tmp_path)) == ["in.npy"]


def write_fvecs(path, rows):
    rows = np.asarray(rows, dtype="<f4")
    dims = np.full((rows.shape[0], 1), rows.shape[1], dtype="<i4")
    np.hstack([dims.view("<f4"), rows]).tofile(path)


def read_fvecs(path):
    raw = np.fromfile(path, dtype="<i4")
    dim = raw[0]
    records = raw.reshape(-1, dim + 1)
    assert (records[:, 0] == dim).all()
    return records[:, 1:].view("<f4")


def test_fvecs_round_trip(tmp_path):
    x = random_rows((500, 100), "<f4", 6)
    write_fvecs(tmp_path / "in.fvecs", x)
    run("normalize", tmp_path / "in.fvecs", "-o", tmp_path / "out.fvecs", "--chunk-size", "4K", "-q")
    y = read_fvecs(tmp_path / "out.fvecs")
    assert ulp_errors(y, reference(x), np.float32).max() <= f32_budget(100)
    run("normalize", tmp_path / "in.fvecs", "-o", tmp_path / "out.npy", "-q")
    assert np.array_equal(np.load(tmp_path / "out.npy"), y)


def test_sample_file_from_the_readme(tmp_path):
    sample = os.path.join(os.path.dirname(__file__), "..", "data", "sample_embeddings.npy")
    result = run("normalize", sample, "-o", tmp_path / "out.npy")
    assert "normalized 1000 rows x 384" in result.stdout
    norms = np.linalg.norm(np.load(tmp_path / "out.npy").astype(np.float64), axis=1)
    assert np.abs(norms - 1).max() < 1e-5
