#!/usr/bin/env python3
"""End-to-end time of `l2norm normalize IN -o OUT` against a durable copy of the same bytes.

    python3 bench/cli_e2e.py --l2norm build/bin/l2norm [--dir DIR] [--sizes 64,512,4096]
                             [--dtypes f32] [--dim 768] [--runs 5] [--cache warm,cold]
                             [--device cpu] [--json FILE]

The CLI reads IN, normalizes it and writes OUT durably: the bytes go to a file in OUT's folder,
are flushed with fsync and the file is renamed (linked) into place. The floor is a durable copy
done the same way: IN read and written in 64 MiB pieces (the CLI's chunk size) to a temporary
file beside OUT, fsync, rename over OUT, fsync of the folder. For each input size the copy and
the CLI run alternately, `--runs` times each; the table gives the median of each and ratio =
CLI / copy (1.00 = as fast as the copy; the target is <= 1.2).

Cache states: `warm` leaves IN in the page cache (a file read recently, as in a pipeline);
`cold` drops IN's pages before every run of either (posix_fadvise DONTNEED on that file only),
so IN is read from the disk. Outputs are flushed to the disk in every run either way. The
inputs (random rows of unit-scale values, .npy) are made once per size in DIR and kept, DIR
should be on the disk whose speed is to be measured (default: a folder under the system's
temporary directory). Needs NumPy to make the inputs.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIECE = 64 << 20
DTYPE_BYTES = {"f32": 4, "f16": 2, "bf16": 2}


def machine_name():
    """CPU model and core count, from /proc/cpuinfo where there is one."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs"


def make_input(path, rows, dim, dtype):
    """A .npy of rows x dim values in [-1, 1), written in pieces and flushed to the disk."""
    import numpy as np

    rng = np.random.default_rng(12345)
    descr = {"f32": "<f4", "f16": "<f2", "bf16": "<V2"}[dtype]
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }" % (descr, rows, dim)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    rows_per_piece = max(1, PIECE // (dim * DTYPE_BYTES[dtype]))
    with open(path, "wb") as out:
        out.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
        for first in range(0, rows, rows_per_piece):
            count = min(rows_per_piece, rows - first)
            values = rng.uniform(-1.0, 1.0, size=(count, dim)).astype(np.float32)
            if dtype == "f16":
                values = values.astype(np.float16)
            elif dtype == "bf16":  # round to nearest even into the high 16 bits
                bits = values.view(np.uint32)
                bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
                values = bits.astype(np.uint16)
            out.write(values.tobytes())
        out.flush()
        os.fsync(out.fileno())


def drop_from_cache(path):
    """Evicts the (clean) pages of one file from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def fsync_folder(path):
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_copy(source, target):
    """Copies source to target as the CLI writes its output; returns the seconds it took."""
    start = time.perf_counter()
    temporary = f"{target}.tmp.copy.{os.getpid()}"
    buffer = bytearray(PIECE)
    view = memoryview(buffer)
    fd_in = os.open(source, os.O_RDONLY)
    fd_out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            got = os.readv(fd_in, [buffer])
            if got == 0:
                break
            done = 0
            while done < got:
                done += os.write(fd_out, view[done:got])
        os.fsync(fd_out)
    finally:
        os.close(fd_in)
        os.close(fd_out)
    os.rename(temporary, target)
    fsync_folder(target)
    return time.perf_counter() - start


def run_cli(l2norm, source, target, device, extra):
    """Runs the CLI; returns the seconds from start to exit."""
    command = [l2norm, "normalize", source, "-o", target, "--device", device, "--quiet", *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def measure(args, dtype, size_mib, cache):
    row_bytes = args.dim * DTYPE_BYTES[dtype]
    rows = max(1, (size_mib << 20) // row_bytes)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"in_{dtype}_{rows}x{args.dim}.npy"
    if not source.exists():
        make_input(source, rows, args.dim, dtype)
    copy_target = folder / "out_copy.npy"
    cli_target = folder / "out_cli.npy"
    extra = ["--in-dtype", "bf16"] if dtype == "bf16" else []
    # One unmeasured run of each: the first write of a new file, page-cache warm-up.
    durable_copy(source, copy_target)
    run_cli(args.l2norm, str(source), str(cli_target), args.device, extra)
    copies, clis = [], []
    for _ in range(args.runs):
        if cache == "cold":
            drop_from_cache(source)
        copies.append(durable_copy(source, copy_target))
        if cache == "cold":
            drop_from_cache(source)
        clis.append(run_cli(args.l2norm, str(source), str(cli_target), args.device, extra))
    for target in (copy_target, cli_target):
        target.unlink(missing_ok=True)
    copy, cli = statistics.median(copies), statistics.median(clis)
    return {
        "shape": f"{rows} x {args.dim} {dtype}",
        "mib": os.path.getsize(source) / (1 << 20),
        "cache": cache,
        "copy_s": copies,
        "l2norm_s": clis,
        "copy_median_s": copy,
        "l2norm_median_s": cli,
        "ratio": cli / copy,
    }


def table(results):
    lines = ["| input | MiB | input cache | durable copy s | l2norm s | ratio |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['shape']} | {r['mib']:.0f} | {r['cache']} | "
                     f"{r['copy_median_s']:.3f} | {r['l2norm_median_s']:.3f} | {r['ratio']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--l2norm", required=True, help="the l2norm executable")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "l2norm_cli_e2e"),
                        help="folder for the inputs and outputs (kept: inputs are reused)")
    parser.add_argument("--sizes", default="64,512,4096", help="input sizes in MiB")
    parser.add_argument("--dtypes", default="f32", help="f32, f16 and/or bf16 (.npy element types)")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache", default="warm,cold", help="warm, cold or both")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write every sample here as JSON")
    args = parser.parse_args(argv)
    dtypes = args.dtypes.split(",")
    unknown = sorted(set(dtypes) - set(DTYPE_BYTES))
    if unknown:
        parser.error(f"unknown dtype {', '.join(unknown)}")
    results = []
    for dtype in dtypes:
        for size in (int(s) for s in args.sizes.split(",")):
            for cache in args.cache.split(","):
                results.append(measure(args, dtype, size, cache))
            print(table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    document = {
        "machine": machine_name(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "folder": os.path.abspath(args.dir),
        "runs": args.runs,
        "device": args.device,
        "results": results,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"# l2norm normalize against a durable copy: {document['machine']}, {document['date']}, "
          f"median of {args.runs} interleaved runs")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
