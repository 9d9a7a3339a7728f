// Row-wise L2 normalization on the CPU (docs/DESIGN.md "Semantics").
//
// Every row is read twice: a sum-of-squares pass, then a pass that scales, rounds and stores (a
// row longer than L2 is re-read from L3). Data moves in 64-byte chunks; a chunk of f16/bf16 widens
// to two vectors of 16 f32 lanes, its even and its odd elements, which needs no lane shuffles.
// The sum runs over blocks of 128 elements: each block is a pairwise tree of 8 vectors, blocks are
// combined by a binary-counter cascade (a pairwise tree over block index) and the 16 lanes by a
// final pairwise fold. The row is padded with zeros to whole blocks, which changes no sum, so the
// order depends on dim alone: not on alignment, thread count or the instruction set. The file is
// built with -ffp-contract=off and uses only +, *, /, sqrt, so every clone rounds identically.
#include "cpu/l2_norm_cpu.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>

#include "cpu/thread_pool.hpp"
#include "l2norm/dtype.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__x86_64__) && !defined(__clang__)
// AVX-512 and AVX2 clones for speed, a baseline x86-64 one for portability; ifunc picks at load.
#define L2NORM_CPU_KERNEL \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), flatten))
#else
// Clang refuses flatten on multiversioned functions: its builds (the fuzzers) get the baseline.
#define L2NORM_CPU_KERNEL __attribute__((flatten))
#endif

