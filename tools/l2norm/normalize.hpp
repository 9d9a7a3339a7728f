// `l2norm normalize`: a streaming pipeline over chunks of rows. A reader thread loads chunk i+1
// while chunk i is normalized (on the GPU: copy in, l2_norm, copy out) and a writer thread stores
// chunk i-1, so file reads, compute and writes overlap. Memory stays bounded by a few chunks
// whatever the file size; a chunk always holds at least one row.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "array_format.hpp"
#include "l2norm/l2norm.hpp"

namespace l2norm::cli {

inline constexpr std::uint64_t kDefaultChunkBytes = std::uint64_t{64} << 20;
inline constexpr std::uint64_t kSmallestDefaultChunkBytes = std::uint64_t{4} << 20;

// The chunk size of `normalize` without --chunk-size, for an input of `data_bytes`: 64 MiB, or an
// eighth of the input where that is less (at least 4 MiB), so that a file of a few hundred MiB
// or less still has chunks enough for reading, compute and writing to overlap.
inline std::uint64_t default_chunk_bytes(std::uint64_t data_bytes) {
  return std::clamp<std::uint64_t>(data_bytes / 8, kSmallestDefaultChunkBytes, kDefaultChunkBytes);
}

struct NormalizeOptions {
  std::string input_path;
  std::string output_path;
  L2NormOptions op;
  std::string device = "auto";               // auto, cpu, cuda, cuda:N
  std::optional<DType> out_dtype;            // default: the input's, f32 for f64 or .fvecs output
  std::optional<io::ElementType> in_dtype;   // what the input holds (needed for '<V2' bf16)
  std::optional<std::uint64_t> chunk_bytes;  // input bytes per chunk; default_chunk_bytes if unset
  bool show_progress = false;
};

struct NormalizeSummary {
  std::int64_t rows = 0;
  std::int64_t dim = 0;
  io::ElementType input_type = io::ElementType::f32;
  io::ElementType output_type = io::ElementType::f32;
  DType compute_dtype = DType::f32;
  Device device = Device::cpu();
  std::int64_t chunks = 0;
  std::uint64_t bytes_read = 0;     // row data read from the input
  std::uint64_t bytes_written = 0;  // everything written to the output
  double seconds = 0;
};

// Thrown when `stop_requested` became true (SIGINT/SIGTERM): the output was not created.
class Interrupted : public std::runtime_error {
 public:
  Interrupted() : std::runtime_error("interrupted") {}
};

// Resolves "auto" to cuda:0 when CUDA is usable here, else the CPU.
Device resolve_device(const std::string& text);

// Normalizes the rows of options.input_path into options.output_path, atomically: on any error
// or interruption the output path is left as it was and no temporary file remains.
NormalizeSummary normalize_file(const NormalizeOptions& options,
                                const std::atomic<bool>& stop_requested);

}  // namespace l2norm::cli
