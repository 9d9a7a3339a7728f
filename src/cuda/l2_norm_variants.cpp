#include "cuda/l2_norm_variants.hpp"

#include <algorithm>
#include <optional>

#include "cuda/embedded_kernels.hpp"
#include "cuda/kernels/l2_norm_args.cuh"

namespace l2norm::detail::cuda {

namespace {

int dtype_code(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return 0;
    case DType::f16:
      return 1;
    case DType::bf16:
      return 2;
  }
  return 0;
}

int next_power_of_two(std::int64_t value) {
  int power = 1;
  while (power < value) power *= 2;
  return power;
}

constexpr int kVectorWidths[] = {16, 8, 4, 2};

}  // namespace

std::uint64_t L2NormVariant::packed() const {
  std::uint64_t key = static_cast<std::uint64_t>(kind);
  key = key * 4 + static_cast<std::uint64_t>(dtype_code(dtype));
  key = key * 32 + static_cast<std::uint64_t>(vector_bytes);
  key = key * 2048 + static_cast<std::uint64_t>(threads_per_row);
  key = key * 128 + static_cast<std::uint64_t>(items);
  key = key * 2048 + static_cast<std::uint64_t>(block_threads);
  key = key * 2 + (eps_mode == EpsMode::clamp ? 1u : 0u);
  key = key * 2 + (scaled ? 1u : 0u);
  key = key * 2 + (row_sum_in_warps ? 1u : 0u);
  return key;
}

std::size_t L2NormVariant::tile_bytes() const {
  return static_cast<std::size_t>(block_threads) * static_cast<std::size_t>(items) *
         static_cast<std::size_t>(vector_bytes);
}

KernelSpec L2NormVariant::spec() const {
  KernelSpec spec;
  const bool split = kind == KernelKind::split_on_chip || kind == KernelKind::split_streamed;
  const char* entry = split                        ? "l2_norm_split"
                      : kind == KernelKind::staged ? "l2_norm_staged"
                                                   : "l2_norm_rows";
  spec.source = std::string(entry) + ".cuh";
  spec.entry = entry;
  spec.defines = {"L2NORM_DTYPE=" + std::to_string(dtype_code(dtype)),
                  "L2NORM_VEC_BYTES=" + std::to_string(vector_bytes),
                  "L2NORM_ITEMS=" + std::to_string(items),
                  "L2NORM_BLOCK_THREADS=" + std::to_string(block_threads),
                  std::string("L2NORM_EPS_CLAMP=") + (eps_mode == EpsMode::clamp ? "1" : "0"),
                  std::string("L2NORM_SCALED=") + (scaled ? "1" : "0")};
  if (split) {
    spec.defines.push_back(std::string("L2NORM_SPLIT_ON_CHIP=") +
                           (kind == KernelKind::split_on_chip ? "1" : "0"));
    spec.defines.push_back(std::string("L2NORM_ROW_SUM_IN_WARPS=") +
                           (row_sum_in_warps ? "1" : "0"));
  } else if (kind == KernelKind::rows) {
    spec.defines.push_back("L2NORM_THREADS_PER_ROW=" + std::to_string(threads_per_row));
  }
  return spec;
}

L2NormVariant L2NormVariant::with_kind(KernelKind other) const {
  L2NormVariant variant = *this;
  variant.kind = other;
  variant.row_sum_in_warps = row_sum_in_warps && other == KernelKind::split_on_chip;
  return variant;
}

std::string L2NormVariant::name() const {
  std::string text = kind == KernelKind::rows            ? "l2_norm_rows<"
                     : kind == KernelKind::staged        ? "l2_norm_staged<"
                     : kind == KernelKind::split_on_chip ? "l2_norm_split_on_chip<"
                                                         : "l2_norm_split_streamed<";
  text += std::string(dtype_name(dtype)) + ",v" + std::to_string(vector_bytes) + ",";
  text += std::to_string(threads_per_row) + "x" + std::to_string(items) + ",";
  text += eps_mode == EpsMode::clamp ? "clamp" : "add";
  if (scaled) text += ",scaled";
  if (row_sum_in_warps) text += ",warp_sum";
  return text + ">";
}

namespace {

// The layout for throughput: kRowsValuesPerThread values per thread (longer rows: the split
// kernel's tiles).
L2NormVariant throughput_variant(DType dtype, std::int64_t dim, int vector_bytes, EpsMode eps_mode,
                                 bool scaled) {
  L2NormVariant variant{};
  variant.dtype = dtype;
  variant.vector_bytes = vector_bytes;
  variant.eps_mode = eps_mode;
  variant.scaled = scaled;
  const int elements = variant.vector_elements();
  if (dim <= kMaxRowsKernelDim) {
    variant.kind = KernelKind::rows;
    variant.items = kRowsValuesPerThread / elements;
    const std::int64_t threads_needed = (dim + kRowsValuesPerThread - 1) / kRowsValuesPerThread;
    variant.threads_per_row = next_power_of_two(threads_needed);
    variant.block_threads = std::max(variant.threads_per_row, 256);
  } else {
    variant.kind = KernelKind::split_on_chip;
    variant.items = kTileValuesPerThread / elements;
    variant.threads_per_row = kTileBlockThreads;
    variant.block_threads = kTileBlockThreads;
    variant.row_sum_in_warps = row_tiles(variant, dim) <= kWarpRowSumTiles;
  }
  return variant;
}

// The layout for batches too small to fill the device, where the dependent chain of one row is
// the time: one vector per thread and twice the threads per row. Only where it sums a row in the
// same order as the throughput layout: that one keeps two vectors per thread, so its in-thread
// step adds vectors `threads_per_row` apart, which is exactly the first butterfly step of the
// doubled group, and the doubled group still fits a warp (a pure butterfly). In practice: 16-bit
// rows of up to 256 elements, the heads of decode. Blocks of 128 threads: H100, 32 x 128 bf16 in
// a graph chain, 1.13 us against 1.18 with 256 threads, 1.22 with 64 and 1.32 with 512; 2048 rows
// 1.44 us with 128 or 256 (notes/cuda-perf.md v6).
std::optional<L2NormVariant> latency_variant(const L2NormVariant& throughput) {
  if (throughput.kind != KernelKind::rows || throughput.items != 2 ||
      throughput.threads_per_row * 2 > 32) {
    return std::nullopt;
  }
  L2NormVariant variant = throughput;
  variant.threads_per_row *= 2;
  variant.items = 1;
  variant.block_threads = 128;
  return variant;
}

std::vector<L2NormVariant> layouts(DType dtype, std::int64_t dim, int vector_bytes,
                                   EpsMode eps_mode, bool scaled) {
  std::vector<L2NormVariant> variants{
      throughput_variant(dtype, dim, vector_bytes, eps_mode, scaled)};
  if (const auto latency = latency_variant(variants.front())) variants.push_back(*latency);
  if (variants.front().kind == KernelKind::split_on_chip) {
    variants.push_back(variants.front().with_kind(KernelKind::staged));
    variants.push_back(variants.front().with_kind(KernelKind::split_streamed));
  }
  return variants;
}

}  // namespace

