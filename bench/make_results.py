#!/usr/bin/env python3
"""Writes bench/RESULTS.md from the output folder of a device run.

    python3 bench/make_results.py OUT_DIR [--cpu CPU_BENCH_OUTPUT] [--cpu-machine TEXT]
                                  [--cli CLI_E2E_JSON] [--commit HASH] [-o bench/RESULTS.md]
    python3 bench/make_results.py [--cpu CPU_BENCH_OUTPUT] [--cpu-machine TEXT] [--cli CLI_E2E_JSON]

OUT_DIR is what bench/device_run.sh wrote into $OUT: summary.md (its first line names the run's
date, card and driver), tests.log, sanitizer.log, bench.md (l2norm-bench's tables) and peers.md
(bench/peers.py's table). A piece that is missing is reported as not run. CPU_BENCH_OUTPUT is the
output of l2norm-bench-cpu, as JSON (--benchmark_format=json or --benchmark_out) or as its console
table; with repetitions the median rows are used. CLI_E2E_JSON is what bench/cli_e2e.py --json
wrote. Without OUT_DIR only the host sections (CPU and CLI) are written, for a machine with no GPU.
Standard library only.
"""

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path

METHOD = """\
Ratio = time of a device-to-device `cudaMemcpyAsync` of the same bytes / time of the op, both
measured in the same run (1.00 = at the memory floor). Shapes moving more bytes than L2 holds: L2
flushed (a memset of four times its size, 200 MiB on an H100) before each of 30 runs, median.
Smaller shapes: a CUDA graph of 200 dispatches captured back to back on one stream (a chain: each
l2_norm kernel node follows the previous one; the copy rows are a chain of 200 memcpy nodes)
replayed 20 times, median per dispatch. On sm_90 the encoder launches the rows kernel with
programmatic stream serialization, so in such a chain each kernel's launch overlaps its
predecessor (it still waits for the predecessor's completion before touching memory); a dispatch
that follows a non-kernel node, or stands alone, gets no such overlap. eps = 1e-6, add mode, no
scale. The first table's shapes after the eleven of the peers' list (long rows in large batches:
the split kernel in waves, and the staged kernel, one block per row) and the strided table (q sliced
out of a fused qkv projection, tokens x 16 heads x 128, token stride 3 x 16 x 128, into a
contiguous buffer; the copy is a plain copy of as many bytes) are held to the same targets. Cold first
calls: each variant compiled three times with an empty disk cache (and NVRTC's own cache off),
the median and the range. Design decisions behind these figures: docs/PERFORMANCE.md."""

# The open issues' targets.
# The forward, the backward, the strided forward and the pair alike: the ratio to a copy of as many
# bytes by the bytes a shape moves (MiB at least, ratio at least), first tier that applies.
RATIO_TIERS = [(256.0, 0.97), (16.0, 0.95), (0.0, 0.85)]
CPU_RATIO = 0.9
CLI_FACTOR = 1.2
# A decode dispatch in a graph chain against one copy node: the single op and the pair.
DECODE_FACTOR = 1.12
PAIR_DECODE_SHAPES = ["32 x 16 x 128 bf16", "2048 x 16 x 128 bf16"]
PAIR_DECODE_FACTOR = 1.15
PAIR_SPEEDUP = 1.6
HOST_MARGIN_US = 1.0
# The backward pass against a copy of as many bytes.
BACKWARD_LARGE_SHAPES = ["524288 x 128 bf16", "65536 x 128 f32", "100000 x 4096 bf16"]
BACKWARD_LARGE_RATIO = 0.95
BACKWARD_RATIO = 0.9
BACKWARD_PEERS = ["fla", "compiled"]
# The forward with its rstd output against the plain forward's ratio.
RSTD_TOLERANCE = 0.02
COLD_MS = 300.0
WARM_MS = 1.0
# Host time of one eager PyTorch call (32 x 128 bf16, CUDA) through l2norm.torch.
EAGER_HOST_US = 10.0

NOT_RUN = "not run"
WIDTH = 100


def prose(text):
    """A paragraph wrapped as the repository's documents are."""
    return textwrap.fill(" ".join(text.split()), WIDTH, break_long_words=False,
                         break_on_hyphens=False)


def read_text(path):
    """The file's text, or None when it does not exist."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None


def split_row(line):
    """The cells of one markdown table row."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def number(text):
    """The first number in a cell ("1.14x", "0.960", "138.0 - 174.0"), or None."""
    match = re.search(r"-?\d+(?:\.\d+)?", text or "")
    return float(match.group()) if match else None


