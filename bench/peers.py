#!/usr/bin/env python3
"""l2norm and its peers on the same arrays, in one process, with the same timing method.

  python3 bench/peers.py [--shapes 32x128bf16,524288x128f32,...] [--no-backward] [--no-compile]
  python3 bench/peers.py --cpu [--shapes ...] [--max-mib 4096]

CUDA (default): l2norm through its Python package (torch.ops.l2norm, the op a PyTorch user calls),
F.normalize, the seed formula x / sqrt(sum(x*x) + eps) under torch.compile and
flash-linear-attention's l2norm (fla-core; Python and Triton, found on sys.path, PYTHONPATH,
$L2NORM_FLA_PATH, .carry/fla or .ab/fla: `bench/fetch_fla.sh DIR` fills such a folder), forward and
backward:
  fwd: y = op(x);
  bwd: dx from dy and what the forward saved -- l2norm's l2_norm_backward(dy, y, rstd), fla's
       l2norm_bwd(y, rstd, dy), and autograd (torch.autograd.grad with the graph kept) through
       F.normalize and through the compiled formula.
Each is compared with a device-to-device copy of as many bytes measured in the same run (fwd reads
x and writes y; bwd reads two tensors of the shape and writes one, so its copy moves 1.5 times the
tensor's bytes): ratio = copy time / op time (1.00 = at the memory floor). Shapes whose bytes
exceed the L2 cache are timed with L2 flushed before every run (median of 30); smaller ones by
replaying a CUDA graph of 200 calls (median of 20 replays). Shapes: l2norm-bench's forward list
(bench/cuda/l2norm_bench.cpp) and the backward shapes.

--cpu: l2norm.normalize against NumPy (x / np.linalg.norm(x, axis=-1, keepdims=True)) and FAISS's
normalize_L2 (where importable) on the same float32 arrays, each writing a preallocated output (FAISS
in place), against np.copyto; median of repeated runs.

Prints one markdown table; a peer that cannot run a shape is reported as an HTML comment
(<!-- name shape: error -->) and its cell as n/a. bench/make_results.py reads this output.
"""
import argparse
import contextlib
import importlib
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EPS = 1e-6
# l2norm-bench's forward list, then the backward shapes not in it.
SHAPES = [
    (32, 128, "bf16"), (2048, 128, "bf16"), (65536, 128, "bf16"), (524288, 128, "bf16"),
    (524288, 128, "f32"), (1000000, 768, "f32"), (100000, 4096, "bf16"), (65536, 100, "f32"),
    (4096, 1000, "bf16"), (64, 65536, "f32"), (8, 1048576, "f32"),
    (512, 131072, "f32"), (4096, 32768, "bf16"), (4096, 20000, "f32"), (2048, 65536, "bf16"),
    (65536, 128, "f32"),
]
BACKWARD_SHAPES = [(524288, 128, "bf16"), (65536, 128, "f32"), (100000, 4096, "bf16")]


def parse_shapes(text):
    """'32x128bf16,8x1048576f32' -> [(32, 128, 'bf16'), (8, 1048576, 'f32')]."""
    shapes = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        rows, rest = item.split("x", 1)
        digits = len(rest) - len(rest.lstrip("0123456789"))
        shapes.append((int(rows), int(rest[:digits]), rest[digits:]))
    return shapes


def import_l2norm():
    """The installed package, else the module of a build tree (build/device from device_run.sh,
    build from the default preset)."""
    try:
        return importlib.import_module("l2norm")
    except ImportError:
        for build in ("build/device/python", "build/python"):
            if (ROOT / build / "l2norm").is_dir():
                sys.path.insert(0, str(ROOT / build))
                return importlib.import_module("l2norm")
        raise


def import_fla():
    """flash-linear-attention's l2norm module, or the reason it is not importable."""
    for folder in (os.environ.get("L2NORM_FLA_PATH"), ROOT / ".carry" / "fla", ROOT / ".ab" / "fla"):
        if folder and (Path(folder) / "fla").is_dir() and str(folder) not in sys.path:
            sys.path.append(str(folder))
    try:
        return importlib.import_module("fla.modules.norm.l2norm"), None
    except Exception as error:  # not installed, or no Triton for this device
        try:
            return importlib.import_module("fla.modules.l2norm"), None  # older fla layouts
        except Exception:
            return None, f"{type(error).__name__}: {error}"


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def shape_label(rows, dim, dtype):
    return f"{rows} x {dim} {dtype}"