std::int64_t row_tiles(const L2NormVariant& variant, std::int64_t dim) {
  const std::int64_t tile_vectors = std::int64_t{variant.block_threads} * variant.items;
  const std::int64_t vectors = dim / variant.vector_elements();
  return (vectors + tile_vectors - 1) / tile_vectors;
}

bool staged_row_fits(const L2NormVariant& variant, std::int64_t dim,
                     std::size_t shared_memory_per_block) {
  const std::int64_t tiles = row_tiles(variant, dim);
  return tiles <= L2NORM_MAX_TILES_PER_BLOCK &&
         static_cast<std::size_t>(tiles) * variant.tile_bytes() +
                 L2NORM_STAGED_STATIC_SHARED_BYTES <=
             shared_memory_per_block;
}

L2NormVariant choose_l2_norm_variant(DType dtype, std::int64_t dim, int vector_bytes,
                                     EpsMode eps_mode, bool scaled, std::int64_t rows,
                                     const DeviceLimits& limits) {
  const L2NormVariant throughput = throughput_variant(dtype, dim, vector_bytes, eps_mode, scaled);
  // Staged once every multiprocessor gets a row: each SM's stores then run under other rows'
  // loads, with no barrier between blocks. With fewer rows the split kernel spreads a row over
  // more multiprocessors, whose stores into L2 (about 16 bytes per clock each on an H100,
  // notes/cuda-perf.md v5) would otherwise be the limit.
  if (throughput.kind == KernelKind::split_on_chip) {
    if (rows >= limits.multiprocessors &&
        staged_row_fits(throughput, dim, limits.shared_memory_per_block)) {
      return throughput.with_kind(KernelKind::staged);
    }
    return throughput;
  }
  const auto latency = latency_variant(throughput);
  // While the latency layout's threads fill at most half of the device's thread slots (2048 per
  // multiprocessor on sm_80..sm_90). H100, bf16 dim 128 in graph chains, latency against
  // throughput layout: 32 rows 1.19 / 1.28 us, 2048 rows 1.44 / 1.46, 65536 rows 7.89 / 7.60
  // (notes/cuda-perf.md v6).
  if (latency && rows * latency->threads_per_row <= std::int64_t{limits.multiprocessors} * 1024) {
    return *latency;
  }
  return throughput;
}

std::vector<L2NormVariant> l2_norm_variants_for(DType dtype, std::int64_t dim, EpsMode eps_mode,
                                                bool scaled) {
  std::vector<L2NormVariant> variants;
  const auto element_bytes = static_cast<std::int64_t>(dtype_size(dtype));
  for (const int width : kVectorWidths) {
    if (width < element_bytes || (dim * element_bytes) % width != 0) continue;
    for (const L2NormVariant& variant : layouts(dtype, dim, width, eps_mode, scaled)) {
      variants.push_back(variant);
    }
  }
  return variants;
}

std::vector<L2NormVariant> all_l2_norm_variants() {
  std::vector<L2NormVariant> variants;
  for (const DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    const auto element_bytes = static_cast<int>(dtype_size(dtype));
    for (const int width : kVectorWidths) {
      if (width < element_bytes) continue;
      const int elements = width / element_bytes;
      for (const EpsMode mode : {EpsMode::add, EpsMode::clamp}) {
        for (const bool scaled : {false, true}) {
          // One representative dim per threads-per-row class, then one longer dim.
          std::vector<std::int64_t> dims;
          for (std::int64_t threads = 1; threads <= kMaxThreadsPerRow; threads *= 2) {
            dims.push_back(std::max<std::int64_t>(elements, threads * kRowsValuesPerThread));
          }
          dims.push_back(kMaxRowsKernelDim * 2);
          // A row one tile too long for the split kernel's warps to sum.
          dims.push_back(std::int64_t{kTileBlockThreads} * kTileValuesPerThread *
                         (kWarpRowSumTiles + 1));
          for (const std::int64_t dim : dims) {
            for (const L2NormVariant& variant : layouts(dtype, dim, width, mode, scaled)) {
              variants.push_back(variant);
            }
          }
        }
      }
    }
  }
  return variants;
}

void register_l2_norm_sources(KernelRegistry& registry) {
  for (const EmbeddedSource& source : embedded_kernel_sources()) {
    registry.register_source(source.name, source.text);
  }
}

}  // namespace l2norm::detail::cuda