class Table:
    def __init__(self, lines):
        self.lines = lines
        self.header = split_row(lines[0])
        self.rows = [split_row(line) for line in lines[2:]] if len(lines) > 2 else []

    def kind(self):
        first = self.header[0].lower() if self.header else ""
        for prefix, kind in (("shape", "main"), ("strided", "strided"), ("decode", "decode"),
                             ("host time", "host"), ("variant", "compiles"),
                             ("with rstd", "rstd"), ("backward", "backward"), ("pair", "pair"),
                             ("floor", "floor")):
            if first.startswith(prefix):
                return kind
        return "other"

    def column(self, *names):
        """Index of the first column whose header starts with one of `names`, or None."""
        for index, title in enumerate(self.header):
            if any(title.lower().startswith(name) for name in names):
                return index
        return None

    def markdown(self):
        return "\n".join(line.strip() for line in self.lines)


def parse_blocks(text):
    """Markdown tables, '# ' title lines and other non-empty lines of a tool's output, in order."""
    tables, titles, others = [], [], []
    current = []
    for line in (text or "").splitlines() + [""]:
        if line.lstrip().startswith("|"):
            current.append(line)
            continue
        if current:
            if len(current) >= 2 and set(current[1].replace("|", "").strip()) <= set("-: "):
                tables.append(Table(current))
            else:
                others.extend(current)
            current = []
        stripped = line.strip()
        if stripped.startswith("# "):
            titles.append(stripped[2:])
        elif stripped:
            others.append(stripped)
    return tables, titles, others


class DeviceRun:
    def __init__(self, folder):
        folder = Path(folder)
        self.summary = read_text(folder / "summary.md")
        self.tests_log = read_text(folder / "tests.log")
        self.sanitizer_log = read_text(folder / "sanitizer.log")
        self.bench = read_text(folder / "bench.md")
        self.peers = read_text(folder / "peers.md")
        self.baseline = read_text(folder / "baseline.md")
        self.bench_again = read_text(folder / "bench_again.md")
        self.summary_lines = [line for line in (self.summary or "").splitlines() if line.strip()]
        self.stamp, self.card, self.driver = None, None, None
        if self.summary_lines:
            match = re.match(r"#\s*device run\s+(\S+):\s+(.*)$", self.summary_lines[0])
            if match:
                self.stamp = match.group(1)
                card = match.group(2).strip()
                name, _, driver = card.rpartition(",")
                if name and re.fullmatch(r"\s*[\d.]+\s*", driver):
                    self.card, self.driver = name.strip(), driver.strip()
                else:
                    self.card = card
        self.bench_tables, bench_titles, self.bench_other = parse_blocks(self.bench)
        self.card_details = None
        for title in bench_titles:
            match = re.match(r"l2norm-bench on (.*?)\s*(\(.*\))?$", title)
            if match:
                self.card = self.card or match.group(1)
                self.card_details = match.group(2)
        self.peer_tables, peer_titles, peer_other = parse_blocks(self.peers)
        self.peers_title = next((t for t in peer_titles if t.startswith("peers on")), None)
        self.peer_failures = [line[4:-3].strip() for line in peer_other
                              if line.startswith("<!--") and line.endswith("-->")]

    def stage_line(self, prefix):
        return next((line for line in self.summary_lines if line.startswith(prefix)), None)

    def stage_rc(self, prefix):
        line = self.stage_line(prefix)
        match = re.search(r"rc=(\d+)", line or "")
        return int(match.group(1)) if match else None

    def bench_table(self, kind):
        return next((table for table in self.bench_tables if table.kind() == kind), None)


def failed_tests(tests_log):
    """The list CTest prints after 'The following tests FAILED:'."""
    if not tests_log or "The following tests FAILED:" not in tests_log:
        return []
    after = tests_log.split("The following tests FAILED:", 1)[1].splitlines()[1:]
    failed = []
    for line in after:
        if not line.strip() or line.startswith("Errors while running CTest"):
            break
        failed.append(line.strip())
    return failed


def checks_section(run):
    out = ["## Tests and sanitizers in the same run"]
    if not run.summary_lines:
        out.append(f"Tests: {NOT_RUN} (no summary.md). Sanitizers: {NOT_RUN}.")
        return out
    out += ["```"] + run.summary_lines + ["```"]
    notes = []
    if run.stage_line("ctest:") is None:
        notes.append(f"Tests: {NOT_RUN}.")
    if run.stage_line("sanitizer ") is None:
        notes.append(f"Sanitizers: {NOT_RUN}.")
    failed = failed_tests(run.tests_log)
    if failed:
        notes.append("Failed tests (tests.log): " + "; ".join(failed) + ".")
    if notes:
        out += [""] + [" ".join(notes)]
    return out


