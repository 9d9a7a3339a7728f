"""bench/make_results.py against a device run's output folder (bench/testdata: the files of the run
that bench/RESULTS.md reports) and against folders with pieces missing. Standard library and
pytest only: python3 -m pytest python_tests/test_make_results.py"""

import importlib.util
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "bench" / "testdata"
RUN = TESTDATA / "device_run"

spec = importlib.util.spec_from_file_location("make_results", ROOT / "bench" / "make_results.py")
make_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_results)


def section(text, title):
    """The lines of the section whose heading starts with `title`."""
    start = text.index("\n## " + title)
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def test_full_run_has_every_section_and_the_run_header():
    text = make_results.render(RUN, TESTDATA / "cpu_bench.json", "2-core VM", "5b75ef4")
    header = text[:text.index("\n## ")]
    assert "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, L2 50 MiB), driver 580.159.04" in header
    assert "2026-11-26T13:00:17Z" in header and "5b75ef4" in header
    assert "Stages run: build tests sanitize bench peers." in " ".join(header.split())
    assert "100% tests passed out of 189" in section(text, "Tests and sanitizers")
    bench = section(text, "l2norm")
    for line in (RUN / "bench.md").read_text().splitlines():
        if line.startswith("|") or line.startswith(("machine up", "registry:", "empty kernel")):
            assert line in bench
    assert "| 8 x 1048576 f32 | L2 flushed | 27.01 |" in section(text, "Peers")
    cpu = section(text, "CPU")
    assert "| 131072 x 512 f32 | 256 | 41.8 | 54.8 | 1.30 |" in cpu
    assert "median of 3 repetitions" in " ".join(cpu.split())
    targets = section(text, "Against the targets")
    assert "met: 0.960 .. 1.002 over 5 shapes" in targets
    assert "1.14x (32 x 128 bf16), 1.19x (2048 x 128 bf16)" in targets
    assert "met: 2.82 us vs 3.34 us" in targets
    # That run predates the backward table and peers.py's host-time table: their target rows
    # alone say so.
    assert "| backward ratios | not run |" in targets
    assert "(32 x 128 bf16) <= 10 us | not run |" in targets
    assert "not run" not in text.replace("| backward ratios | not run |", "").replace(
        "(32 x 128 bf16) <= 10 us | not run |", "")


def test_missing_pieces_are_reported_as_not_run(tmp_path):
    (tmp_path / "summary.md").write_text(
        "# device run 2027-01-02T03:04:05Z: NVIDIA H200, 590.1\nbuild: rc=0 in 30 s\n")
    text = make_results.render(tmp_path)
    assert "Card: NVIDIA H200, driver 590.1. Run: 2027-01-02T03:04:05Z." in text
    assert "Tests: not run. Sanitizers: not run." in text
    assert "not run (no bench.md)" in section(text, "l2norm")
    assert "not run (no peers.md)" in section(text, "Peers")
    assert "not run (no CPU bench output given)" in section(text, "CPU")
    assert section(text, "Against the targets").count("| not run |") == 6


def test_eager_host_time_target_reads_the_peers_table(tmp_path):
    for name in ("summary.md", "bench.md"):
        (tmp_path / name).write_text((RUN / name).read_text())
    host = ("\n| host time per eager call, 32 x 128 bf16 | us |\n|---|---|\n"
            "| l2norm.torch.l2norm | {} |\n| F.normalize | 27.10 |\n")
    (tmp_path / "peers.md").write_text((RUN / "peers.md").read_text() + host.format("7.50"))
    targets = section(make_results.render(tmp_path), "Against the targets")
    assert "| met: 7.50 us (F.normalize 27.10 us) |" in targets
    (tmp_path / "peers.md").write_text((RUN / "peers.md").read_text() + host.format("10.20"))
    targets = section(make_results.render(tmp_path), "Against the targets")
    assert "| missed: 10.20 us (F.normalize 27.10 us) |" in targets