// The 64-byte vector helpers live in an anonymous namespace and are flattened into the clones, so
// the warning that their calling convention differs between instruction sets concerns no real call.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace l2norm::detail::cpu {
namespace {

constexpr std::int64_t kLanes = 16;
constexpr std::int64_t kVectorsPerBlock = 8;
constexpr std::int64_t kBlockElements = kLanes * kVectorsPerBlock;
// Every load and store moves one 64-byte chunk: 16 f32 or 32 f16/bf16 elements, a cache line.
constexpr std::int64_t kChunkBytes = 64;
// Rows whose sum of squares is below this may have lost squares to underflow: rare path.
constexpr float kTinySumOfSquares = 0x1p-100f;
// Below this many bytes moved a job runs on the calling thread: waking a worker costs more.
constexpr std::int64_t kMinBytesPerPart = std::int64_t{128} << 10;
// Runs of rows handed out per thread: enough to even out a thread that is slowed down.
constexpr std::int64_t kRunsPerThread = 16;

using F32x16 = float __attribute__((vector_size(64)));
using U32x16 = std::uint32_t __attribute__((vector_size(64)));
using F32x8 = float __attribute__((vector_size(32)));
using F32x4 = float __attribute__((vector_size(16)));
using F32x2 = float __attribute__((vector_size(8)));

template <DType T>
struct Storage;
template <>
struct Storage<DType::f32> {
  using Element = float;
  using Raw = F32x16;  // one chunk as loaded
};
template <>
struct Storage<DType::f16> {
  using Element = std::uint16_t;
  using Raw = U32x16;  // lane i holds elements 2i (low half) and 2i+1 (high half)
};
template <>
struct Storage<DType::bf16> {
  using Element = std::uint16_t;
  using Raw = U32x16;
};
template <DType T>
using ElementOf = typename Storage<T>::Element;
template <DType T>
using RawOf = typename Storage<T>::Raw;

template <DType T>
inline constexpr std::int64_t kChunkElements = kChunkBytes / std::int64_t(sizeof(ElementOf<T>));
// f32 vectors per chunk: a 16-bit chunk widens to its even and its odd elements.
template <DType T>
inline constexpr int kVectorsPerChunk = int(kChunkElements<T> / kLanes);

template <DType T>
struct Widened {
  F32x16 vectors[kVectorsPerChunk<T>];
};

// ---- conversions: the formulas of l2norm/dtype.hpp, applied to 16 lanes at a time. The 16-bit
// patterns sit in the low half of each 32-bit lane. ----

template <DType T>
F32x16 lanes_to_f32(const U32x16& bits) {
  if constexpr (T == DType::f16) return l2norm::detail::f16_lanes_to_f32<F32x16>(bits);
  if constexpr (T == DType::bf16) return l2norm::detail::bf16_lanes_to_f32<F32x16>(bits);
}

// kMayBeNaN = false drops the NaN case: exact for every other input, and cheaper where the kernel
// knows its values are finite (the common path).
template <DType T, bool kMayBeNaN>
U32x16 f32_to_lanes(const F32x16& value) {
  if constexpr (T == DType::f16) return l2norm::detail::f32_to_f16_lanes<U32x16, kMayBeNaN>(value);
  if constexpr (T == DType::bf16) {
    return l2norm::detail::f32_to_bf16_lanes<U32x16, kMayBeNaN>(value);
  }
}

template <DType T>
Widened<T> widen(const RawOf<T>& raw) {
  if constexpr (T == DType::f32) {
    return {{raw}};
  } else {
    return {{lanes_to_f32<T>(raw & 0xffffu), lanes_to_f32<T>(raw >> 16)}};
  }
}

template <DType T, bool kMayBeNaN>
RawOf<T> narrow(const Widened<T>& values) {
  if constexpr (T == DType::f32) {
    return values.vectors[0];
  } else {
    return f32_to_lanes<T, kMayBeNaN>(values.vectors[0]) |
           (f32_to_lanes<T, kMayBeNaN>(values.vectors[1]) << 16);
  }
}

template <DType T>
Widened<T> operator*(const Widened<T>& values, float factor) {
  Widened<T> product;
  for (int k = 0; k < kVectorsPerChunk<T>; ++k) product.vectors[k] = values.vectors[k] * factor;
  return product;
}

template <DType T>
float widen_scalar(ElementOf<T> element) {
  if constexpr (T == DType::f32) return element;
  if constexpr (T == DType::f16) return f16_bits_to_f32(element);
  if constexpr (T == DType::bf16) return bf16_bits_to_f32(element);
}

template <DType T>
ElementOf<T> narrow_scalar(float value) {
  if constexpr (T == DType::f32) return value;
  if constexpr (T == DType::f16) return f32_to_f16_bits(value);
  if constexpr (T == DType::bf16) return f32_to_bf16_bits(value);
}

// ---- loads and stores of one chunk; pointers need only element alignment ----

template <DType T>
RawOf<T> load(const ElementOf<T>* source) {
  RawOf<T> raw;
  std::memcpy(&raw, source, sizeof raw);
  return raw;
}

// The first `count` (< one chunk) elements; the rest of the chunk is zero.
template <DType T>
RawOf<T> load_partial(const ElementOf<T>* source, std::int64_t count) {
  RawOf<T> raw{};
  std::memcpy(&raw, source, static_cast<std::size_t>(count) * sizeof(ElementOf<T>));
  return raw;
}

template <DType T>
void store(ElementOf<T>* destination, const RawOf<T>& raw) {
  std::memcpy(destination, &raw, sizeof raw);
}

template <DType T>
void store_partial(ElementOf<T>* destination, const RawOf<T>& raw, std::int64_t count) {
  std::memcpy(destination, &raw, static_cast<std::size_t>(count) * sizeof(ElementOf<T>));
}

// Non-temporal store of one chunk to a 64-byte aligned address: the line goes to memory without
// being read first, so a large output costs one write instead of a read and a write.
template <DType T>
void store_streaming(ElementOf<T>* destination, const RawOf<T>& raw) {
#if defined(__x86_64__)
  constexpr std::size_t kPieces = sizeof(RawOf<T>) / sizeof(__m128i);
  __m128i pieces[kPieces];
  std::memcpy(pieces, &raw, sizeof raw);
  auto* target = reinterpret_cast<__m128i*>(destination);
  for (std::size_t i = 0; i < kPieces; ++i) _mm_stream_si128(target + i, pieces[i]);
#else
  store<T>(destination, raw);
#endif
}

void order_streaming_stores() {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}

// ---- sum of squares in the fixed, dim-only order ----

F32x16 pairwise_sum(const F32x16 (&squares)[kVectorsPerBlock]) {
  return ((squares[0] + squares[1]) + (squares[2] + squares[3])) +
         ((squares[4] + squares[5]) + (squares[6] + squares[7]));
}

// A block of `count` <= kBlockElements elements, zero-padded: its chunks' vectors, squared, in
// chunk order (even elements before odd ones within a 16-bit chunk), summed pairwise.
template <DType T>
F32x16 block_sum_of_squares(const ElementOf<T>* x, std::int64_t count) {
  constexpr std::int64_t kChunksPerBlock = kBlockElements / kChunkElements<T>;
  F32x16 squares[kVectorsPerBlock];
  for (std::int64_t chunk = 0; chunk < kChunksPerBlock; ++chunk) {
    const std::int64_t first = chunk * kChunkElements<T>;
    const std::int64_t available = std::clamp<std::int64_t>(count - first, 0, kChunkElements<T>);
    RawOf<T> raw{};
    if (available == kChunkElements<T>) {
      raw = load<T>(x + first);
    } else if (available > 0) {
      raw = load_partial<T>(x + first, available);
    }
    const Widened<T> values = widen<T>(raw);
    for (int k = 0; k < kVectorsPerChunk<T>; ++k) {
      squares[chunk * kVectorsPerChunk<T> + k] = values.vectors[k] * values.vectors[k];
    }
  }
  return pairwise_sum(squares);
}

// Lane i plus lane i + 8, then i + 4, i + 2, i + 1: in registers, no trip through memory.
float fold_lanes(const F32x16& sum) {
  const F32x8 eight = __builtin_shufflevector(sum, sum, 0, 1, 2, 3, 4, 5, 6, 7) +
                      __builtin_shufflevector(sum, sum, 8, 9, 10, 11, 12, 13, 14, 15);
  const F32x4 four = __builtin_shufflevector(eight, eight, 0, 1, 2, 3) +
                     __builtin_shufflevector(eight, eight, 4, 5, 6, 7);
  const F32x2 two =
      __builtin_shufflevector(four, four, 0, 1) + __builtin_shufflevector(four, four, 2, 3);
  return two[0] + two[1];
}

// Adds block sums along a binary tree over the block index: block i joins the partial sums of the
// complete subtrees before it, like carries in a binary counter. Error grows with log2(blocks).
class PairwiseAccumulator {
 public:
  void add(const F32x16& block_sum) {
    F32x16 sum = block_sum;
    int level = 0;
    for (std::uint64_t carries = blocks_; (carries & 1u) != 0; carries >>= 1, ++level) {
      sum = subtree_sums_[level] + sum;
    }
    subtree_sums_[level] = sum;
    ++blocks_;
  }