def bench_section(run):
    out = ["## l2norm (`l2norm-bench`)"]
    rc = run.stage_rc("bench:")
    if not run.bench or not run.bench.strip():
        reason = f"l2norm-bench exited with rc={rc}" if rc else "no bench.md"
        out.append(f"{NOT_RUN} ({reason}).")
        return out
    if rc:
        out.append(f"l2norm-bench exited with rc={rc}; what it printed before that follows.")
        out.append("")
    captions = {
        "main": None,
        "strided": None,
        "decode": "What programmatic dependent launch buys: the encoder's dispatches in a chain "
                  "of 200 kernel nodes with plain launches and with launches that overlap the "
                  "previous kernel's tail (`set_launch_overlap`), beside the copy chain.",
        "host": "Host time per dispatch, against a bare `cudaLaunchKernel` of an empty kernel "
                "(batches of 200 alternating, GPU drained before each).",
        "compiles": "First call per variant: cold = an NVRTC compile and load with an empty disk "
                    "cache, warm = a disk-cache read and load.",
        "rstd": "The forward with its per-row f32 rstd output against the plain forward, timed "
                "as the first table times them.",
        "backward": "The backward pass from the saved y and rstd (reads dy and y, writes dx) and "
                    "from the input x, against a copy that moves as many bytes (1.5 times one "
                    "tensor, read and written), timed as the first table times them.",
        "pair": "q and k normalized by one `l2_norm_pair` dispatch, against two `l2_norm` "
                "dispatches and one copy of both tensors' bytes, each a chain of 200 graph nodes.",
        "floor": "The floor on this GPU: a device-to-device `cudaMemcpyAsync` and a plain "
                 "16-byte-vector copy kernel, for the bytes of each shape of the first table.",
        "other": None,
    }
    lines_used = set()
    for table in run.bench_tables:
        caption = captions.get(table.kind())
        if caption:
            out += [prose(caption), ""]
        out += [table.markdown(), ""]
        if table.kind() == "decode":
            for line in run.bench_other:
                if line.startswith("empty kernel node chain"):
                    out += [line, ""]
                    lines_used.add(line)
        if table.kind() == "compiles":
            for line in run.bench_other:
                if line.startswith(("machine up", "registry:")):
                    out += [line, ""]
                    lines_used.add(line)
    rest = [line for line in run.bench_other if line not in lines_used]
    if rest:
        out += ["Other output of l2norm-bench:", "```"] + rest + ["```", ""]
    if not run.bench_tables:
        out += [f"No tables in bench.md ({NOT_RUN}).", ""]
    return out[:-1] if out[-1] == "" else out


def op_times(text, kinds=("main", "strided")):
    """{shape: (copy us, op us, ratio)} of a bench output's timing tables."""
    times = {}
    tables, _, _ = parse_blocks(text)
    for table in tables:
        if table.kind() not in kinds:
            continue
        copy, op, ratio = table.column("copy"), table.column("l2_norm"), table.column("ratio")
        if None in (copy, op, ratio):
            continue
        for row in table.rows:
            if len(row) > max(copy, op, ratio):
                times[row[0]] = (number(row[copy]), number(row[op]), number(row[ratio]))
    return times


def baseline_section(run, ab_run=None):
    """This tree against the baseline tree of an A/B run (device_run.sh's baseline stage), from
    this run or, when `ab_run` is given, from that run (whose own tree the section names)."""
    source = ab_run or run
    if not source.baseline:
        return []
    run = source
    first, baseline = op_times(run.bench), op_times(run.baseline)
    again = op_times(run.bench_again) if run.bench_again else {}
    tree = next((line for line in run.summary_lines if line.startswith("tree:")), None)
    out = ["## A/B against the baseline tree (same machine, same run)", ""]
    if ab_run is not None:
        where = f"{run.stamp or 'unknown date'} on {run.card or 'unknown card'}"
        out += [prose(f"From the run of {where}" + (f" ({tree})" if tree else "") +
                      ", not the run above."), ""]
    out += [prose("This tree's l2norm-bench ran, then the baseline tree's, then this tree's "
                  "again (`bench/device_run.sh ... bench baseline`). Ratio = copy / op of each "
                  "run."), "",
            "| shape | this tree us | baseline us | this tree again us | this tree ratio | "
            "baseline ratio | again ratio |", "|---|---|---|---|---|---|---|"]
    fmt = lambda value, spec: "n/a" if value is None else format(value, spec)
    for shape, (_, op, ratio) in first.items():
        if shape not in baseline:
            continue
        _, base_op, base_ratio = baseline[shape]
        _, again_op, again_ratio = again.get(shape, (None, None, None))
        out.append(f"| {shape} | {fmt(op, '.2f')} | {fmt(base_op, '.2f')} | "
                   f"{fmt(again_op, '.2f')} | {fmt(ratio, '.3f')} | {fmt(base_ratio, '.3f')} | "
                   f"{fmt(again_ratio, '.3f')} |")
    host = []
    for label, text in (("this tree", run.bench), ("baseline", run.baseline),
                        ("this tree again", run.bench_again)):
        tables, _, _ = parse_blocks(text)
        for table in tables:
            if table.kind() == "host":
                cells = {row[0]: row[1] for row in table.rows if len(row) > 1}
                host.append(f"| {label} | " + " | ".join(cells.values()) + " |")
                header = "| run | " + " | ".join(cells.keys()) + " |"
    if host:
        out += ["", "Host time per dispatch, us:", "", header,
                "|" + "---|" * (header.count("|") - 1)] + host
    return out


