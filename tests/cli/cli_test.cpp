// End-to-end runs of the built l2norm binary: results against the float64 reference, chunking,
// exit statuses, one-line errors, and that failures and interrupts leave no output behind.
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "byte_source.hpp"
#include "fvecs.hpp"
#include "npy.hpp"
#include "normalize.hpp"
#include "npy_bytes.hpp"
#include "row_io.hpp"
#include "support/reference.hpp"
#include "temp_folder.hpp"

extern char** environ;

namespace l2norm {
namespace {

using io::ElementType;
using testing::HostTensor;
using testing::read_file;
using testing::TempFolder;
using testing::write_file;

struct RunResult {
  int status = -1;  // exit status, or 128 + signal
  std::string out;
  std::string err;
};

std::string text_of(const std::string& path) {
  const std::vector<std::byte> bytes = read_file(path);
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

pid_t spawn(const std::vector<std::string>& argv, const TempFolder& logs) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, logs.file("stdout.log").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, logs.file("stderr.log").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int failed = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(failed, 0) << "cannot start " << argv[0];
  return pid;
}

RunResult wait_for(pid_t pid, const TempFolder& logs) {
  int wait_status = 0;
  RunResult result;
  if (::waitpid(pid, &wait_status, 0) == pid) {
    result.status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
  }
  result.out = text_of(logs.file("stdout.log"));
  result.err = text_of(logs.file("stderr.log"));
  return result;
}

// Waits at most `seconds`; a child still running then is killed and reported as status -1.
RunResult wait_with_deadline(pid_t pid, const TempFolder& logs, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  int wait_status = 0;
  RunResult result;
  while (true) {
    const pid_t done = ::waitpid(pid, &wait_status, WNOHANG);
    if (done == pid) {
      result.status =
          WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
      break;
    }
    if (done < 0 || std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &wait_status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  result.out = text_of(logs.file("stdout.log"));
  result.err = text_of(logs.file("stderr.log"));
  return result;
}

// Runs the binary with `arguments`; logs go to their own folder so data folders stay clean.
RunResult run_cli(const std::vector<std::string>& arguments) {
  const TempFolder logs;
  std::vector<std::string> argv = {L2NORM_CLI_PATH};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  return wait_for(spawn(argv, logs), logs);
}

RunResult run_shell(const std::string& script) {
  const TempFolder logs;
  return wait_for(spawn({"/bin/sh", "-c", script}, logs), logs);
}

void write_npy(const std::string& path, const HostTensor& values, std::vector<std::int64_t> shape,
               ElementType element) {
  std::vector<std::byte> bytes = io::make_npy_header(element, shape);
  const auto* data = static_cast<const std::byte*>(values.data());
  bytes.insert(bytes.end(), data, data + values.bytes());
  write_file(path, bytes);
}

struct LoadedArray {
  io::ArrayInfo info;
  std::vector<std::byte> values;
};

LoadedArray load(const std::string& path, std::optional<ElementType> declared = {}) {
  const io::FileSource source(path);
  LoadedArray array{io::read_array_info(source, declared), {}};
  const io::RowReader reader(source, array.info.layout);
  array.values.resize(reader.buffer_bytes(array.info.layout.rows));
  reader.read_rows(0, array.info.layout.rows, array.values);
  array.values.resize(static_cast<std::size_t>(array.info.layout.rows) *
                      array.info.layout.row_value_bytes());
  return array;
}

HostTensor as_tensor(const LoadedArray& array, DType dtype) {
  HostTensor tensor(dtype, array.values.size() / dtype_size(dtype));
  std::memcpy(tensor.data(), array.values.data(), array.values.size());
  return tensor;
}

// True once process `pid` holds open a file in `folder` other than `input_name`: its output,
// named or not (an O_TMPFILE file shows as "FOLDER/#INODE (deleted)" under /proc/PID/fd).
bool writes_output(pid_t pid, const TempFolder& folder, const std::string& input_name) {
  const std::string prefix = folder.path().string() + "/";
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", error)) {
    const std::filesystem::path target = std::filesystem::read_symlink(entry.path(), error);
    if (error) continue;
    const std::string name = target.string();
    if (name.rfind(prefix, 0) == 0 && name != prefix + input_name) return true;
  }
  return false;
}

bool supports_unnamed_files(const TempFolder& folder) {
  const int fd = ::open(folder.path().c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

bool has_temporary(const TempFolder& folder) {
  for (const std::string& name : folder.entries()) {
    if (name.find(".tmp.") != std::string::npos) return true;
  }
  return false;
}

void expect_one_error_line(const RunResult& result, const std::string& path,
                           const std::string& what) {
  EXPECT_EQ(result.err.rfind("l2norm: error: " + path + ": ", 0), 0u) << result.err;
  EXPECT_NE(result.err.find(what), std::string::npos) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
}

TEST(Cli, HelpAndUsage) {
  const RunResult help = run_cli({"--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("normalize IN -o OUT"), std::string::npos);
  const RunResult normalize_help = run_cli({"normalize", "--help"});
  EXPECT_EQ(normalize_help.status, 0);
  EXPECT_NE(normalize_help.out.find("'<V2'"), std::string::npos);
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{},
        {"frobnicate"},
        {"normalize"},
        {"normalize", "a.npy"},
        {"normalize", "a.npy", "-o", "b.txt"},
        {"normalize", "a.npy", "-o", "b.npy", "--eps", "x"},
        {"normalize", "a.npy", "-o", "b.npy", "--eps", "-1"},
        {"normalize", "a.npy", "-o", "b.npy", "--device", "tpu"},
        {"normalize", "a.npy", "-o", "b.fvecs", "--out-dtype", "f16"},
        {"normalize", "a.npy", "-o", "b.npy", "--bogus"},
        {"stats"},
        {"info", "x"}}) {
    const RunResult result = run_cli(bad);
    EXPECT_EQ(result.status, 2) << ::testing::PrintToString(bad);
    EXPECT_NE(result.err.find("usage: l2norm"), std::string::npos) << result.err;
  }
}

TEST(Cli, InfoListsTheCpu) {
  const RunResult result = run_cli({"info"});
  EXPECT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(result.out.rfind("l2norm ", 0), 0u) << result.out;
  EXPECT_NE(result.out.find("cpu"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("cuda"), std::string::npos) << result.out;
}

struct DtypeCase {
  ElementType stored;
  DType compute;
  const char* in_dtype_flag;
};

TEST(Cli, NormalizesEachDtypeWithinBudget) {
  const DtypeCase cases[] = {{ElementType::f32, DType::f32, nullptr},
                             {ElementType::f16, DType::f16, nullptr},
                             {ElementType::bf16, DType::bf16, "bf16"}};
  for (const DtypeCase& c : cases) {
    const TempFolder folder;
    const std::int64_t rows = 300, dim = 96;
    const HostTensor input = testing::random_tensor(c.compute, rows * dim, 11);
    write_npy(folder.file("in.npy"), input, {3, 100, dim}, c.stored);
    std::vector<std::string> args = {
        "normalize", folder.file("in.npy"), "-o",  folder.file("out.npy"), "--device",
        "cpu",       "--chunk-size",        "5000"};
    if (c.in_dtype_flag) args.insert(args.end(), {"--in-dtype", c.in_dtype_flag});
    const RunResult result = run_cli(args);
    ASSERT_EQ(result.status, 0) << result.err;
    EXPECT_NE(result.out.find("normalized 300 rows x 96"), std::string::npos) << result.out;
    const LoadedArray output = load(folder.file("out.npy"), c.stored);
    EXPECT_EQ(output.info.shape, (std::vector<std::int64_t>{3, 100, dim}));
    EXPECT_EQ(output.info.layout.element, c.stored);
    testing::expect_within_budget(as_tensor(output, c.compute),
                                  testing::reference_l2_norm(input, rows, dim, {}), dim, false,
                                  "cli");
  }
}

TEST(Cli, WidensMixedTypesToF32AndRoundsOnce) {
  const TempFolder folder;
  const std::int64_t rows = 64, dim = 40;
  const HostTensor input = testing::random_tensor(DType::f16, rows * dim, 5);
  write_npy(folder.file("in.npy"), input, {rows, dim}, ElementType::f16);
  const RunResult result =
      run_cli({"normalize", folder.file("in.npy"), "-o", folder.file("out.npy"), "--out-dtype",
               "bf16", "--eps", "1e-3", "--eps-mode", "clamp", "--scale", "0.5", "-q"});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_TRUE(result.out.empty()) << result.out;
  const LoadedArray output = load(folder.file("out.npy"), ElementType::bf16);
  L2NormOptions options;
  options.eps = 1e-3f;
  options.eps_mode = EpsMode::clamp;
  options.scale = 0.5f;
  testing::expect_within_budget(as_tensor(output, DType::bf16),
                                testing::reference_l2_norm(input, rows, dim, options), dim, true,
                                "f16 -> bf16");
}

TEST(Cli, ChunkSizeDoesNotChangeTheResult) {
  const TempFolder folder;
  const std::int64_t rows = 257, dim = 33;
  write_npy(folder.file("in.npy"), testing::random_tensor(DType::f32, rows * dim, 3), {rows, dim},
            ElementType::f32);
  std::vector<std::vector<std::byte>> outputs;
  for (const char* chunk : {"1", "1000", "64M"}) {
    const std::string out = folder.file(std::string("out_") + chunk + ".npy");
    const RunResult result =
        run_cli({"normalize", folder.file("in.npy"), "-o", out, "--chunk-size", chunk, "-q"});
    ASSERT_EQ(result.status, 0) << result.err;
    outputs.push_back(read_file(out));
  }
  EXPECT_EQ(outputs[0], outputs[1]);
  EXPECT_EQ(outputs[0], outputs[2]);
}

// Without --chunk-size a file of up to 512 MiB is cut into eight chunks (at least 4 MiB each), so
// its read, compute and write overlap; a larger one into 64 MiB chunks.
TEST(Cli, DefaultChunkIsAnEighthOfASmallInput) {
  constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
  EXPECT_EQ(cli::default_chunk_bytes(64 * kMiB), 8 * kMiB);
  EXPECT_EQ(cli::default_chunk_bytes(512 * kMiB), 64 * kMiB);
  EXPECT_EQ(cli::default_chunk_bytes(4096 * kMiB), 64 * kMiB);
  EXPECT_EQ(cli::default_chunk_bytes(kMiB), 4 * kMiB);
  EXPECT_EQ(cli::default_chunk_bytes(0), 4 * kMiB);
}

TEST(Cli, FvecsInAndOut) {
  const TempFolder folder;
  write_file(folder.file("in.fvecs"), testing::fvecs_image({{3, 4}, {0, 0}, {-6, 8}}));
  ASSERT_EQ(run_cli({"normalize", folder.file("in.fvecs"), "-o", folder.file("out.fvecs"), "--eps",
                     "0", "--chunk-size", "1", "-q"})
                .status,
            0);
  const std::vector<std::byte> expected =
      testing::fvecs_image({{0.6f, 0.8f}, {NAN, NAN}, {-0.6f, 0.8f}});
  const std::vector<std::byte> got = read_file(folder.file("out.fvecs"));
  ASSERT_EQ(got.size(), expected.size());
  const LoadedArray array = load(folder.file("out.fvecs"));
  float values[6];
  std::memcpy(values, array.values.data(), sizeof values);
  EXPECT_EQ(values[0], 0.6f);
  EXPECT_EQ(values[1], 0.8f);
  EXPECT_TRUE(std::isnan(values[2]));  // a zero row with eps == 0 is 0/0, as documented
  EXPECT_EQ(values[4], -0.6f);
  ASSERT_EQ(
      run_cli({"normalize", folder.file("out.fvecs"), "-o", folder.file("back.npy"), "-q"}).status,
      0);
  EXPECT_EQ(load(folder.file("back.npy")).info.shape, (std::vector<std::int64_t>{3, 2}));
}

TEST(Cli, F64IsComputedInF32AndWrittenAsF32) {
  const TempFolder folder;
  std::vector<std::byte> bytes = io::make_npy_header(ElementType::f64, {{2, 2}});
  const double values[] = {3e20, 4e20, 1.0, 0.0};
  const auto* raw = reinterpret_cast<const std::byte*>(values);
  bytes.insert(bytes.end(), raw, raw + sizeof values);
  write_file(folder.file("in.npy"), bytes);
  ASSERT_EQ(
      run_cli({"normalize", folder.file("in.npy"), "-o", folder.file("out.npy"), "-q"}).status, 0);
  const LoadedArray output = load(folder.file("out.npy"));
  EXPECT_EQ(output.info.layout.element, ElementType::f32);
  float result[4];
  std::memcpy(result, output.values.data(), sizeof result);
  EXPECT_NEAR(result[0], 0.6f, 1e-7f);
  EXPECT_NEAR(result[1], 0.8f, 1e-7f);
  EXPECT_NEAR(result[2], 1.0f, 1e-6f);
}

TEST(Cli, ZeroRowsGiveAnEmptyArray) {
  const TempFolder folder;
  write_npy(folder.file("in.npy"), HostTensor(DType::f32, 0), {0, 8}, ElementType::f32);
  const RunResult result =
      run_cli({"normalize", folder.file("in.npy"), "-o", folder.file("out.npy")});
  ASSERT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(load(folder.file("out.npy")).info.shape, (std::vector<std::int64_t>{0, 8}));
}

TEST(Cli, MalformedInputIsExitTwoWithOneLineAndNoOutput) {
  const TempFolder folder;
  const std::string input = folder.file("bad.npy");
  write_file(input, testing::npy_image(
                        1, 0, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2)}", 16));
  const std::vector<std::byte> before = read_file(input);
  const RunResult result = run_cli({"normalize", input, "-o", folder.file("out.npy")});
  EXPECT_EQ(result.status, 2);
  expect_one_error_line(result, input, "fortran_order is True");
  EXPECT_EQ(folder.entries(), std::vector<std::string>{"bad.npy"});
  EXPECT_EQ(read_file(input), before);

  const RunResult v2 =
      run_cli({"normalize", input, "-o", folder.file("out.npy"), "--in-dtype", "f16"});
  EXPECT_EQ(v2.status, 2);
  const RunResult missing =
      run_cli({"normalize", folder.file("none.npy"), "-o", folder.file("out.npy")});
  EXPECT_EQ(missing.status, 1);
  expect_one_error_line(missing, folder.file("none.npy"), "cannot open");
}

TEST(Cli, BfloatArraysNeedTheInDtypeFlag) {
  const TempFolder folder;
  write_npy(folder.file("in.npy"), testing::random_tensor(DType::bf16, 8, 1), {2, 4},
            ElementType::bf16);
  const RunResult result =
      run_cli({"normalize", folder.file("in.npy"), "-o", folder.file("out.npy")});
  EXPECT_EQ(result.status, 2);
  expect_one_error_line(result, folder.file("in.npy"), "pass --in-dtype bf16");
}

TEST(Cli, ErrorMidwayLeavesAnExistingOutputUntouched) {
  const TempFolder folder;
  // 400 good records of dim 4, then one of dim 9 that occupies the bytes of two dim-4 records.
  std::vector<std::vector<float>> rows(400, {1, 2, 3, 4});
  rows.push_back({1, 2, 3, 4, 5, 6, 7, 8, 9});
  write_file(folder.file("in.fvecs"), testing::fvecs_image(rows));
  write_file(folder.file("out.npy"), testing::as_bytes("precious"));
  const RunResult result = run_cli({"normalize", folder.file("in.fvecs"), "-o",
                                    folder.file("out.npy"), "--chunk-size", "200", "-q"});
  EXPECT_EQ(result.status, 2);
  expect_one_error_line(result, folder.file("in.fvecs"), "record 400 has dimension 9");
  EXPECT_EQ(read_file(folder.file("out.npy")), testing::as_bytes("precious"));
  EXPECT_FALSE(has_temporary(folder));
}

TEST(Cli, OutputSameAsInputIsRefused) {
  const TempFolder folder;
  write_file(folder.file("in.fvecs"), testing::fvecs_image({{3, 4}}));
  const std::vector<std::byte> before = read_file(folder.file("in.fvecs"));
  std::filesystem::create_hard_link(folder.file("in.fvecs"), folder.file("link.fvecs"));
  for (const char* out : {"in.fvecs", "link.fvecs"}) {
    const RunResult result =
        run_cli({"normalize", folder.file("in.fvecs"), "-o", folder.file(out)});
    EXPECT_EQ(result.status, 2);
    EXPECT_NE(result.err.find("the output is the input file"), std::string::npos) << result.err;
  }
  EXPECT_EQ(read_file(folder.file("in.fvecs")), before);
  EXPECT_FALSE(has_temporary(folder));
}

TEST(Cli, WriteFailureIsExitOneAndLeavesNothing) {
  const TempFolder folder;
  const std::int64_t rows = 4000, dim = 64;
  write_npy(folder.file("in.npy"), testing::random_tensor(DType::f32, rows * dim, 9), {rows, dim},
            ElementType::f32);
  // ulimit -f counts 512-byte blocks: the 1 MiB output stops at 256 KiB, like a full disk.
  const RunResult result =
      run_shell("ulimit -f 512 && exec '" + std::string(L2NORM_CLI_PATH) + "' normalize '" +
                folder.file("in.npy") + "' -o '" + folder.file("out.npy") + "' --chunk-size 64K");
  EXPECT_EQ(result.status, 1) << result.err;
  EXPECT_NE(result.err.find("write failed"), std::string::npos) << result.err;
  EXPECT_EQ(folder.entries(), std::vector<std::string>{"in.npy"});
}

TEST(Cli, MissingOutputFolderIsExitOne) {
  const TempFolder folder;
  write_file(folder.file("in.fvecs"), testing::fvecs_image({{3, 4}}));
  const RunResult result =
      run_cli({"normalize", folder.file("in.fvecs"), "-o", folder.file("missing/out.npy")});
  EXPECT_EQ(result.status, 1);
  expect_one_error_line(result, folder.file("missing/out.npy"), "temporary file");
}

// Starts a normalize run long enough to be interrupted and returns once it is writing its output.
pid_t start_long_run(const TempFolder& folder, const TempFolder& logs) {
  const std::int64_t rows = 400000, dim = 16;
  write_npy(folder.file("in.npy"), testing::random_tensor(DType::f32, rows * dim, 2), {rows, dim},
            ElementType::f32);
  // One row per chunk makes the run long enough to be interrupted part way.
  const pid_t pid = spawn({L2NORM_CLI_PATH, "normalize", folder.file("in.npy"), "-o",
                           folder.file("out.npy"), "--chunk-size", "1", "--device", "cpu"},
                          logs);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!writes_output(pid, folder, "in.npy") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_TRUE(writes_output(pid, folder, "in.npy")) << "the run never started writing";
  return pid;
}

class CliInterrupt : public ::testing::TestWithParam<int> {};

// Every catchable termination signal (a closed terminal sends SIGHUP) stops the run, removes
// the temporary output and exits 130.
TEST_P(CliInterrupt, StopsCleansUpAndExits130) {
  const TempFolder folder;
  const TempFolder logs;
  const pid_t pid = start_long_run(folder, logs);
  ::kill(pid, GetParam());
  const RunResult result = wait_with_deadline(pid, logs, 20);
  EXPECT_EQ(result.status, 130) << result.err;
  EXPECT_NE(result.err.find("interrupted by SIG"), std::string::npos) << result.err;
  EXPECT_EQ(folder.entries(), std::vector<std::string>{"in.npy"});
}

INSTANTIATE_TEST_SUITE_P(Signals, CliInterrupt,
                         ::testing::Values(SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                                           SIGALRM, SIGPIPE, SIGRTMIN));

// SIGKILL cannot be caught; with an unnamed (O_TMPFILE) output there is nothing to clean up.
TEST(Cli, SigkillLeavesNoTemporaryWhereOTmpfileWorks) {
  const TempFolder folder;
  if (!supports_unnamed_files(folder)) GTEST_SKIP() << "no O_TMPFILE on " << folder.path();
  const TempFolder logs;
  const pid_t pid = start_long_run(folder, logs);
  ::kill(pid, SIGKILL);
  const RunResult result = wait_with_deadline(pid, logs, 20);
  EXPECT_EQ(result.status, 128 + SIGKILL);
  EXPECT_EQ(folder.entries(), std::vector<std::string>{"in.npy"});
}

// open() of a FIFO waits for a writer unless O_NONBLOCK; the tool must refuse it at once.
TEST(Cli, FifoInputWithoutAWriterFailsAtOnce) {
  const TempFolder folder;
  const TempFolder logs;
  ASSERT_EQ(::mkfifo(folder.file("in.npy").c_str(), 0600), 0);
  for (const char* command : {"normalize", "stats"}) {
    std::vector<std::string> argv = {L2NORM_CLI_PATH, command, folder.file("in.npy")};
    if (std::string(command) == "normalize") argv.insert(argv.end(), {"-o", folder.file("o.npy")});
    const RunResult result = wait_with_deadline(spawn(argv, logs), logs, 10);
    EXPECT_EQ(result.status, 1) << command << " hung or failed otherwise: " << result.err;
    expect_one_error_line(result, folder.file("in.npy"), "not a regular file");
  }
  EXPECT_EQ(folder.entries(), std::vector<std::string>{"in.npy"});
}

// NAME_MAX is 255 bytes: an OUT of that length is valid and its temporary must fit too.
TEST(Cli, LongOutputNameWorks) {
  const TempFolder folder;
  write_file(folder.file("in.fvecs"), testing::fvecs_image({{3, 4}}));
  const std::string out = folder.file(std::string(251 - 4, 'o') + ".npy");
  for (int pass = 0; pass < 2; ++pass) {  // absent, then replaced
    const RunResult result = run_cli({"normalize", folder.file("in.fvecs"), "-o", out, "-q"});
    EXPECT_EQ(result.status, 0) << result.err;
  }
  EXPECT_EQ(load(out).info.shape, (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(folder.entries().size(), 2u);
}

// Header bytes are quoted with non-printable bytes escaped and at most about 80 of them shown.
TEST(Cli, ErrorsQuoteHeaderBytesEscapedAndShort) {
  const TempFolder folder;
  const std::string escape = folder.file("escape.npy");
  write_file(escape, testing::npy_image(
                         1, 0, "{'descr': '\x1b[31m', 'fortran_order': False, 'shape': (2,)}", 0));
  const RunResult colored = run_cli({"normalize", escape, "-o", folder.file("out.npy")});
  EXPECT_EQ(colored.status, 2);
  expect_one_error_line(colored, escape, "unsupported descr '\\x1b[31m'");
  EXPECT_EQ(colored.err.find('\x1b'), std::string::npos) << colored.err;

  const std::string huge = folder.file("huge.npy");
  write_file(huge, testing::npy_image(2, 0,
                                      "{'descr': '" + std::string(900000, 'A') +
                                          "', 'fortran_order': False, 'shape': (2,)}",
                                      0));
  const RunResult flood = run_cli({"stats", huge});
  EXPECT_EQ(flood.status, 2);
  expect_one_error_line(flood, huge, "(900000 bytes)");
  EXPECT_LT(flood.err.size(), huge.size() + 400) << flood.err.size();

  const std::string shape = folder.file("shape.npy");
  std::string dims;
  for (int i = 0; i < 100000; ++i) dims += "1, ";
  write_file(shape,
             testing::npy_image(
                 2, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "0)}", 0));
  const RunResult long_shape = run_cli({"stats", shape});
  EXPECT_EQ(long_shape.status, 2);
  expect_one_error_line(long_shape, shape, "(100001 dimensions)");
  EXPECT_LT(long_shape.err.size(), shape.size() + 400) << long_shape.err.size();
}

TEST(Cli, EpsOutsideF32RangeIsSaidSo) {
  for (const char* big : {"1e39", "3.5e38", "-1e39"}) {
    const RunResult result = run_cli({"normalize", "a.npy", "-o", "b.npy", "--eps", big});
    EXPECT_EQ(result.status, 2);
    EXPECT_NE(result.err.find("out of f32 range"), std::string::npos) << result.err;
  }
  const RunResult tiny = run_cli({"normalize", "a.npy", "-o", "b.npy", "--scale", "1e-50"});
  EXPECT_EQ(tiny.status, 2);
  EXPECT_NE(tiny.err.find("--scale: 1e-50 is nonzero but below the smallest f32"),
            std::string::npos)
      << tiny.err;
  const TempFolder folder;
  write_file(folder.file("in.fvecs"), testing::fvecs_image({{3, 4}}));
  for (const char* fine : {"0", "1e-45", "3.4e38"}) {
    const RunResult result = run_cli({"normalize", folder.file("in.fvecs"), "-o",
                                      folder.file("out.fvecs"), "--eps", fine, "-q"});
    EXPECT_EQ(result.status, 0) << fine << ": " << result.err;
  }
}

TEST(Cli, OutputDirectoryIsRefusedBeforeAnyWork) {
  const TempFolder folder;
  write_file(folder.file("in.fvecs"), testing::fvecs_image({{3, 4}}));
  std::filesystem::create_directory(folder.file("out.npy"));
  const RunResult result =
      run_cli({"normalize", folder.file("in.fvecs"), "-o", folder.file("out.npy")});
  EXPECT_EQ(result.status, 2);
  expect_one_error_line(result, folder.file("out.npy"), "is a directory");
  EXPECT_EQ(folder.entries(), (std::vector<std::string>{"in.fvecs", "out.npy"}));
}

TEST(Cli, ReplacingAReadOnlyOutputKeepsItsMode) {
  const TempFolder folder;
  write_file(folder.file("in.fvecs"), testing::fvecs_image({{3, 4}}));
  write_file(folder.file("out.npy"), testing::as_bytes("old"));
  ASSERT_EQ(::chmod(folder.file("out.npy").c_str(), 0444), 0);
  const RunResult result =
      run_cli({"normalize", folder.file("in.fvecs"), "-o", folder.file("out.npy"), "-q"});
  EXPECT_EQ(result.status, 0) << result.err;
  struct stat info {};
  ASSERT_EQ(::stat(folder.file("out.npy").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0444u);
  EXPECT_EQ(load(folder.file("out.npy")).info.shape, (std::vector<std::int64_t>{1, 2}));
}

TEST(Cli, StatsOfRowsThatAreAllNonFinite) {
  const TempFolder folder;
  write_file(folder.file("nan.fvecs"), testing::fvecs_image({{NAN, 1}, {INFINITY, 0}}));
  const RunResult none = run_cli({"stats", folder.file("nan.fvecs")});
  EXPECT_EQ(none.status, 0) << none.err;
  EXPECT_NE(none.out.find("row L2 norm: none finite (all 2 rows hold NaN or Inf)"),
            std::string::npos)
      << none.out;
  EXPECT_EQ(none.out.find("min 0"), std::string::npos) << none.out;

  write_file(folder.file("some.fvecs"), testing::fvecs_image({{NAN, 1}, {3, 4}, {0, 2}}));
  const RunResult some = run_cli({"stats", folder.file("some.fvecs")});
  EXPECT_EQ(some.status, 0) << some.err;
  EXPECT_NE(some.out.find("min 2  max 5  mean 3.5"), std::string::npos) << some.out;
  EXPECT_NE(some.out.find("over the 2 finite rows"), std::string::npos) << some.out;
  EXPECT_NE(some.out.find("rows with NaN or Inf: 1"), std::string::npos) << some.out;
}

TEST(Cli, StatsShowsUnitNormsAfterNormalize) {
  const TempFolder folder;
  write_npy(folder.file("in.npy"), testing::random_tensor(DType::f32, 50 * 20, 4), {50, 20},
            ElementType::f32);
  ASSERT_EQ(
      run_cli({"normalize", folder.file("in.npy"), "-o", folder.file("out.npy"), "-q"}).status, 0);
  const RunResult result = run_cli({"stats", folder.file("out.npy")});
  EXPECT_EQ(result.status, 0) << result.err;
  EXPECT_NE(result.out.find("rows: 50  dim: 20"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("row L2 norm: min 0.99999"), std::string::npos) << result.out;
}

}  // namespace
}  // namespace l2norm