# ---- CUDA ----

class CudaTimer:
    def __init__(self, torch):
        self.torch = torch
        self.l2_bytes = torch.cuda.get_device_properties(0).L2_cache_size
        self.flush = torch.empty(4 * self.l2_bytes, dtype=torch.uint8, device="cuda")
        self.side = torch.cuda.Stream()  # warm-ups before a capture, one stream for all

    def large(self, moved_bytes):
        return moved_bytes > self.l2_bytes

    def flushed_median_us(self, fn, runs=30):
        torch = self.torch
        fn()
        times = []
        for i in range(runs):
            self.flush.fill_(i & 0xff)
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) * 1000.0)
        return median(times)

    def graph_median_us(self, fn, per_graph=200, replays=20):
        torch = self.torch
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(self.side)
        graph = torch.cuda.CUDAGraph()
        # Captured on the side stream, where the autograd peers' forwards ran (backward_stream):
        # their backward kernels run on the forward's stream, which must be the capture stream.
        with torch.cuda.graph(graph, stream=self.side):
            for _ in range(per_graph):
                fn()
        graph.replay()
        times = []
        for _ in range(replays):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) * 1000.0 / per_graph)
        del graph
        return median(times)

    def time_us(self, fn, moved_bytes):
        return self.flushed_median_us(fn) if self.large(moved_bytes) else self.graph_median_us(fn)

    def backward_stream(self):
        """The stream to run autograd forwards on: the capture stream."""
        return self.torch.cuda.stream(self.side)

    def synchronize(self):
        self.torch.cuda.synchronize()


class CpuTorchTimer:
    """The CUDA table's methods on CPU tensors with a wall clock: checks the script's torch path
    where no GPU is (the figures mean nothing for the GPU)."""

    def time_us(self, fn, moved_bytes, runs=5):
        fn()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e6)
        return median(times)

    def large(self, moved_bytes):
        return False

    def backward_stream(self):
        return contextlib.nullcontext()

    def synchronize(self):
        pass