def peers_section(run):
    title = "## Peers (`bench/peers.py`, same run, same card, same method)"
    rc = run.stage_rc("peers:")
    if not run.peer_tables:
        reason = f"peers.py exited with rc={rc}" if rc else "no peers.md"
        return [title, f"{NOT_RUN} ({reason})."]
    out = [title]
    if run.peers_title:
        out.append(f"{run.peers_title[0].upper()}{run.peers_title[1:]}.")
    out += [prose("l2norm through its Python package, F.normalize, the seed formula "
                  "`x / sqrt(sum(x*x) + eps)` under torch.compile and flash-linear-attention's "
                  "l2norm where importable, forward and (where the table has a pass column) "
                  "backward; each ratio is against the copy measured in the peers' own process. "
                  "Tables of earlier runs also show the seed formula in eager mode."), ""]
    for table in run.peer_tables:
        out += [table.markdown(), ""]
    if rc:
        out += [f"peers.py exited with rc={rc}.", ""]
    if run.peer_failures:
        out += ["Peers that could not run a shape: " + "; ".join(run.peer_failures) + ".", ""]
    return out[:-1]


DTYPE_BYTES = {"f32": 4, "f16": 2, "bf16": 2}


def pair_mib(shape):
    """MiB a pair of `shape` ("32 x 16 x 128 bf16", each of q and k) reads and writes."""
    *dims, dtype = shape.replace("x", " ").split()
    elements = 1
    for dim in dims:
        elements *= int(dim)
    return 4 * elements * DTYPE_BYTES.get(dtype, 4) / 2**20


def ratio_rows(run):
    """(label, MiB moved, ratio to the copy) of every timed shape: the forward, the strided
    forward, the backward and the pair (its ratio is copy / pair)."""
    rows = []
    for kind, prefix, label_column in (("main", "", "shape"), ("strided", "strided ", "strided"),
                                       ("backward", "backward ", "backward")):
        table = run.bench_table(kind)
        if not table:
            continue
        label, mib, ratio = table.column(label_column), table.column("mib"), table.column("ratio")
        for row in table.rows:
            rows.append((prefix + row[label], number(row[mib]), number(row[ratio])))
    pair = run.bench_table("pair")
    if pair:
        label, factor = pair.column("pair"), pair.column("pair /")
        for row in pair.rows:
            value = number(row[factor])
            rows.append(("pair " + row[label], pair_mib(row[label]),
                         1.0 / value if value else None))
    return rows


def tier_lines(run):
    rows = ratio_rows(run)
    lines = []
    bounds = [float("inf")] + [mib for mib, _ in RATIO_TIERS[:-1]]
    for (floor_mib, target), ceiling in zip(RATIO_TIERS, bounds):
        tier = [(name, ratio) for name, mib, ratio in rows
                if mib is not None and floor_mib <= mib < ceiling]
        what = (f">= {floor_mib:.0f} MiB" if ceiling == float("inf") else
                f"{floor_mib:.0f} to {ceiling:.0f} MiB" if floor_mib else
                f"under {ceiling:.0f} MiB")
        if not rows:
            result = NOT_RUN
        elif not tier:
            result = "no shape in this range"
        else:
            low = [f"{name} {ratio:.3f}" if ratio is not None else f"{name} (no ratio)"
                   for name, ratio in tier if ratio is None or ratio < target]
            ratios = [ratio for _, ratio in tier if ratio is not None]
            result = (f"{'missed' if low else 'met'}: {len(tier) - len(low)} of {len(tier)} "
                      f"shapes meet it ({min(ratios):.3f} .. {max(ratios):.3f})"
                      + ("; below: " + ", ".join(low) if low else ""))
        lines.append(f"| ratio >= {target} on every shape moving {what} (forward, strided, "
                     f"backward, pair) | {result} |")
    return lines


def peer_ratio(cell):
    """The ratio in a peers cell ("1.06 (0.83)"), or None for a peer that did not run."""
    match = re.search(r"\((-?\d+(?:\.\d+)?)\)", cell or "")
    return float(match.group(1)) if match else None