def test_backward_targets(tmp_path):
    for name in ("summary.md", "bench.md"):
        shutil.copy(RUN / name, tmp_path / name)
    backward = (
        "\n| backward (rows x dim, dtype) | MiB moved | method | copy us | backward us | ratio "
        "copy/op | from x us | ratio from x | variant |\n|---|---|---|---|---|---|---|---|---|\n"
        "| 32 x 128 bf16 | 0.0 | graph replay | 0.89 | 1.59 | 0.563 | 2.09 | 0.429 | `k` |\n"
        "| 524288 x 128 bf16 | 384.0 | L2 flushed | 98.85 | 99.97 | 0.989 | 100.61 | 0.983 | `k` |\n"
        "| 65536 x 128 f32 | 96.0 | L2 flushed | 28.58 | 30.24 | 0.945 | 30.24 | 0.945 | `k` |\n")
    (tmp_path / "bench.md").write_text((tmp_path / "bench.md").read_text() + backward)
    targets = section(make_results.render(tmp_path), "Against the targets")
    assert "| backward ratio >= 0.95 on the large regular shapes | missed: 1 of 2 large shapes meet it; " \
           "below: 65536 x 128 f32 0.945 |" in targets
    assert "| backward ratio >= 0.9 on every shape | missed: 2 of 3 shapes meet it; below: " \
           "32 x 128 bf16 0.563 |" in targets


def test_empty_folder(tmp_path):
    text = make_results.render(tmp_path)
    assert "unknown card" in text
    assert "Tests: not run (no summary.md)" in text


def test_failed_stages_and_tests_are_named(tmp_path):
    for name in ("summary.md", "bench.md"):
        shutil.copy(RUN / name, tmp_path / name)
    summary = (tmp_path / "summary.md").read_text().replace("peers: rc=0", "peers: rc=124")
    (tmp_path / "summary.md").write_text(summary)
    (tmp_path / "tests.log").write_text(
        "99% tests passed, 1 tests failed out of 189\n\nThe following tests FAILED:\n"
        "\t 17 - CudaNumerics.Something (Failed)\nErrors while running CTest\n")
    bench = (tmp_path / "bench.md").read_text().replace("| 0.960 |", "| 0.940 |")
    (tmp_path / "bench.md").write_text(bench + "\nl2norm-bench: something went wrong\n")
    text = make_results.render(tmp_path)
    assert "17 - CudaNumerics.Something (Failed)" in text
    assert "not run (peers.py exited with rc=124)" in text
    assert "l2norm-bench: something went wrong" in section(text, "l2norm")
    assert "missed: 0.940 .. 1.002 over 5 shapes; below: 8 x 1048576 f32 0.940" in text


def test_peers_output_with_title_stderr_and_a_failed_peer(tmp_path):
    table = (RUN / "peers.md").read_text()
    (tmp_path / "peers.md").write_text(
        "# peers on NVIDIA H100 80GB HBM3, torch 2.9.0\n\nW1126 some torch warning\n"
        "<!-- compiled 8x1048576: RuntimeError: out of memory -->\n" + table)
    text = section(make_results.render(tmp_path), "Peers")
    assert "Peers on NVIDIA H100 80GB HBM3, torch 2.9.0." in text
    assert "compiled 8x1048576: RuntimeError: out of memory" in text
    assert "W1126" not in text


def test_cpu_console_output(tmp_path):
    console = tmp_path / "cpu.txt"
    console.write_text(
        "Running build/bin/l2norm-bench-cpu\n"
        "l2_norm/f32/131072x512/manual_time_mean   9.9 ms  1.0 ms  3 copy_GBps=40G/s ratio=1.2\n"
        "l2_norm/f32/131072x512/manual_time_median 9.8 ms  1.0 ms  3 bytes_per_second=54.8G/s "
        "copy1_GBps=30.1 copyN_GBps=41.8 copy_GBps=41.8 ours_GBps=54.8 ratio=1.30 2 threads\n")
    text = section(make_results.render(tmp_path, console), "CPU")
    assert "| 131072 x 512 f32 | 256 | 41.8 | 54.8 | 1.30 |" in text


def test_cpu_json_without_repetitions_takes_each_run(tmp_path):
    document = {"context": {"num_cpus": 8, "date": "2027-01-01T00:00:00"},
                "benchmarks": [{"name": "l2_norm/bf16/262144x512/manual_time",
                                "run_type": "iteration", "copy_GBps": 20.0, "ours_GBps": 19.0,
                                "ratio": 0.95, "label": "8 threads"}]}
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps(document))
    text = section(make_results.render(tmp_path, path), "CPU")
    assert "8 CPUs, 2027-01-01T00:00:00, 8 threads." in " ".join(text.split())
    assert "| 262144 x 512 bf16 | 256 | 20.0 | 19.0 | 0.95 |" in text