  // Folds the pending subtrees, smallest first, then the 16 lanes pairwise.
  float total() const {
    F32x16 sum{};
    bool first = true;
    int level = 0;
    for (std::uint64_t pending = blocks_; pending != 0; pending >>= 1, ++level) {
      if ((pending & 1u) == 0) continue;
      sum = first ? subtree_sums_[level] : subtree_sums_[level] + sum;
      first = false;
    }
    return fold_lanes(sum);
  }

 private:
  F32x16 subtree_sums_[64];
  std::uint64_t blocks_ = 0;
};

template <DType T>
float sum_of_squares(const ElementOf<T>* x, std::int64_t dim) {
  PairwiseAccumulator accumulator;
  const std::int64_t full_blocks = dim / kBlockElements;
  for (std::int64_t block = 0; block < full_blocks; ++block) {
    accumulator.add(block_sum_of_squares<T>(x + block * kBlockElements, kBlockElements));
  }
  const std::int64_t remainder = dim - full_blocks * kBlockElements;
  if (remainder != 0) {
    accumulator.add(block_sum_of_squares<T>(x + full_blocks * kBlockElements, remainder));
  }
  return accumulator.total();
}

// ---- one row ----

struct RowOptions {
  float eps;
  float scale;
  bool scaled;
  EpsMode eps_mode;
  bool streaming;
};

// round_T(y), then for the scaled variant round_T(round_T(y) * scale) as a separate multiply.
// Only common-path rows get here: x and inv are finite and |y| <= 1 (up to rounding), so neither
// y nor the scaled value can be NaN.
template <DType T>
RawOf<T> finish(const Widened<T>& y, const RowOptions& options) {
  const RawOf<T> rounded = narrow<T, false>(y);
  return options.scaled ? narrow<T, false>(widen<T>(rounded) * options.scale) : rounded;
}

template <DType T>
ElementOf<T> finish_scalar(float y, const RowOptions& options) {
  const ElementOf<T> rounded = narrow_scalar<T>(y);
  return options.scaled ? narrow_scalar<T>(widen_scalar<T>(rounded) * options.scale) : rounded;
}

// Elements before the first 64-byte aligned output address, or -1 when the output is not even
// element-aligned (then no store can stream).
template <DType T>
std::int64_t elements_before_line_alignment(const ElementOf<T>* y) {
  const auto address = reinterpret_cast<std::uintptr_t>(y);
  if (address % sizeof(ElementOf<T>) != 0) return -1;
  const std::uintptr_t misalignment = address % kChunkBytes;
  return misalignment == 0
             ? 0
             : static_cast<std::int64_t>((kChunkBytes - misalignment) / sizeof(ElementOf<T>));
}

// With streaming stores the chunks are laid on the output's cache lines, so that each one writes
// a whole line; the partial chunks at both ends are stored normally.
template <DType T>
void scale_row(const ElementOf<T>* x, ElementOf<T>* y, std::int64_t dim, float inv,
               const RowOptions& options) {
  constexpr std::int64_t kChunk = kChunkElements<T>;
  std::int64_t head = 0;
  bool stream = false;
  if (options.streaming) {
    head = elements_before_line_alignment<T>(y);
    stream = head >= 0;
    head = std::clamp<std::int64_t>(head, 0, dim);
  }
  const auto scale_partial = [&](std::int64_t begin, std::int64_t count) {
    store_partial<T>(y + begin,
                     finish<T>(widen<T>(load_partial<T>(x + begin, count)) * inv, options), count);
  };
  const std::int64_t body_end = head + (dim - head) / kChunk * kChunk;
  if (head > 0) scale_partial(0, head);
  if (stream) {
    for (std::int64_t begin = head; begin < body_end; begin += kChunk) {
      store_streaming<T>(y + begin, finish<T>(widen<T>(load<T>(x + begin)) * inv, options));
    }
  } else {
    for (std::int64_t begin = head; begin < body_end; begin += kChunk) {
      store<T>(y + begin, finish<T>(widen<T>(load<T>(x + begin)) * inv, options));
    }
  }
  if (body_end < dim) scale_partial(body_end, dim - body_end);
}

// Rows whose f32 sum overflowed, is NaN, or may have underflowed: redo the sum in double, where
// squares of f32 values neither overflow nor underflow.
template <DType T>
void normalize_row_in_double(const ElementOf<T>* x, ElementOf<T>* y, std::int64_t dim,
                             const RowOptions& options) {
  double sum = 0.0;
  for (std::int64_t i = 0; i < dim; ++i) {
    const double value = widen_scalar<T>(x[i]);
    sum += value * value;
  }
  const double eps = options.eps;
  const double inv = options.eps_mode == EpsMode::add ? 1.0 / std::sqrt(sum + eps)
                                                      : 1.0 / std::fmax(std::sqrt(sum), eps);
  for (std::int64_t i = 0; i < dim; ++i) {
    const auto normalized = static_cast<float>(static_cast<double>(widen_scalar<T>(x[i])) * inv);
    y[i] = finish_scalar<T>(normalized, options);
  }
}

template <DType T>
void normalize_row(const ElementOf<T>* x, ElementOf<T>* y, std::int64_t dim,
                   const RowOptions& options) {
  const float sum = sum_of_squares<T>(x, dim);
  if (!(sum >= kTinySumOfSquares && sum <= FLT_MAX)) {
    normalize_row_in_double<T>(x, y, dim, options);
    return;
  }
  const float inv = options.eps_mode == EpsMode::add
                        ? 1.0f / std::sqrt(sum + options.eps)
                        : 1.0f / std::fmax(std::sqrt(sum), options.eps);
  scale_row<T>(x, y, dim, inv, options);
}

// Walks rows in order, keeping the element offsets of the current row up to date without a
// division per row.
class RowCursor {
 public:
  RowCursor(const RowLayout& layout, std::int64_t row)
      : layout_(layout),
        input_offset_(row_offset(layout, layout.input_strides, row)),
        output_offset_(row_offset(layout, layout.output_strides, row)) {
    for (int i = layout.outer_rank - 1; i >= 0; --i) {
      const std::int64_t size = layout.outer_sizes[std::size_t(i)];
      index_[std::size_t(i)] = row % size;
      row /= size;
    }
  }