def peers_lines(run):
    table = next((table for table in run.peer_tables
                  if table.column("l2norm") is not None and table.column("shape") == 0), None)
    if table is None:
        return [f"| never behind the best peer (peers.py, same process) | {NOT_RUN} |",
                f"| backward faster than fla and the compiled formula | {NOT_RUN} |"]
    ours = table.column("l2norm")
    pass_column = table.column("pass")
    peers = range(ours + 1, len(table.header))
    behind, backward_behind, compared, backward_compared = [], [], 0, 0
    for row in table.rows:
        mine = peer_ratio(row[ours])
        if mine is None:
            continue
        name = row[0] + (f" {row[pass_column]}" if pass_column is not None else "")
        others = [(table.header[index].split(" us")[0], peer_ratio(row[index])) for index in peers]
        others = [(peer, ratio) for peer, ratio in others if ratio is not None]
        compared += 1
        ahead = [f"{peer} {ratio:.2f}" for peer, ratio in others if ratio > mine]
        if ahead:
            behind.append(f"{name} ({mine:.2f}; {', '.join(ahead)})")
        if pass_column is not None and row[pass_column] == "bwd":
            backward_compared += 1
            named = [f"{peer} {ratio:.2f}" for peer, ratio in others
                     if any(peer.lower().startswith(key) for key in BACKWARD_PEERS)
                     and ratio >= mine]
            if named:
                backward_behind.append(f"{row[0]} ({mine:.2f}; {', '.join(named)})")
    result = (f"{'missed' if behind else 'met'}: ahead or level on {compared - len(behind)} of "
              f"{compared} rows" + ("; behind: " + "; ".join(behind) if behind else ""))
    lines = [f"| never behind the best peer (peers.py, same process) | {result} |"]
    if backward_compared:
        result = (f"{'missed' if backward_behind else 'met'}: faster on "
                  f"{backward_compared - len(backward_behind)} of {backward_compared} shapes"
                  + ("; not faster: " + "; ".join(backward_behind) if backward_behind else ""))
    else:
        result = NOT_RUN
    lines.append(f"| backward faster than fla and the compiled formula | {result} |")
    return lines


def decode_lines(run):
    decode = run.bench_table("decode")
    if decode and decode.rows:
        shape, factor = decode.column("decode"), decode.column("encoder /")
        values = [(row[shape], number(row[factor])) for row in decode.rows]
        over = [name for name, value in values if value is None or value > DECODE_FACTOR]
        result = (f"{'missed' if over else 'met'}: "
                  + ", ".join(f"{value:.2f}x ({name})" for name, value in values if value))
    else:
        result = NOT_RUN
    lines = [f"| decode dispatch (graph chain) within {DECODE_FACTOR}x of a copy node | {result} |"]
    pair = run.bench_table("pair")
    rows = ([row for row in pair.rows if row[pair.column("pair")] in PAIR_DECODE_SHAPES]
            if pair else [])
    if rows:
        label, factor, speedup = pair.column("pair"), pair.column("pair /"), pair.column("two /")
        for limit, column, word, bigger in ((DECODE_FACTOR, factor, "of the copy", False),
                                            (PAIR_DECODE_FACTOR, factor, "of the copy", False),
                                            (PAIR_SPEEDUP, speedup, "faster than two dispatches",
                                             True)):
            values = [(row[label], number(row[column])) for row in rows]
            bad = [name for name, value in values
                   if value is None or (value < limit if bigger else value > limit)]
            result = (f"{'missed' if bad else 'met'}: "
                      + ", ".join(f"{value:.2f}x ({name})" for name, value in values if value))
            target = (f"at least {limit}x {word}" if bigger else f"within {limit}x {word}")
            lines.append(f"| pair at decode (q and k each) {target} | {result} |")
    else:
        lines.append(f"| pair at decode | {NOT_RUN} |")
    return lines


def rstd_line(run):
    table = run.bench_table("rstd")
    if not (table and table.rows):
        return f"| forward with rstd within {RSTD_TOLERANCE:.0%} of the plain forward | {NOT_RUN} |"
    plain, with_rstd = table.column("ratio"), table.column("ratio with")
    off = []
    for row in table.rows:
        a, b = number(row[plain]), number(row[with_rstd])
        if a is None or b is None or b < a * (1 - RSTD_TOLERANCE):
            off.append(f"{row[0]} {row[plain]} -> {row[with_rstd]}")
    result = (f"{'missed' if off else 'met'}: {len(table.rows) - len(off)} of {len(table.rows)} "
              "shapes within it" + ("; outside: " + ", ".join(off) if off else ""))
    return f"| forward with rstd within {RSTD_TOLERANCE:.0%} of the plain forward | {result} |"


