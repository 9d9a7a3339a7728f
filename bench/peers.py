#!/usr/bin/env python3
"""Peers of l2norm on the same shapes and with the same timing method as l2norm-bench.

F.normalize, the seed formula x / sqrt(sum(x*x) + eps) in eager mode and under torch.compile.
Each is compared with a device-to-device copy of the same bytes measured in the same run:
ratio = copy time / op time (1.00 = at the memory floor). Shapes whose bytes (read + written)
exceed the L2 cache are timed with L2 flushed before every run (median of 30); smaller ones by
replaying a CUDA graph of 200 calls (median of 20 replays). Prints a markdown table.
"""
import torch
import torch.nn.functional as F

SHAPES = [
    (32, 128, torch.bfloat16), (2048, 128, torch.bfloat16), (65536, 128, torch.bfloat16),
    (524288, 128, torch.bfloat16), (524288, 128, torch.float32), (1000000, 768, torch.float32),
    (100000, 4096, torch.bfloat16), (65536, 100, torch.float32), (4096, 1000, torch.bfloat16),
    (64, 65536, torch.float32), (8, 1048576, torch.float32),
]
EPS = 1e-6


def seed_formula(x):
    return x / torch.sqrt((x * x).sum(-1, keepdim=True) + EPS)


def normalize(x):
    return F.normalize(x, dim=-1, eps=EPS)


# One specialization per shape and dtype: raise dynamo's recompile limit (default 8) above the
# number of shapes, or the last shapes would silently fall back to eager.
torch._dynamo.config.recompile_limit = 64
compiled_seed = torch.compile(seed_formula, dynamic=False)


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def flushed_median_us(fn, flush, runs=30):
    fn()
    times = []
    for i in range(runs):
        flush.fill_(i & 0xff)
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) * 1000.0)
    return median(times)


def graph_median_us(fn, per_graph=200, replays=20):
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
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
    return median(times)


def main():
    properties = torch.cuda.get_device_properties(0)
    l2_bytes = properties.L2_cache_size
    flush = torch.empty(4 * l2_bytes, dtype=torch.uint8, device="cuda")
    print(f"# peers on {properties.name}, torch {torch.__version__}\n")
    print("| shape (rows x dim, dtype) | method | copy us | F.normalize us (ratio) | "
          "eager seed us (ratio) | compiled seed us (ratio) |")
    print("|---|---|---|---|---|---|")
    for rows, dim, dtype in SHAPES:
        x = torch.randn(rows, dim, device="cuda", dtype=torch.float32).to(dtype)
        out = torch.empty_like(x)
        nbytes = x.numel() * x.element_size()
        large = 2 * nbytes > l2_bytes
        candidates = {
            "copy": lambda: out.copy_(x),
            "normalize": lambda: normalize(x),
            "eager": lambda: seed_formula(x),
            "compiled": lambda: compiled_seed(x),
        }
        results = {}
        for name, fn in candidates.items():
            try:
                fn()
                torch.cuda.synchronize()
                results[name] = flushed_median_us(fn, flush) if large else graph_median_us(fn)
            except Exception as error:  # a peer that cannot run a shape is reported, not fatal
                results[name] = None
                print(f"<!-- {name} {rows}x{dim}: {type(error).__name__}: {error} -->")
        copy_us = results["copy"]

        def cell(name):
            value = results[name]
            if value is None or copy_us is None:
                return "n/a"
            return f"{value:.2f} ({copy_us / value:.2f})"

        dtype_name = {torch.bfloat16: "bf16", torch.float32: "f32"}[dtype]
        print(f"| {rows} x {dim} {dtype_name} | {'L2 flushed' if large else 'graph replay'} | "
              f"{copy_us:.2f} | {cell('normalize')} | {cell('eager')} | {cell('compiled')} |",
              flush=True)
        del x, out
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