def test_command_line_writes_the_file(tmp_path):
    target = tmp_path / "RESULTS.md"
    assert make_results.main([str(RUN), "-o", str(target)]) == 0
    assert target.read_text().startswith("# l2norm benchmark results\n")


def test_baseline_stage_gives_an_ab_table(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    bench = (run / "bench.md").read_text()
    slower = bench.replace("| 8 x 1048576 f32 | 64.0 | L2 flushed | 27.04 | 28.16 |",
                           "| 8 x 1048576 f32 | 64.0 | L2 flushed | 27.04 | 30.00 |")
    assert slower != bench
    (run / "baseline.md").write_text(slower)
    (run / "bench_again.md").write_text(bench)
    text = make_results.render(run)
    assert "## A/B against the baseline tree" in text
    row = next(line for line in text.splitlines() if line.startswith("| 8 x 1048576 f32 | 28.16"))
    assert "| 30.00 | 28.16 |" in row
    assert "| baseline |" in text and "| this tree again |" in text


def test_no_baseline_no_ab_section():
    assert "A/B" not in make_results.render(RUN)


def test_ab_section_from_another_run(tmp_path):
    other = tmp_path / "other"
    shutil.copytree(RUN, other)
    (other / "baseline.md").write_text((RUN / "bench.md").read_text())
    text = make_results.render(RUN, ab_dir=other)
    assert "## A/B against the baseline tree" in text and "not the run above" in text


def test_cpu_section_names_the_shapes_below_the_target(tmp_path):
    document = {"context": {"num_cpus": 2},
                "benchmarks": [{"name": "l2_norm/f16/262144x512/manual_time",
                                "run_type": "iteration", "copy_GBps": 40.0, "ours_GBps": 30.0,
                                "ratio": 0.75, "label": "2 threads"},
                               {"name": "l2_norm/f32/131072x512/manual_time",
                                "run_type": "iteration", "copy_GBps": 40.0, "ours_GBps": 50.0,
                                "ratio": 1.25, "label": "2 threads"}]}
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps(document))
    text = section(make_results.render(tmp_path, path), "CPU")
    assert "| 262144 x 512 f16 | 256 | 40.0 | 30.0 | 0.75 |" in text
    assert "Target ratio >= 0.9 on every shape: missed (262144 x 512 f16); 0.75 .. 1.25." in text


def test_cli_section_from_cli_e2e_json():
    text = make_results.render(RUN, cli=TESTDATA / "cli_e2e.json")
    cli = section(text, "CLI end to end")
    assert "| 87381 x 768 f32 | 256 | warm | 0.800 | 0.880 | 1.10 |" in cli
    assert "| 87381 x 768 f32 | 256 | cold | 1.500 | 1.950 | 1.30 |" in cli
    assert "median of 5 runs" in " ".join(cli.split())
    assert "missed (87381 x 768 f32 cold); 1.10 .. 1.30." in cli
    assert text.index("## CPU") < text.index("## CLI end to end") < text.index("## Against")


def test_no_cli_output_no_cli_section():
    assert "CLI end to end" not in make_results.render(RUN)


def test_host_sections_alone_need_no_device_run(tmp_path, capsys):
    assert make_results.main(["--cpu", str(TESTDATA / "cpu_bench.json"),
                              "--cli", str(TESTDATA / "cli_e2e.json")]) == 0
    text = capsys.readouterr().out
    assert text.startswith("## CPU (`l2norm-bench-cpu`)")
    assert "## CLI end to end" in text and "Card:" not in text


def test_cpu_peers_section(tmp_path):
    peers = tmp_path / "peers_cpu.md"
    peers.write_text(
        "<!-- faiss: not importable (No module named 'faiss') -->\n"
        "| shape (rows x dim, f32) | copy us | l2norm us (ratio) | NumPy us (ratio) | "
        "FAISS normalize_L2 us (ratio) |\n|---|---|---|---|---|\n"
        "| 65536 x 128 f32 | 2749.6 | 2444.6 (1.12) | 13418.8 (0.20) | n/a |\n")
    text = make_results.render_host(cpu_peers=str(peers), cpu_machine="2-core VM")
    body = section("\n" + text, "CPU peers")
    assert "| 65536 x 128 f32 | 2749.6 | 2444.6 (1.12) | 13418.8 (0.20) | n/a |" in body
    assert "2-core VM." in body
    assert "Not importable: faiss: not importable (No module named 'faiss')." in body
    assert "## CPU peers" not in make_results.render_host(cpu=str(TESTDATA / "cpu_bench.json"))