def targets_section(run):
    out = ["## Against the targets", prose(
        "The open issues' targets (issue 15: speed on every GPU, the CPU and the CLI; issue 13: "
        "the backward, rstd and the pair; issue 14: the eager PyTorch call), read off the tables "
        "above."), "", "| target | result |", "|---|---|"]
    out += tier_lines(run)
    out += peers_lines(run)
    out += decode_lines(run)
    out.append(rstd_line(run))

    backward = run.bench_table("backward")
    if backward and backward.rows:
        shape, ratio = backward.column("backward"), backward.column("ratio copy")
        values = [(row[shape], number(row[ratio])) for row in backward.rows]
        large = [(name, value) for name, value in values if name in BACKWARD_LARGE_SHAPES]
        low_large = [f"{name} {value:.3f}" for name, value in large
                     if value is None or value < BACKWARD_LARGE_RATIO]
        low_any = [f"{name} {value:.3f}" for name, value in values
                   if value is None or value < BACKWARD_RATIO]
        result = (f"{'missed' if low_large else 'met'}: {len(large) - len(low_large)} of "
                  f"{len(large)} large shapes meet it" + ("; below: " + ", ".join(low_large)
                                                   if low_large else ""))
        out.append(f"| backward ratio >= {BACKWARD_LARGE_RATIO} on the large regular shapes | "
                   f"{result} |")
        result = (f"{'missed' if low_any else 'met'}: {len(values) - len(low_any)} of "
                  f"{len(values)} shapes meet it" + ("; below: " + ", ".join(low_any) if low_any else ""))
        out.append(f"| backward ratio >= {BACKWARD_RATIO} on every shape | {result} |")
    else:
        out.append(f"| backward ratios | {NOT_RUN} |")

    host = run.bench_table("host")
    if host and len(host.rows) >= 2:
        empty, op = number(host.rows[0][1]), number(host.rows[1][1])
        met = empty is not None and op is not None and op - empty <= HOST_MARGIN_US
        result = f"{'met' if met else 'missed'}: {op:.2f} us vs {empty:.2f} us"
    else:
        result = NOT_RUN
    out.append(f"| host time per dispatch within {HOST_MARGIN_US:.0f} us of an empty-kernel "
               f"launch | {result} |")

    eager = next((table for table in run.peer_tables
                  if table.header and table.header[0].lower().startswith("host time per eager")),
                 None)
    row = next((row for row in eager.rows if row[0].startswith("l2norm")), None) if eager else None
    value = number(row[1]) if row else None
    if value is not None:
        others = ", ".join(f"{other[0]} {other[1]} us" for other in eager.rows if other is not row)
        result = (f"{'met' if value <= EAGER_HOST_US else 'missed'}: {value:.2f} us"
                  + (f" ({others})" if others else ""))
    else:
        result = NOT_RUN
    out.append(f"| host time of one eager PyTorch call (32 x 128 bf16) <= {EAGER_HOST_US:.0f} us "
               f"| {result} |")

    compiles = run.bench_table("compiles")
    if compiles and compiles.rows:
        cold, warm = compiles.column("cold first"), compiles.column("warm")
        colds = [number(row[cold]) for row in compiles.rows]
        warms = [number(row[warm]) for row in compiles.rows]
        met = max(colds) <= COLD_MS and max(warms) <= WARM_MS
        result = (f"{'met' if met else 'missed'}: cold medians {min(colds):.1f}-{max(colds):.1f} "
                  f"ms, warm {min(warms):.2f}-{max(warms):.2f} ms")
        range_column = compiles.column("cold range")
        if range_column is not None:
            highs = [number(row[range_column].split("-")[-1]) for row in compiles.rows]
            over = sum(1 for high in highs if high is not None and high > COLD_MS)
            if over:
                result += (f"; {over} of {len(highs)} variants had a single compile over "
                           f"{COLD_MS:.0f} ms")
    else:
        result = NOT_RUN
    out.append(f"| cold first call <= {COLD_MS:.0f} ms per variant (median of three), warm <= "
               f"{WARM_MS:.0f} ms | {result} |")
    return out