  std::int64_t input_offset() const { return input_offset_; }
  std::int64_t output_offset() const { return output_offset_; }

  void advance() {
    for (int i = layout_.outer_rank - 1; i >= 0; --i) {
      const auto axis = std::size_t(i);
      input_offset_ += layout_.input_strides[axis];
      output_offset_ += layout_.output_strides[axis];
      if (++index_[axis] < layout_.outer_sizes[axis]) return;
      input_offset_ -= layout_.outer_sizes[axis] * layout_.input_strides[axis];
      output_offset_ -= layout_.outer_sizes[axis] * layout_.output_strides[axis];
      index_[axis] = 0;
    }
  }

 private:
  const RowLayout& layout_;
  std::array<std::int64_t, kMaxOuterRank> index_{};
  std::int64_t input_offset_;
  std::int64_t output_offset_;
};

template <DType T>
void normalize_rows(const L2NormCall& call, const RowOptions& options, std::int64_t row_begin,
                    std::int64_t row_end) {
  const auto* input = static_cast<const ElementOf<T>*>(call.input);
  auto* output = static_cast<ElementOf<T>*>(call.output);
  RowCursor cursor(call.layout, row_begin);
  for (std::int64_t row = row_begin; row < row_end; ++row) {
    normalize_row<T>(input + cursor.input_offset(), output + cursor.output_offset(), call.dim,
                     options);
    cursor.advance();
  }
  // Streaming stores are weakly ordered: make them visible before the pool reports the part done.
  if (options.streaming) order_streaming_stores();
}

L2NORM_CPU_KERNEL void normalize_rows_f32(const L2NormCall& call, const RowOptions& options,
                                          std::int64_t row_begin, std::int64_t row_end) {
  normalize_rows<DType::f32>(call, options, row_begin, row_end);
}

L2NORM_CPU_KERNEL void normalize_rows_f16(const L2NormCall& call, const RowOptions& options,
                                          std::int64_t row_begin, std::int64_t row_end) {
  normalize_rows<DType::f16>(call, options, row_begin, row_end);
}

L2NORM_CPU_KERNEL void normalize_rows_bf16(const L2NormCall& call, const RowOptions& options,
                                           std::int64_t row_begin, std::int64_t row_end) {
  normalize_rows<DType::bf16>(call, options, row_begin, row_end);
}

// The hooks go through the kernel's own chunk code; a 16-bit chunk's vectors hold its even and its
// odd elements, so the test-facing buffers are interleaved here.
template <DType T>
void widen_all(const void* source, float* destination, std::size_t count) {
  constexpr auto kChunk = std::size_t(kChunkElements<T>);
  const auto* elements = static_cast<const ElementOf<T>*>(source);
  for (std::size_t first = 0; first < count; first += kChunk) {
    const std::size_t available = std::min(kChunk, count - first);
    const Widened<T> values =
        widen<T>(available == kChunk ? load<T>(elements + first)
                                     : load_partial<T>(elements + first, std::int64_t(available)));
    for (std::size_t i = 0; i < available; ++i) {
      destination[first + i] = values.vectors[i % kVectorsPerChunk<T>][i / kVectorsPerChunk<T>];
    }
  }
}

template <DType T, bool kMayBeNaN>
void narrow_all(const float* source, void* destination, std::size_t count) {
  constexpr auto kChunk = std::size_t(kChunkElements<T>);
  auto* elements = static_cast<ElementOf<T>*>(destination);
  for (std::size_t first = 0; first < count; first += kChunk) {
    const std::size_t available = std::min(kChunk, count - first);
    Widened<T> values{};
    for (std::size_t i = 0; i < available; ++i) {
      values.vectors[i % kVectorsPerChunk<T>][i / kVectorsPerChunk<T>] = source[first + i];
    }
    const RawOf<T> raw = narrow<T, kMayBeNaN>(values);
    if (available == kChunk) {
      store<T>(elements + first, raw);
    } else {
      store_partial<T>(elements + first, raw, std::int64_t(available));
    }
  }
}

L2NORM_CPU_KERNEL void widen_dispatch(DType dtype, const void* source, float* destination,
                                      std::size_t count) {
  switch (dtype) {
    case DType::f32:
      widen_all<DType::f32>(source, destination, count);
      break;
    case DType::f16:
      widen_all<DType::f16>(source, destination, count);
      break;
    case DType::bf16:
      widen_all<DType::bf16>(source, destination, count);
      break;
  }
}

L2NORM_CPU_KERNEL void narrow_dispatch(DType dtype, const float* source, void* destination,
                                       std::size_t count, bool may_be_nan) {
  switch (dtype) {
    case DType::f32:
      narrow_all<DType::f32, true>(source, destination, count);
      break;
    case DType::f16:
      if (may_be_nan) {
        narrow_all<DType::f16, true>(source, destination, count);
      } else {
        narrow_all<DType::f16, false>(source, destination, count);
      }
      break;
    case DType::bf16:
      if (may_be_nan) {
        narrow_all<DType::bf16, true>(source, destination, count);
      } else {
        narrow_all<DType::bf16, false>(source, destination, count);
      }
      break;
  }
}

// Size of the last-level cache. sysconf's value comes from CPUID, which virtual machines often
// misreport, so the kernel's own view (sysfs) is preferred.
std::int64_t last_level_cache_bytes() {
  std::int64_t largest = 0;
  for (int index = 0; index < 8; ++index) {
    std::ifstream file("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) +
                       "/size");
    std::int64_t kibibytes = 0;
    char unit = 0;
    if (!(file >> kibibytes >> unit) || unit != 'K') continue;
    largest = std::max(largest, kibibytes << 10);
  }
  constexpr std::int64_t kAssumedCacheBytes = std::int64_t{32} << 20;
  return largest > 0 ? largest : kAssumedCacheBytes;
}

}  // namespace

