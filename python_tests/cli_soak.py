#!/usr/bin/env python3
"""Soak test of the l2norm CLI: cli_soak.py PATH_TO_L2NORM [--runs N] [--seed S] [--jobs J].

Runs the binary many times (default 1000) on mutations of valid .npy and .fvecs files
(truncations, flipped bytes in the header and the data, rewritten length and dimension fields,
trailing bytes) and sends random signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGALRM, and
SIGKILL where the output folder supports O_TMPFILE) at random moments. Some inputs are a few MB
so that signals land while the output is being written. Every run must:
  - finish within a per-run timeout (no hang);
  - exit 0, 1, 2 or 130 (SIGKILL runs: killed by SIGKILL, or 0 when it came too late);
  - leave the output folder holding nothing but a complete OUT after exit 0, OUT as it was
    before (or nothing) after any other exit, and never a temporary file; a SIGKILL run
    leaves nothing or a complete OUT (when the kill landed after the output was linked);
  - on exit 1 or 2, print exactly one line "l2norm: error: ..." without control characters.

Uses only the standard library. The seed is fixed (and printed) so a failure reproduces:
rerun with --seed S --runs N, or look up the failing run's index in the report.

A signal is sent only once the child catches SIGINT (bit 2 of SigCgt in /proc/PID/status),
that is once l2norm's main() has installed its handlers, and then after a random delay. Before
that the dynamic loader is running: a signal there ends the child by the default action, which is
outside what the tool can control (no output exists yet then), so the soak leaves that out.
"""

import argparse
import ast
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

DEFAULT_SEED = 20240611
CATCHABLE = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGALRM]
RUN_TIMEOUT_S = 20


def npy_bytes(rows, dim, descr="<f4", major=1, rng=None):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }" % (descr, rows, dim)
    length_bytes = 2 if major == 1 else 4
    preamble = 8 + length_bytes
    padded = len(header) + 1
    padded += (-(preamble + padded)) % 64
    header = header.ljust(padded - 1) + "\n"
    length = struct.pack("<H" if major == 1 else "<I", len(header))
    item = {"<f4": 4, "<f2": 2, "<f8": 8}[descr]
    data = rng.randbytes(rows * dim * item) if rng else bytes(rows * dim * item)
    if descr == "<f4":  # finite values, so most unmutated runs normalize real numbers
        data = _f32_block(rows * dim, rng)
    return b"\x93NUMPY" + bytes([major, 0]) + length + header.encode("latin1") + data


