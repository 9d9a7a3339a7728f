"""l2norm.dask: lazy normalization of a dask.array, locally and on a LocalCluster with two worker
processes over a few hundred MB, checked against NumPy on the workers (only scalars travel)."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="dask[array] not installed")
l2norm = pytest.importorskip("l2norm", reason="the l2norm Python package is not built or installed")
l2norm_dask = pytest.importorskip("l2norm.dask")


def numpy_normalize(x, eps=1e-6):
    return x / np.sqrt(np.sum(x * x, axis=-1, keepdims=True, dtype=np.float64) + eps)


def test_lazy_and_rechunked():
    x = np.random.default_rng(7).standard_normal((1000, 96)).astype(np.float32)
    array = da.from_array(x, chunks=(128, 32))  # last dim split: must be rechunked whole
    y = l2norm_dask.normalize(array, eps=1e-6, eps_mode="add")
    assert isinstance(y, da.Array) and y.dtype == np.float32 and y.chunks[-1] == (96,)
    assert np.array_equal(y.compute(scheduler="synchronous"), l2norm.normalize(x))


def test_out_dtype():
    from l2norm_test_support import requires_out_dtype

    requires_out_dtype()
    x = np.random.default_rng(9).standard_normal((300, 64)).astype(np.float32)
    y = l2norm_dask.normalize(da.from_array(x, chunks=(100, 64)), out_dtype="float16")
    assert y.dtype == np.float16
    assert np.array_equal(y.compute(scheduler="synchronous"), l2norm.normalize(x, out_dtype=np.float16))


def test_options_are_checked_eagerly():
    array = da.zeros((8, 4), chunks=(4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="eps_mode"):
        l2norm_dask.normalize(array, eps_mode="max")
    with pytest.raises(ValueError, match="out"):
        l2norm_dask.normalize(array, out=None)


def test_local_cluster_two_worker_processes():
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed")
    rows, dim = 1 << 19, 128  # 256 MiB of float32 input, generated on the workers
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, memory_limit="2GiB") as cluster, \
            distributed.Client(cluster) as client:
        x = da.random.default_rng(8).standard_normal((rows, dim), chunks=(1 << 16, dim),
                                                       dtype=np.float32)
        y = l2norm_dask.normalize(x)
        error = da.max(da.abs(y - x.map_blocks(numpy_normalize, dtype=np.float32)))
        norms = da.sqrt(da.sum(y.astype(np.float64) ** 2, axis=-1))
        max_error, min_norm, max_norm = client.compute([error, norms.min(), norms.max()], sync=True)
        assert len(client.scheduler_info()["workers"]) == 2
    assert max_error < 1e-6
    assert abs(min_norm - 1) < 1e-5 and abs(max_norm - 1) < 1e-5