std::int64_t streaming_threshold_bytes() {
  static const std::int64_t threshold = last_level_cache_bytes();
  return threshold;
}

std::string run_l2_norm(const L2NormCall& call) {
  const auto element_bytes = static_cast<std::int64_t>(dtype_size(call.dtype));
  const bool in_place = call.output == call.input;
  const std::int64_t row_bytes = call.dim * element_bytes * (in_place ? 1 : 2);
  const std::int64_t job_bytes =
      call.rows > INT64_MAX / row_bytes ? INT64_MAX : call.rows * row_bytes;
  const RowOptions options{call.eps, call.scale, call.scaled, call.eps_mode,
                           job_bytes > streaming_threshold_bytes()};

  const auto run_rows = [&](std::int64_t row_begin, std::int64_t row_end) {
    switch (call.dtype) {
      case DType::f32:
        normalize_rows_f32(call, options, row_begin, row_end);
        break;
      case DType::f16:
        normalize_rows_f16(call, options, row_begin, row_end);
        break;
      case DType::bf16:
        normalize_rows_bf16(call, options, row_begin, row_end);
        break;
    }
  };

  ThreadPool& pool = ThreadPool::global();
  const std::int64_t useful_parts =
      std::min({std::int64_t{pool.thread_count()}, call.rows,
                std::max<std::int64_t>(1, job_bytes / kMinBytesPerPart)});
  if (useful_parts <= 1) {
    run_rows(0, call.rows);
  } else {
    // Threads take contiguous runs of rows from a shared counter rather than one fixed share
    // each: on a machine shared with other work, a thread that loses its core no longer holds
    // the whole job back. Rows are independent, so the split never changes a bit.
    const std::int64_t run_rows_count =
        std::max<std::int64_t>(1, call.rows / (useful_parts * kRunsPerThread));
    std::atomic<std::int64_t> next_run{0};
    pool.run(static_cast<int>(useful_parts), [&](int, int) {
      for (;;) {
        const std::int64_t run = next_run.fetch_add(1, std::memory_order_relaxed);
        if (run >= (call.rows + run_rows_count - 1) / run_rows_count) return;
        const std::int64_t row_begin = run * run_rows_count;
        run_rows(row_begin, std::min(call.rows, row_begin + run_rows_count));
      }
    });
  }

  std::string variant = "cpu.l2_norm<";
  variant += dtype_name(call.dtype);
  variant += call.eps_mode == EpsMode::add ? ",add" : ",clamp";
  variant += call.scaled ? ",scaled" : ",unscaled";
  variant += options.streaming ? ",streaming>" : ",cached>";
  return variant;
}

void widen_to_f32(DType dtype, const void* source, float* destination, std::size_t count) {
  widen_dispatch(dtype, source, destination, count);
}

void narrow_from_f32(DType dtype, const float* source, void* destination, std::size_t count) {
  narrow_dispatch(dtype, source, destination, count, true);
}

void narrow_non_nan_from_f32(DType dtype, const float* source, void* destination,
                             std::size_t count) {
  narrow_dispatch(dtype, source, destination, count, false);
}

}  // namespace l2norm::detail::cpu