def _f32_block(count, rng):
    # A large f32 block without a per-value Python loop: a repeated random pattern.
    pattern = struct.pack("<1024f", *(rng.uniform(-4, 4) for _ in range(1024)))
    return (pattern * (count // 1024 + 1))[: count * 4]


def fvecs_bytes(rows, dim, rng):
    record_values = _f32_block(dim, rng)
    return (struct.pack("<i", dim) + record_values) * rows


def mutate(data, kind, rng):
    data = bytearray(data)
    if kind == "truncate":
        return bytes(data[: rng.randrange(0, len(data))])
    if kind == "header_flip":
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(0, min(len(data), 128))
            data[position] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == "data_flip":
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(0, len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == "length_field":
        # .npy: the header length; .fvecs: a record's dimension. Random and extreme values.
        value = rng.choice([0, 1, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFF0, rng.randrange(1 << 32)])
        if data[:6] == b"\x93NUMPY":
            if data[6] == 1:
                data[8:10] = struct.pack("<H", value & 0xFFFF)
            else:
                data[8:12] = struct.pack("<I", value)
        else:
            dim = struct.unpack_from("<i", data, 0)[0]
            record = 4 + 4 * max(dim, 1)
            offset = rng.randrange(0, max(len(data) // record, 1)) * record
            data[offset:offset + 4] = struct.pack("<I", value)
        return bytes(data)
    if kind == "trailing":
        return bytes(data) + rng.randbytes(rng.randint(1, 9))
    raise ValueError(kind)


def output_is_complete(path):
    """True when OUT's size is exactly what its own header (or record size) says."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".fvecs"):
        if not data:
            return True
        dim = struct.unpack_from("<i", data, 0)[0]
        return dim > 0 and len(data) % (4 + 4 * dim) == 0
    if data[:6] != b"\x93NUMPY":
        return False
    if data[6] == 1:
        length, start = struct.unpack_from("<H", data, 8)[0], 10
    else:
        length, start = struct.unpack_from("<I", data, 8)[0], 12
    header = ast.literal_eval(data[start:start + length].decode("latin1"))
    count = 1
    for size in header["shape"]:
        count *= size
    item = {"<f4": 4, "<f2": 2, "<V2": 2}[header["descr"]]
    return len(data) == start + length + count * item


def unnamed_files_supported(folder):
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return False
    try:
        os.close(os.open(folder, flag | os.O_WRONLY, 0o600))
        return True
    except OSError:
        return False


def wait_for_handlers(child, limit_s=5.0):
    """Returns once `child` catches SIGINT (its handlers are installed), or it exited, or after
    limit_s (a child that never installs one is then signalled anyway, and fails the checks)."""
    deadline = time.monotonic() + limit_s
    bit = 1 << (signal.SIGINT - 1)
    while time.monotonic() < deadline and child.poll() is None:
        try:
            with open("/proc/%d/status" % child.pid) as f:
                for line in f:
                    if line.startswith("SigCgt:") and int(line.split()[1], 16) & bit:
                        return
        except OSError:
            return
        time.sleep(0.0002)


class Soak:
    def __init__(self, binary, seed, runs, jobs, root):
        self.binary = binary
        self.seed = seed
        self.runs = runs
        self.jobs = jobs
        self.root = root
        self.failures = []
        self.counts = {}
        self.lock = threading.Lock()
        self.next_run = 0
        rng = random.Random(seed)
        self.inputs = {
            "small.npy": npy_bytes(40, 16, rng=rng),
            "f16.npy": npy_bytes(64, 8, "<f2", rng=rng),
            "f64_v2.npy": npy_bytes(24, 12, "<f8", major=2, rng=rng),
            "small.fvecs": fvecs_bytes(30, 8, rng),
            "big.npy": npy_bytes(32768, 64, rng=rng),  # 8 MiB
            "big.fvecs": fvecs_bytes(8192, 96, rng),  # 3 MiB
        }
        self.kill_allowed = unnamed_files_supported(root)

    def plan(self, index):
        rng = random.Random(self.seed * 1_000_003 + index)
        name = rng.choice(list(self.inputs))
        kind = rng.choice(["none", "none", "truncate", "header_flip", "data_flip",
                           "length_field", "trailing"])
        data = self.inputs[name] if kind == "none" else mutate(self.inputs[name], kind, rng)
        command = "stats" if rng.random() < 0.08 else "normalize"
        extension = rng.choice([".npy", ".npy", ".fvecs"])
        options = ["--device", "cpu", "--chunk-size", rng.choice(["4K", "64K", "1M", "64M"])]
        if extension == ".npy" and rng.random() < 0.3:
            options += ["--out-dtype", rng.choice(["f16", "bf16"])]
        if rng.random() < 0.5:
            options.append("-q")
        sig = None
        if rng.random() < 0.6:
            choices = CATCHABLE + ([signal.SIGKILL] if self.kill_allowed else [])
            sig = rng.choice(choices)
            # Mostly within the first ~30 ms, when a big file is still being written.
            delay = rng.choice([0.0, rng.uniform(0, 0.005), rng.uniform(0, 0.03)])
        else:
            delay = 0.0
        existing = command == "normalize" and sig != signal.SIGKILL and rng.random() < 0.2
        return dict(index=index, name=name, kind=kind, data=data, command=command,
                    extension=extension, options=options, signal=sig, delay=delay,
                    existing=existing)

    def fail(self, run, what, result=""):
        description = ("run %d (seed %d): %s; input %s mutated by %s, %s %s, signal %s after "
                       "%.4f s, existing OUT %s\n  %s" % (
                           run["index"], self.seed, what, run["name"], run["kind"],
                           run["command"], " ".join(run["options"]),
                           signal.Signals(run["signal"]).name if run["signal"] else None,
                           run["delay"], run["existing"], result))
        with self.lock:
            self.failures.append(description)

    def execute(self, index):
        run = self.plan(index)
        work = os.path.join(self.root, "run%d" % index)
        out_folder = os.path.join(work, "out")
        os.makedirs(out_folder)
        input_path = os.path.join(work, "in" + os.path.splitext(run["name"])[1])
        with open(input_path, "wb") as f:
            f.write(run["data"])
        out_path = os.path.join(out_folder, "result" + run["extension"])
        old = b"previous contents"
        if run["existing"]:
            with open(out_path, "wb") as f:
                f.write(old)
        if run["command"] == "stats":
            argv = [self.binary, "stats", input_path]
        else:
            argv = [self.binary, "normalize", input_path, "-o", out_path] + run["options"]
        with open(os.path.join(work, "stderr"), "wb+") as err:
            child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err,
                                     stdin=subprocess.DEVNULL)
            if run["signal"] is not None:
                wait_for_handlers(child)
                time.sleep(run["delay"])
                try:
                    child.send_signal(run["signal"])
                except ProcessLookupError:
                    pass
            try:
                status = child.wait(timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                self.fail(run, "hung (no exit within %d s)" % RUN_TIMEOUT_S)
                shutil.rmtree(work)
                return
            err.seek(0)
            stderr = err.read()
        self.check(run, status, stderr, out_folder, out_path, old)
        with self.lock:
            key = status if status >= 0 else "SIGKILL"
            self.counts[key] = self.counts.get(key, 0) + 1
        shutil.rmtree(work)

    def check(self, run, status, stderr, out_folder, out_path, old):
        entries = sorted(os.listdir(out_folder))
        out_name = os.path.basename(out_path)
        text = stderr.decode("latin1")
        killed = run["signal"] == signal.SIGKILL and status == -signal.SIGKILL
        if status not in (0, 1, 2, 130) and not killed:
            self.fail(run, "exit status %d" % status, text[:300])
            return
        if status == 0 and run["command"] == "normalize":
            if entries != [out_name] or not output_is_complete(out_path):
                self.fail(run, "exit 0 but the output folder holds %s" % entries)
        elif killed:
            if entries and (entries != [out_name] or not output_is_complete(out_path)):
                self.fail(run, "SIGKILL left %s" % entries)
        elif run["existing"]:
            with open(out_path, "rb") as f:
                unchanged = entries == [out_name] and f.read() == old
            if not unchanged:
                self.fail(run, "exit %d changed the existing OUT or left %s" % (status, entries))
        elif entries:
            self.fail(run, "exit %d left %s" % (status, entries))
        if status in (1, 2):
            lines = text.splitlines()
            if len(lines) != 1 or not lines[0].startswith("l2norm: error: "):
                self.fail(run, "exit %d without one error line" % status, text[:300])
            if any(ord(c) < 0x20 and c != "\n" for c in text) or len(text) > 2000:
                self.fail(run, "error message with control characters or too long", text[:300])

    def worker(self):
        while True:
            with self.lock:
                if self.next_run >= self.runs:
                    return
                index = self.next_run
                self.next_run += 1
            try:
                self.execute(index)
            except Exception as error:  # a harness error is a failure too, with its run
                self.fail(self.plan(index), "harness error %r" % error)

    def run(self):
        threads = [threading.Thread(target=self.worker) for _ in range(self.jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int,
                        default=int(os.environ.get("L2NORM_SOAK_SEED", DEFAULT_SEED)))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="l2norm_soak_") as root:
        soak = Soak(os.path.abspath(args.binary), args.seed, args.runs, args.jobs, root)
        print("l2norm CLI soak: seed %d, %d runs, %d at a time, SIGKILL %s" % (
            args.seed, args.runs, args.jobs,
            "included (O_TMPFILE works here)" if soak.kill_allowed else "left out (no O_TMPFILE)"),
            flush=True)
        soak.run()
    elapsed = time.monotonic() - start
    print("exit statuses: %s; %.1f s" % (
        ", ".join("%s: %d" % item for item in sorted(soak.counts.items(), key=str)), elapsed))
    if soak.failures:
        print("%d FAILURES (reproduce with --seed %d --runs %d):" % (
            len(soak.failures), args.seed, args.runs))
        for failure in soak.failures[:30]:
            print(failure)
        return 1
    print("all %d runs passed" % args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