def cuda_main(args):
    import torch
    import torch.nn.functional as F

    l2norm = import_l2norm()
    import l2norm.torch as l2norm_torch

    fla, fla_missing = import_fla()
    if args.torch_cpu and fla is not None:
        # fla's kernels are Triton's, which run on CUDA tensors only.
        fla, fla_missing = None, "Triton kernels need CUDA tensors (--torch-cpu)"
    device = "cpu" if args.torch_cpu else "cuda"
    timer = CpuTorchTimer() if args.torch_cpu else CudaTimer(torch)
    dtypes = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}

    def seed_formula(x):
        return x / torch.sqrt((x * x).sum(-1, keepdim=True) + EPS)

    # One specialization per shape and dtype: raise dynamo's recompile limit above the number of
    # shapes, or the last shapes would silently fall back to eager.
    torch._dynamo.config.recompile_limit = 256
    compiled_seed = torch.compile(seed_formula, dynamic=False)

    def saved(name, rows, dim, forward):
        """What a peer's forward saves for its backward, or None (reported) where it fails."""
        try:
            return forward()
        except Exception as error:
            message = " ".join(str(error).split())[:300]
            print(f"<!-- {name} bwd {rows}x{dim}: {type(error).__name__}: {message} -->")
            return None

    if args.torch_cpu:
        title = f"peers on the CPU (script check, not a GPU figure), torch {torch.__version__}"
    else:
        title = f"peers on {torch.cuda.get_device_properties(0).name}, torch {torch.__version__}"
    print(f"# {title}, l2norm {l2norm.__version__}, "
          f"fla {getattr(sys.modules.get('fla'), '__version__', 'not importable')}\n")
    if fla is None:
        print(f"<!-- fla: not importable ({fla_missing}); set L2NORM_FLA_PATH or fill .carry/fla "
              "with bench/fetch_fla.sh -->")
    print("| shape (rows x dim, dtype) | pass | method | copy us | l2norm us (ratio) | "
          "F.normalize us (ratio) | compiled formula us (ratio) | fla us (ratio) |")
    print("|---|---|---|---|---|---|---|---|")
    for rows, dim, dtype_name in args.shapes:
        dtype = dtypes[dtype_name]
        label = shape_label(rows, dim, dtype_name)
        x = torch.randn(rows, dim, device=device, dtype=torch.float32).to(dtype)
        nbytes = x.numel() * x.element_size()
        if not args.torch_cpu:
            l2norm_torch.prewarm(dtype, dim, eps=EPS, backward=not args.no_backward)
        passes = ["fwd"] + ([] if args.no_backward else ["bwd"])
        for which in passes:
            results = {}
            if which == "fwd":
                out = torch.empty_like(x)
                moved = 2 * nbytes
                candidates = {
                    "copy": lambda: out.copy_(x),
                    "l2norm": lambda: l2norm_torch.l2norm(x, EPS),
                    "normalize": lambda: F.normalize(x, dim=-1, eps=EPS),
                    "compiled": None if args.no_compile else (lambda: compiled_seed(x)),
                    "fla": None if fla is None else (lambda: fla.l2norm(x, EPS)),
                }
            else:
                # dy, y and rstd as a training step has them; each peer's saved state is made once.
                dy = torch.randn_like(x)
                y, rstd = torch.ops.l2norm.l2_norm_with_rstd(x, EPS)
                # The copy reads and writes 1.5 tensors' bytes: 3 tensors moved, as the backward.
                half = torch.empty(nbytes * 3 // 2, dtype=torch.uint8, device=device)
                half_out = torch.empty_like(half)
                moved = 3 * nbytes
                leaf = x.detach().requires_grad_()
                with timer.backward_stream():
                    y_normalize = F.normalize(leaf, dim=-1, eps=EPS)
                    y_compiled = None if args.no_compile else saved(
                        "compiled", rows, dim, lambda: compiled_seed(leaf))
                timer.synchronize()
                fla_state = None if fla is None else saved(
                    "fla", rows, dim, lambda: fla.l2norm_fwd(x, EPS))
                candidates = {
                    "copy": lambda: half_out.copy_(half),
                    "l2norm": lambda: torch.ops.l2norm.l2_norm_backward(dy, y, rstd, EPS),
                    "normalize": lambda: torch.autograd.grad(y_normalize, leaf, dy,
                                                             retain_graph=True),
                    "compiled": None if y_compiled is None else (
                        lambda: torch.autograd.grad(y_compiled, leaf, dy, retain_graph=True)),
                    "fla": None if fla_state is None else (
                        lambda: fla.l2norm_bwd(fla_state[0], fla_state[1], dy, EPS)),
                }
            for name, fn in candidates.items():
                if fn is None:
                    results[name] = None
                    continue
                try:
                    fn()
                    if not args.torch_cpu:
                        torch.cuda.synchronize()
                    results[name] = timer.time_us(fn, moved)
                except Exception as error:  # a peer that cannot run a shape is reported
                    results[name] = None
                    message = " ".join(str(error).split())[:300]
                    print(f"<!-- {name} {which} {rows}x{dim}: {type(error).__name__}: {message} -->")
            copy_us = results["copy"]

            def cell(name):
                value = results[name]
                if value is None or copy_us is None:
                    return "n/a"
                return f"{value:.2f} ({copy_us / value:.2f})"

            method = "L2 flushed" if timer.large(moved) else (
                "wall clock" if args.torch_cpu else "graph replay")
            copy_cell = "n/a" if copy_us is None else f"{copy_us:.2f}"
            print(f"| {label} | {which} | {method} | {copy_cell} | {cell('l2norm')} | "
                  f"{cell('normalize')} | {cell('compiled')} | {cell('fla')} |", flush=True)
            candidates.clear()
        del x
        if not args.torch_cpu:
            torch.cuda.empty_cache()

    # Host time of one eager call (32 x 128 bf16): the best mean of a batch of 20 calls over 300
    # batches, the GPU drained before each (20 launches never fill its queue, so no call waits on
    # the GPU), the callers' batches interleaved so that all see the same machine.
    x = torch.randn(32, 128, device=device, dtype=torch.float32).to(torch.bfloat16)
    core = l2norm._core.l2_norm

    def floor():
        # What any eager call of a new output needs: PyTorch's allocation and l2norm's launch.
        y = torch.empty_like(x)
        core(x, y, None, EPS, 1.0, False, None, False)
        return y

    host = {
        "l2norm.torch.l2norm": lambda: l2norm_torch.l2norm(x, EPS),
        "floor: torch.empty_like + l2norm._core.l2_norm": floor,
        "F.normalize": lambda: F.normalize(x, dim=-1, eps=EPS),
        "compiled formula": None if args.no_compile else (lambda: compiled_seed(x)),
        "fla l2norm": None if fla is None else (lambda: fla.l2norm(x, EPS)),
    }
    print("\n| host time per eager call, 32 x 128 bf16 | us |\n|---|---|")
    best = {}
    for name, fn in host.items():
        try:
            if fn is not None:
                for _ in range(200):
                    fn()
                best[name] = float("inf")
        except Exception as error:
            print(f"<!-- host {name}: {type(error).__name__}: {error} -->")
    for _ in range(300):
        for name in best:
            timer.synchronize()
            start = time.perf_counter_ns()
            for _ in range(20):
                host[name]()
            best[name] = min(best[name], (time.perf_counter_ns() - start) / 20 / 1000)
    for name in host:
        print(f"| {name} | {best[name]:.2f} |" if name in best else f"| {name} | n/a |",
              flush=True)


# ---- CPU (NumPy arrays) ----

def cpu_main(args):
    import numpy as np

    l2norm = import_l2norm()
    try:
        import faiss
    except ImportError as error:
        faiss, faiss_missing = None, str(error)
    print(f"# peers on the CPU ({os.cpu_count()} CPUs, l2norm {l2norm.cpu_thread_count()} threads, "
          f"NumPy {np.__version__}, FAISS {getattr(faiss, '__version__', 'not importable')})\n")
    if faiss is None:
        print(f"<!-- faiss: not importable ({faiss_missing}) -->")
    # FAISS normalizes in place, so l2norm is timed both ways: into another array, and in place
    # (out=x) as FAISS is, on an array of its own.
    print("| shape (rows x dim, f32) | copy us | l2norm us (ratio) | l2norm in place us (ratio) | "
          "NumPy us (ratio) | FAISS normalize_L2 (in place) us (ratio) |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(1)
    for rows, dim, _ in args.shapes:
        mib = rows * dim * 4 / (1 << 20)
        if mib > args.max_mib:
            print(f"<!-- {rows}x{dim}: {mib:.0f} MiB of f32 is over --max-mib {args.max_mib} -->")
            continue
        x = rng.standard_normal((rows, dim), dtype=np.float32)
        out = np.empty_like(x)
        in_place = x.copy()
        ours_in_place = x.copy()

        def numpy_normalize():
            np.divide(x, np.linalg.norm(x, axis=-1, keepdims=True), out=out)

        candidates = {
            "copy": lambda: np.copyto(out, x),
            "l2norm": lambda: l2norm.normalize(x, eps=EPS, out=out),
            "l2norm_in_place": lambda: l2norm.normalize(ours_in_place, eps=EPS, out=ours_in_place),
            "numpy": numpy_normalize,
            "faiss": None if faiss is None else (lambda: faiss.normalize_L2(in_place)),
        }
        runs = max(3, min(50, int(2048 / max(mib, 1))))
        results = {}
        for name, fn in candidates.items():
            if fn is None:
                results[name] = None
                continue
            try:
                fn()
                times = []
                for _ in range(runs):
                    start = time.perf_counter()
                    fn()
                    times.append((time.perf_counter() - start) * 1e6)
                results[name] = median(times)
            except Exception as error:
                results[name] = None
                print(f"<!-- {name} {rows}x{dim}: {type(error).__name__}: {error} -->")
        copy_us = results["copy"]

        def cell(name):
            value = results[name]
            return "n/a" if value is None else f"{value:.1f} ({copy_us / value:.2f})"

        print(f"| {rows} x {dim} f32 | {copy_us:.1f} | {cell('l2norm')} | "
              f"{cell('l2norm_in_place')} | {cell('numpy')} | {cell('faiss')} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="NumPy arrays on the CPU: l2norm, "
                        "NumPy, FAISS")
    parser.add_argument("--torch-cpu", action="store_true", help="the CUDA table's code on CPU "
                        "tensors, timed by wall clock (checks the script where no GPU is)")
    parser.add_argument("--shapes", type=parse_shapes, default=None,
                        help="comma-separated ROWSxDIMdtype, e.g. 32x128bf16,8x1048576f32")
    parser.add_argument("--no-backward", action="store_true", help="forward rows only")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    parser.add_argument("--max-mib", type=float, default=4096,
                        help="--cpu: skip arrays larger than this many MiB of f32")
    args = parser.parse_args(argv)
    if args.shapes is None:
        args.shapes = list(dict.fromkeys(SHAPES + BACKWARD_SHAPES))
    if args.cpu:
        cpu_main(args)
    else:
        cuda_main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