SUFFIXES = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_cpu_bench(text):
    """{benchmark name: {counter: value, 'label': str}} from l2norm-bench-cpu's JSON or console
    output; with repetitions, the median rows."""
    runs = {}
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict):
        entries = document.get("benchmarks", [])
        for entry in entries:
            aggregate = entry.get("aggregate_name")
            if entry.get("run_type") == "aggregate" and aggregate != "median":
                continue
            name = entry.get("run_name") or entry.get("name", "")
            if aggregate is None and any(e.get("aggregate_name") == "median" and
                                         e.get("run_name") == name for e in entries):
                continue
            values = {key: value for key, value in entry.items() if isinstance(value, (int, float))}
            values["label"] = entry.get("label", "")
            runs.setdefault(name, []).append(values)
        context = document.get("context", {})
    else:
        context = {}
        for line in text.splitlines():
            match = re.match(r"(l2_norm/\S+?)(_median|_mean|_stddev|_cv)?\s+\d", line)
            if not match or match.group(2) in ("_mean", "_stddev", "_cv"):
                continue
            values = {key: float(value) * SUFFIXES.get(suffix, 1.0) for key, value, suffix in
                      re.findall(r"(\w+)=(-?\d+(?:\.\d+)?)([kMGTmun]?)(?:/s)?\b", line)}
            label = re.search(r"(\d+ threads)", line)
            values["label"] = label.group(1) if label else ""
            values["median"] = match.group(2) == "_median"
            runs.setdefault(match.group(1), []).append(values)
        for name, values in runs.items():
            medians = [v for v in values if v.pop("median")]
            runs[name] = medians or values
    result = {}
    for name, values in runs.items():
        merged = dict(values[0])
        for key in ("copy_GBps", "ours_GBps", "ratio"):
            samples = sorted(v[key] for v in values if key in v)
            if samples:
                merged[key] = samples[len(samples) // 2]
        result[name] = merged
    return result, context


def cpu_shape(name):
    """'l2_norm/f32/131072x512/manual_time' -> ('131072 x 512 f32', input MiB); a layout suffix
    ('l2_norm/f32/131072x512/+16B/manual_time') -> ('131072 x 512 f32 at +16 B', ...)."""
    match = re.match(r"l2_norm/(\w+)/(\d+)x(\d+)(?:/\+(\d+)B)?", name)
    if not match:
        return name, None
    dtype, rows, dim = match.group(1), int(match.group(2)), int(match.group(3))
    size = {"f32": 4, "f16": 2, "bf16": 2}.get(dtype, 4)
    where = f" at +{match.group(4)} B" if match.group(4) else ""
    return f"{rows} x {dim} {dtype}{where}", rows * dim * size / (1 << 20)


def cpu_section(path, machine):
    title = "## CPU (`l2norm-bench-cpu`)"
    if path is None:
        return [title, f"{NOT_RUN} (no CPU bench output given)."]
    text = read_text(path)
    if text is None:
        return [title, f"{NOT_RUN} ({path} does not exist)."]
    runs, context = parse_cpu_bench(text)
    if not runs:
        return [title, f"{NOT_RUN} (no l2_norm benchmark in {path})."]
    labels = sorted({values.get("label", "") for values in runs.values()} - {""})
    repetitions = {int(values["repetitions"]) for values in runs.values()
                   if values.get("repetitions", 1) > 1}
    if repetitions:
        labels.append(f"median of {max(repetitions)} repetitions")
    where = machine or (f"{context['num_cpus']} CPUs" if "num_cpus" in context else "the machine")
    when = f", {context['date']}" if context.get("date") else ""
    out = [title,
           prose(f"{where}{when}{', ' + ', '.join(labels) if labels else ''}. The copy is the "
                 "faster of one memcpy and one memcpy per thread over the same bytes, timed in "
                 "the same iteration as the op; ratio = l2norm GB/s / copy GB/s (above 1 where "
                 "the op's non-temporal stores beat memcpy's)."),
           "",
           "| shape | MiB in | copy GB/s | l2norm GB/s | ratio |",
           "|---|---|---|---|---|"]
    for name, values in runs.items():
        shape, mib = cpu_shape(name)
        cells = [f"{values[key]:.1f}" if key in values else "n/a" for key in ("copy_GBps",
                                                                             "ours_GBps")]
        ratio = f"{values['ratio']:.2f}" if "ratio" in values else "n/a"
        mib_text = f"{mib:.0f}" if mib is not None else "n/a"
        out.append(f"| {shape} | {mib_text} | {cells[0]} | {cells[1]} | {ratio} |")
    ratios = [values["ratio"] for values in runs.values() if "ratio" in values]
    if ratios:
        low = [cpu_shape(name)[0] for name, values in runs.items()
               if values.get("ratio", CPU_RATIO) < CPU_RATIO]
        verdict = "met" if not low else "missed (" + ", ".join(low) + ")"
        out += ["", f"Target ratio >= {CPU_RATIO} on every shape: {verdict}; "
                    f"{min(ratios):.2f} .. {max(ratios):.2f}."]
    return out


def cpu_peers_section(path, machine):
    """bench/peers.py --cpu's output: l2norm, NumPy and FAISS on the same arrays, one process."""
    title = "## CPU peers (`bench/peers.py --cpu`)"
    if path is None:
        return []
    text = read_text(path)
    tables, titles, others = parse_blocks(text)
    if not tables:
        return [title, f"{NOT_RUN} (no table in {path})."]
    out = [title, prose(f"{machine or 'The CPU machine'}. l2norm.normalize, NumPy's "
                        "`x / np.linalg.norm(x, axis=-1, keepdims=True)` and FAISS's "
                        "normalize_L2 (in place) on the same float32 arrays in one process, "
                        "each against np.copyto of the same bytes; ratio = copy time / op time."),
           ""]
    missing = [line[4:-3].strip() for line in others if line.startswith("<!--")]
    for table in tables:
        out += [table.markdown(), ""]
    if missing:
        out += ["Not importable: " + "; ".join(missing) + ".", ""]
    return out[:-1]


def cli_section(path):
    """bench/cli_e2e.py's JSON as a table: the CLI against a durable copy of the same bytes."""
    title = "## CLI end to end (`bench/cli_e2e.py`)"
    if path is None:
        return []
    text = read_text(path)
    if text is None:
        return [title, f"{NOT_RUN} ({path} does not exist)."]
    try:
        document = json.loads(text)
    except ValueError:
        return [title, f"{NOT_RUN} ({path} is not JSON)."]
    results = document.get("results") or []
    if not results:
        return [title, f"{NOT_RUN} (no results in {path})."]
    runs = document.get("runs", "?")
    out = [title,
           prose(f"{document.get('machine', 'unknown machine')}, "
                 f"{document.get('date', 'date unknown')}, files in {document.get('folder', '?')}, "
                 f"device {document.get('device', '?')}. "
                 "`l2norm normalize IN -o OUT` (its output written to a file in OUT's folder, "
                 "fsync, linked into place) against a durable copy of IN done the same way (64 MiB "
                 f"pieces, fsync, rename, fsync of the folder), alternately, median of {runs} runs "
                 "each; ratio = l2norm time / copy time. Input cache: warm = IN in the page cache, "
                 "cold = IN's pages dropped before every run."),
           "",
           "| input | MiB | input cache | durable copy s | l2norm s | ratio |",
           "|---|---|---|---|---|---|"]
    nan = float("nan")
    for r in results:
        out.append(f"| {r.get('shape', '?')} | {r.get('mib', 0):.0f} | {r.get('cache', '?')} | "
                   f"{r.get('copy_median_s', nan):.3f} | {r.get('l2norm_median_s', nan):.3f} | "
                   f"{r.get('ratio', nan):.2f} |")
    ratios = [r["ratio"] for r in results if "ratio" in r]
    over = [f"{r['shape']} {r['cache']}" for r in results if r.get("ratio", 0) > CLI_FACTOR]
    verdict = "met" if not over else "missed (" + ", ".join(over) + ")"
    out += ["", f"Target l2norm within {CLI_FACTOR}x of the copy: {verdict}; "
                f"{min(ratios):.2f} .. {max(ratios):.2f}."]
    return out


def header(run, commit):
    card = run.card or "unknown card (summary.md has no device line)"
    if run.card_details:
        card += f" {run.card_details}"
    if run.driver:
        card += f", driver {run.driver}"
    stages = [name for name, prefix in (("build", "build:"), ("tests", "ctest:"),
                                        ("sanitize", "sanitizer "), ("bench", "bench:"),
                                        ("peers", "peers:"))
              if run.stage_line(prefix) is not None]
    line = f"Card: {card}. Run: {run.stamp or 'date unknown'}"
    if commit:
        line += f", on the tree of commit {commit}"
    line += f". Stages run: {' '.join(stages) if stages else 'none recorded'}."
    return ["# l2norm benchmark results", "",
            prose("Generated by `bench/make_results.py` from the output of `bench/device_run.sh`; "
                  "regenerate rather than edit."), "", prose(line), "", prose("Method. " + METHOD)]


def render(out_dir, cpu=None, cpu_machine=None, commit=None, ab_dir=None, cli=None,
           cpu_peers=None):
    run = DeviceRun(out_dir)
    ab_run = DeviceRun(ab_dir) if ab_dir else None
    sections = [header(run, commit), checks_section(run), bench_section(run),
                baseline_section(run, ab_run), peers_section(run), cpu_section(cpu, cpu_machine),
                cpu_peers_section(cpu_peers, cpu_machine), cli_section(cli), targets_section(run)]
    return "\n\n".join("\n".join(section) for section in sections if section) + "\n"


def render_host(cpu=None, cpu_machine=None, cli=None, cpu_peers=None):
    """The CPU and CLI sections alone."""
    sections = [cpu_section(cpu, cpu_machine), cpu_peers_section(cpu_peers, cpu_machine),
                cli_section(cli)]
    return "\n\n".join("\n".join(section) for section in sections if section) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?",
                        help="the folder bench/device_run.sh wrote ($OUT); without it, only the "
                             "CPU and CLI sections")
    parser.add_argument("--cpu", help="l2norm-bench-cpu output (JSON or console)")
    parser.add_argument("--cpu-machine", help="how to name the CPU machine in the CPU section")
    parser.add_argument("--cli", help="bench/cli_e2e.py --json output")
    parser.add_argument("--cpu-peers", help="bench/peers.py --cpu output, run on the CPU machine")
    parser.add_argument("--commit", help="the commit whose tree the device run built")
    parser.add_argument("--ab", help="the output folder of another device run whose baseline "
                                     "stage gives the A/B section")
    parser.add_argument("-o", "--output", help="write here instead of standard output")
    args = parser.parse_args(argv)
    if args.out_dir is None:
        if args.cpu is None and args.cli is None and args.cpu_peers is None:
            parser.error("give OUT_DIR, or --cpu, --cpu-peers or --cli for the host sections alone")
        text = render_host(args.cpu, args.cpu_machine, args.cli, args.cpu_peers)
    elif not Path(args.out_dir).is_dir():
        parser.error(f"{args.out_dir} is not a folder")
    else:
        text = render(args.out_dir, args.cpu, args.cpu_machine, args.commit, args.ab, args.cli,
                      args.cpu_peers)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
