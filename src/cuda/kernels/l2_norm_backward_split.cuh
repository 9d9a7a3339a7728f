// l2_norm_backward_split: rows longer than the rows kernel holds. A row is cut into tiles of
// L2NORM_BLOCK_THREADS * L2NORM_ITEMS vectors (thread t owns vectors t, t + L2NORM_BLOCK_THREADS,
// ... of every tile, of dy and of y or x alike) and into segments of whole tiles, one per block.
// With one block per row the blocks run independently; with several, all blocks are co-resident
// (cooperative launch) and the blocks of a row exchange partial sums through the encoder's
// workspace (partial_exchange.cuh): from the input the sum of squares (f32, and f64 for a rare
// row), then the dot product of dy with the recomputed y; from the output the dot product alone.
// Then each block writes dx of its segment.
//
// Two modes, each its own kernel (L2NORM_SPLIT_ON_CHIP), chosen on the host from dim and the
// device alone:
// - on chip: a segment's first tile stays in registers and its other tiles in dynamic shared
//   memory (dy and y or x, as stored), so dy and y are read from memory once and dx written once;
//   the loads carry an L2 evict-first policy (nothing reads them again). The staged tiles are
//   loaded one at a time, each summed as the next loads. One partial sum per tile.
// - streamed: rows longer than the co-resident blocks hold; one partial sum per block, and each
//   pass over the row (each sum, then dx) reads the segment again (from L2 as far as it holds it).
//
// Sum order (each sum alike): a tile's sum is the thread's pairwise sum of its values
// (dot_product, sum_of_squares, sum_of_squares_f64), then group_sum's two steps over the block.
// On chip, the row's sum is group_sum over the block with thread t holding zero plus tile t's sum
// (plus tile t + L2NORM_BLOCK_THREADS's, ..., for rows of more tiles): it depends on dim and the
// vector width alone, never on how tiles map to blocks, so the row count never changes a bit.
// Streamed, a block's sum is group_sum over the block of each thread's tile sums added along a
// binary tree over the block's tiles (PairwiseTree), and the row's sum group_sum over the blocks
// with thread t holding zero plus block t's sum; the host fixes the segments from dim and the
// device alone.
//
// Defines: those of l2_norm_backward_math.cuh, L2NORM_ITEMS (vectors per thread per tile),
// L2NORM_BLOCK_THREADS (a power of two), L2NORM_SPLIT_ON_CHIP (1 on chip, 0 streamed).
#include "l2_norm_backward_math.cuh"
#include "partial_exchange.cuh"
#include "reduce.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define L2NORM_BACKWARD_L2_HINTS 1
#else
#define L2NORM_BACKWARD_L2_HINTS 0
#endif

namespace l2norm_kernels {
constexpr bool kOnChip = L2NORM_SPLIT_ON_CHIP != 0;
constexpr int kItems = L2NORM_ITEMS;
constexpr int kBlockThreads = L2NORM_BLOCK_THREADS;
constexpr int kWarps = kBlockThreads / 32;
constexpr int kValues = kItems * kBackwardVec;
constexpr long long kTileVectors = static_cast<long long>(kBlockThreads) * kItems;
constexpr int kMaxTilesPerBlock = kBackwardKernelPolicy.max_tiles_per_block;
static_assert(kBlockThreads % 32 == 0 && (kBlockThreads & (kBlockThreads - 1)) == 0,
              "bad block shape");
static_assert(kBackwardVec <= 8 && kValues % 8 == 0 && ((kValues / 8) & (kValues / 8 - 1)) == 0,
              "the rare path reads a thread's values in a power-of-two count of chunks of eight");

// ---- One tensor's tiles: its raw vectors, where a tile starts, loads and staging ----

template <int Dtype>
constexpr int kVectorBytes = kBackwardVec*(Dtype == L2NORM_DTYPE_F32 ? 4 : 2);
template <int Dtype>
using RawOf = typename RawVector<kVectorBytes<Dtype>>::type;

// The thread's vector `item` of a tile, counted from the tile's first vector.
__device__ __forceinline__ int vector_in_tile(int item) {
  return static_cast<int>(threadIdx.x) + item * kBlockThreads;
}

// How many of `tile`'s vectors lie inside a row of `vectors` (all but in the row's last tile).
__device__ __forceinline__ int vectors_inside(long long tile, long long vectors) {
  return static_cast<int>(min(vectors - tile * kTileVectors, kTileVectors));
}

// The address of a tile's first element in a row starting at element `row_offset` of `base`. The
// thread's vectors are then small constant offsets from it.
template <int Dtype, typename Byte>
__device__ __forceinline__ Byte* tile_start(Byte* base, long long row_offset, long long tile) {
  constexpr int kElementSize = Dtype == L2NORM_DTYPE_F32 ? 4 : 2;
  return base + (row_offset + tile * kTileVectors * kBackwardVec) * kElementSize;
}

// One raw vector at `address` that no pass reads again: with L2 hints, an evict-first load
// (element.cuh).
template <int Dtype>
__device__ __forceinline__ RawOf<Dtype> load_raw_read_once(const char* address) {
#if L2NORM_BACKWARD_L2_HINTS
  return load_raw_evict_first<kVectorBytes<Dtype>>(address);
#else
  return *reinterpret_cast<const RawOf<Dtype>*>(address);
#endif
}

// The thread's vector `item` of `tile` of a tensor read from memory, zero past the row's end;
// ReadOnce for data no pass reads again.
template <int Dtype, bool ReadOnce>
__device__ __forceinline__ void load_tile_vector(const void* base, long long row_offset,
                                                 long long tile, long long vectors, int item,
                                                 float* out) {
  const char* start = tile_start<Dtype>(static_cast<const char*>(base), row_offset, tile);
  const int vector = vector_in_tile(item);
  if (vector < vectors_inside(tile, vectors)) {
    const char* address = start + vector * kVectorBytes<Dtype>;
    if constexpr (ReadOnce) {
      const RawOf<Dtype> raw = load_raw_read_once<Dtype>(address);
      load_vector<Element<Dtype>, kBackwardVec>(&raw, 0, out);
    } else {
      load_vector<Element<Dtype>, kBackwardVec>(address, 0, out);
    }
  } else {
#pragma unroll
    for (int e = 0; e < kBackwardVec; ++e) out[e] = 0.0f;
  }
}

template <int Dtype, bool ReadOnce>
__device__ __forceinline__ void load_tile(const void* base, long long row_offset, long long tile,
                                          long long vectors, float* values) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    load_tile_vector<Dtype, ReadOnce>(base, row_offset, tile, vectors, item,
                                      values + item * kBackwardVec);
  }
}

// Starts copying a tensor's vectors of `tile` into a shared-memory slot; vectors at or past
// `vectors` are filled with zeros (nothing is read for them), so readers of the slot need no
// bounds checks. Each thread copies exactly the vectors it reads back later, consecutive threads'
// vectors adjacent: no bank conflicts and no barrier needed. The copies read memory once, with
// evict-first; 2-byte vectors (no cp.async size) are copied through registers.
template <int Dtype>
__device__ __forceinline__ void stage_tile(const void* base, long long row_offset, long long tile,
                                           long long vectors, RawOf<Dtype>* slot) {
  constexpr int kBytes = kVectorBytes<Dtype>;
  const char* start = tile_start<Dtype>(static_cast<const char*>(base), row_offset, tile);
  const int inside_count = vectors_inside(tile, vectors);
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    const int vector = vector_in_tile(item);
    const bool inside = vector < inside_count;
    // Outside the row, the tile's first vector stands in as a valid address that is not read.
    const char* source = inside ? start + vector * kBytes : start;
    RawOf<Dtype>* target = slot + vector;
#if L2NORM_BACKWARD_L2_HINTS
    if constexpr (kBytes >= 4) {
      copy_async_evict_first<kBytes>(target, source, inside);
    } else {
      *target = inside ? load_raw_read_once<Dtype>(source) : RawOf<Dtype>{};
    }
#else
    *target = inside ? *reinterpret_cast<const RawOf<Dtype>*>(source) : RawOf<Dtype>{};
#endif
  }
}

// The calling thread's own staged copies have landed and are visible to it.
__device__ __forceinline__ void wait_for_staged_tiles() {
#if L2NORM_BACKWARD_L2_HINTS
  asm volatile("cp.async.wait_all;" ::: "memory");
#endif
}

// The thread's vector `item` of a staged tile of a tensor (zero past the row's end).
template <int Dtype>
__device__ __forceinline__ void read_staged_vector(const RawOf<Dtype>* slot, int item, float* out) {
  load_vector<Element<Dtype>, kBackwardVec>(slot + vector_in_tile(item), 0, out);
}

template <int Dtype>
__device__ __forceinline__ void read_staged_tile(const RawOf<Dtype>* slot, float* values) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    read_staged_vector<Dtype>(slot, item, values + item * kBackwardVec);
  }
}

// A staged tile in dynamic shared memory: dy's vectors, then y's (or x's).
constexpr long long kStagedDyBytes = kTileVectors * kVectorBytes<L2NORM_DY_DTYPE>;
constexpr long long kStagedTileBytes = kStagedDyBytes + kTileVectors * kVectorBytes<L2NORM_DTYPE>;
static_assert(kStagedDyBytes % 16 == 0, "y's slot stays 16-byte aligned");

struct StagedTile {
  char* bytes;
  __device__ __forceinline__ RawOf<L2NORM_DY_DTYPE>* dy() const {
    return reinterpret_cast<RawOf<L2NORM_DY_DTYPE>*>(bytes);
  }
  __device__ __forceinline__ RawOf<L2NORM_DTYPE>* y() const {
    return reinterpret_cast<RawOf<L2NORM_DTYPE>*>(bytes + kStagedDyBytes);
  }
};

// ---- Sums ----

// Adds a thread's tile sums along a binary tree over the tile index: tile i joins the subtrees
// before it like carries in a binary counter (the CPU's PairwiseAccumulator, cpu/row_sum.hpp).
template <typename T>
struct PairwiseTree {
  T subtrees[64];
  unsigned long long steps = 0;

  __device__ __forceinline__ void add(T value) {
    int level = 0;
    for (unsigned long long carries = steps; (carries & 1ull) != 0; carries >>= 1, ++level) {
      value = subtrees[level] + value;
    }
    subtrees[level] = value;
    ++steps;
  }

  // The pending subtrees, smallest first; zero for no steps.
  __device__ __forceinline__ T total() const {
    T sum = 0;
    bool first = true;
    int level = 0;
    for (unsigned long long pending = steps; pending != 0; pending >>= 1, ++level) {
      if ((pending & 1ull) == 0) continue;
      sum = first ? subtrees[level] : subtrees[level] + sum;
      first = false;
    }
    return sum;
  }
};

// The row's sum in T of `thread_sum(tile)` over its tiles, in the order the file's head states;
// every thread of the block gets it, and every block of the row the same bits. `words` is the
// kind's array of tagged words, `exchange` whether the row has other blocks. Every thread of the
// block must call it. `first_tag` is read only after a block barrier (the tile sums', or the
// block sum's), so thread 0 may write it in the first wave before the call. `tile_scratch` holds
// tile_sums' totals (or the block sum's), `row_scratch` kWarps values for the last group_sum
// (apart, so that it cannot overwrite totals another thread still reads); both are free again on
// return.
template <typename T, typename ThreadSum>
__device__ __forceinline__ T row_sum(unsigned long long* words, const PartialLayout& layout,
                                     bool exchange, const unsigned int& first_tag, long long wave,
                                     long long row_in_wave, long long first_tile,
                                     long long end_tile, const ThreadSum& thread_sum,
                                     T* tile_scratch, T* row_scratch) {
  T own;
  bool holds_unit;
  if constexpr (kOnChip) {
    own = tile_sums<kWarps, T>(first_tile, end_tile, thread_sum, tile_scratch);
    holds_unit = threadIdx.x < end_tile - first_tile;
  } else {
    PairwiseTree<T> tree;
    for (long long tile = first_tile; tile < end_tile; ++tile) tree.add(thread_sum(tile));
    own = group_sum<kBlockThreads>(tree.total(), tile_scratch);
    holds_unit = threadIdx.x == 0;
  }
  T mine = T(0);
  if (!exchange) {
    // The block holds every unit of the row, thread t unit t: the exchange's order.
    if (holds_unit) mine += own;
  } else {
    unsigned long long* base = words + (wave & 1) * layout.parity_stride * kPartialWords<T>;
    const unsigned int tag = wave_tag(first_tag, wave);
    if (holds_unit) publish_partial(base, layout.first_own + threadIdx.x, tag, own);
    const long long first_of_row = row_in_wave * layout.per_row;
    for (long long unit = threadIdx.x; unit < layout.per_row; unit += kBlockThreads) {
      mine += await_partial<T>(base, first_of_row + unit, tag);
    }
  }
  return group_sum<kBlockThreads>(mine, row_scratch);
}

#if L2NORM_FROM_INPUT
// ---- The rare path (from the input: rows whose f32 sum of squares fails, needs_rare_path) ----
// Loops that are not unrolled, over one vector at a time from `vector_at(tile, item, out)` (the
// thread's vector `item` of `tile`, zero past the row's end, read from where a run-time index
// reaches it: shared memory, or memory again for a tile the common path holds in registers).
// Rows that hardly ever occur then cost little code and few registers.

constexpr int kRareChunks = kValues / 8;
constexpr int kRareChunkVectors = 8 / kBackwardVec;

// The eight values of chunk `chunk` of a tensor's tile.
template <typename VectorAt>
__device__ __forceinline__ void read_chunk(const VectorAt& vector_at, long long tile, int chunk,
                                           float (&values)[8]) {
#pragma unroll
  for (int v = 0; v < kRareChunkVectors; ++v) {
    vector_at(tile, chunk * kRareChunkVectors + v, values + v * kBackwardVec);
  }
}

#endif
}  // namespace l2norm_kernels

// One block per multiprocessor, said outright: the co-resident blocks of a cooperative grid need
// no more (the host sizes the grid and shared memory for one), and it leaves ptxas up to 128
// registers a thread for the register tile and the tile being summed.
extern "C" __global__ void __launch_bounds__(L2NORM_BLOCK_THREADS, 1)
    l2_norm_backward_split(const L2NormBackwardArgs args, const L2NormBackwardSplitArgs split) {
  using namespace l2norm_kernels;
  // Per-warp totals of each of the block's tiles (on chip) or of one group_sum, and of the row's
  // group_sum.
  constexpr int kScratch = kOnChip ? kWarps * kMaxTilesPerBlock : kWarps;
  __shared__ float tile_scratch_f32[kScratch];
  __shared__ float row_scratch_f32[kWarps];
#if L2NORM_FROM_INPUT
  __shared__ double tile_scratch_f64[kScratch];
  __shared__ double row_scratch_f64[kWarps];
#endif
  __shared__ unsigned int first_tag;
  static_assert(sizeof(float) * (kScratch + kWarps) +
                        (L2NORM_FROM_INPUT ? sizeof(double) * (kScratch + kWarps) : 0) +
                        sizeof(first_tag) <=
                    kBackwardKernelPolicy.split_static_shared_bytes,
                "the host reserves the policy's split_static_shared_bytes of static shared memory");
  extern __shared__ uint4 staged_memory[];
  char* const staged = reinterpret_cast<char*>(staged_memory);

  const long long vectors = args.dim / kBackwardVec;
  const long long tiles = (vectors + kTileVectors - 1) / kTileVectors;
  // The grid fits 32 bits, and so does its 32-bit division.
  const auto blocks_per_row = static_cast<unsigned int>(split.blocks_per_row);
  const bool exchange = blocks_per_row > 1;
  const long long row_in_wave = blockIdx.x / blocks_per_row;
  const long long segment = blockIdx.x % blocks_per_row;
  const long long first_tile = segment * split.tiles_per_block;
  const long long end_tile = min(first_tile + split.tiles_per_block, tiles);
  const PartialLayout layout = partial_layout<kOnChip>(
      tiles, split.blocks_per_row, split.rows_per_wave, row_in_wave, segment, first_tile);

  // On chip: the segment's first tile, in registers.
  float dy_kept[kValues];
  float y_kept[kValues];
  for (long long wave = 0; wave < split.waves; ++wave) {
    const long long row = wave * split.rows_per_wave + row_in_wave;
    // Uniform over the row's blocks: they leave together and nobody waits for them.
    if (row >= args.rows) break;
    const BackwardRowOffsets offsets = backward_row_offsets(args, row);

    // On chip, the register tile is loaded, then the others are staged by cp.async one at a time,
    // in order, each summed as it lands under the loads of the next: only the last tile's sum
    // waits for the last load. At the start the register tile and the first staged tile are in
    // flight together.
    if constexpr (kOnChip) {
      load_tile<L2NORM_DY_DTYPE, true>(args.dy, offsets.dy, first_tile, vectors, dy_kept);
      load_tile<L2NORM_DTYPE, true>(args.y, offsets.y, first_tile, vectors, y_kept);
    }
    if (exchange && wave == 0 && threadIdx.x == 0) {
      first_tag = claim_wave_tags(split.tag_counter, split.waves);
    }
#if !L2NORM_FROM_INPUT
    GradientFactor factor = stored_factor(args.rstd[row * args.rstd_stride], args.eps);
#endif

    // Where staged tile `tile` (after the first) lives.
    const auto staged_tile = [&](long long tile) {
      return StagedTile{staged + (tile - first_tile - 1) * kStagedTileBytes};
    };
    // The first pass over the tiles: a staged tile waits for its own landing (the only copies in
    // flight), then the next tile is staged.
    const auto land = [&](long long tile) {
      if constexpr (kOnChip) {
        if (tile > first_tile) wait_for_staged_tiles();
        if (tile + 1 < end_tile) {
          const StagedTile next = staged_tile(tile + 1);
          stage_tile<L2NORM_DY_DTYPE>(args.dy, offsets.dy, tile + 1, vectors, next.dy());
          stage_tile<L2NORM_DTYPE>(args.y, offsets.y, tile + 1, vectors, next.y());
        }
      }
    };
    // A tile's values of y (or x), and of dy: on chip from registers or shared memory, streamed
    // from memory again.
    const auto y_values = [&](long long tile, float* out) {
      if constexpr (!kOnChip) {
        load_tile<L2NORM_DTYPE, false>(args.y, offsets.y, tile, vectors, out);
      } else if (tile == first_tile) {
#pragma unroll
        for (int i = 0; i < kValues; ++i) out[i] = y_kept[i];
      } else {
        read_staged_tile<L2NORM_DTYPE>(staged_tile(tile).y(), out);
      }
    };
    const auto dy_values = [&](long long tile, float* out) {
      if constexpr (!kOnChip) {
        load_tile<L2NORM_DY_DTYPE, false>(args.dy, offsets.dy, tile, vectors, out);
      } else if (tile == first_tile) {
#pragma unroll
        for (int i = 0; i < kValues; ++i) out[i] = dy_kept[i];
      } else {
        read_staged_tile<L2NORM_DY_DTYPE>(staged_tile(tile).dy(), out);
      }
    };

#if L2NORM_FROM_INPUT
    // The rare path's vectors, one at a time: the register tile is read from memory again (this
    // block writes its dx only after the row's sums, and then each vector after reading it, so
    // even in place over dy the inputs are intact).
    const auto x_vector_at = [&](long long tile, int item, float* out) {
      if (kOnChip && tile != first_tile) {
        read_staged_vector<L2NORM_DTYPE>(staged_tile(tile).y(), item, out);
      } else {
        load_tile_vector<L2NORM_DTYPE, false>(args.y, offsets.y, tile, vectors, item, out);
      }
    };
    const auto dy_vector_at = [&](long long tile, int item, float* out) {
      if (kOnChip && tile != first_tile) {
        read_staged_vector<L2NORM_DY_DTYPE>(staged_tile(tile).dy(), item, out);
      } else {
        load_tile_vector<L2NORM_DY_DTYPE, false>(args.dy, offsets.dy, tile, vectors, item, out);
      }
    };

    // The forward's factor: the f32 sum of squares of x, and for a rare row the f64 one. Every
    // block of the row holds the same sums, so all of them take the rare branch or none.
    const float sum = row_sum<float>(
        split.squares_f32, layout, exchange, first_tag, wave, row_in_wave, first_tile, end_tile,
        [&](long long tile) {
          land(tile);
          float x[kValues];
          y_values(tile, x);
          return sum_of_squares(x);
        },
        tile_scratch_f32, row_scratch_f32);
    GradientFactor factor = common_factor(sum, args.eps);
    if (needs_rare_path(sum)) {
      const double sum_f64 = row_sum<double>(
          split.squares_f64, layout, exchange, first_tag, wave, row_in_wave, first_tile, end_tile,
          [&](long long tile) {
            return chunk_tree<double, kRareChunks>([&](int chunk) {
              float x[8];
              read_chunk(x_vector_at, tile, chunk, x);
              return sum_of_squares_f64(x);
            });
          },
          tile_scratch_f64, row_scratch_f64);
      factor = rare_factor(sum_f64, args.eps);
    }
    // The thread's dot product of a tile, y recomputed from x: a common row unrolled, a rare row
    // a chunk at a time (the same order).
    const auto thread_dot = [&](long long tile) {
      if (factor.rare) {
        return chunk_tree<float, kRareChunks>([&](int chunk) {
          float dy[8];
          float y[8];
          read_chunk(dy_vector_at, tile, chunk, dy);
          read_chunk(x_vector_at, tile, chunk, y);
#pragma unroll
          for (int i = 0; i < 8; ++i) y[i] = rare_scaled(y[i], factor.r_f64);
          return dot_product(dy, y);
        });
      }
      float dy[kValues];
      float y[kValues];
      dy_values(tile, dy);
      y_values(tile, y);
#pragma unroll
      for (int i = 0; i < kValues; ++i) y[i] = __fmul_rn(y[i], factor.r);
      return dot_product(dy, y);
    };
#else
    const auto thread_dot = [&](long long tile) {
      land(tile);
      float dy[kValues];
      float y[kValues];
      dy_values(tile, dy);
      y_values(tile, y);
      return dot_product(dy, y);
    };
#endif
    const float dot =
        row_sum<float>(split.dot_f32, layout, exchange, first_tag, wave, row_in_wave, first_tile,
                       end_tile, thread_dot, tile_scratch_f32, row_scratch_f32);
    poison_if_not_finite(factor, dot);

    // dx of the segment, each vector stored as soon as it is formed.
    for (long long tile = first_tile; tile < end_tile; ++tile) {
      char* start = tile_start<L2NORM_DX_DTYPE>(static_cast<char*>(args.dx), offsets.dx, tile);
      const int inside_count = vectors_inside(tile, vectors);
#if L2NORM_FROM_INPUT
      if (factor.rare) {
#pragma unroll 1
        for (int item = 0; item < kItems; ++item) {
          const int vector = vector_in_tile(item);
          if (vector >= inside_count) break;
          float dy[kBackwardVec];
          float y[kBackwardVec];
          dy_vector_at(tile, item, dy);
          x_vector_at(tile, item, y);
          float dx[kBackwardVec];
#pragma unroll
          for (int e = 0; e < kBackwardVec; ++e) {
            dx[e] = gradient<true>(dy[e], rare_scaled(y[e], factor.r_f64), dot, factor, args.scale);
          }
          store_dx(start, static_cast<long long>(vector) * kBackwardVec, dx);
        }
        continue;
      }
#endif
      float dy[kValues];
      float y[kValues];
      dy_values(tile, dy);
      y_values(tile, y);
#pragma unroll
      for (int item = 0; item < kItems; ++item) {
        const int vector = vector_in_tile(item);
        if (vector < inside_count) {
          float dx[kBackwardVec];
#pragma unroll
          for (int e = 0; e < kBackwardVec; ++e) {
            const int i = item * kBackwardVec + e;
#if L2NORM_FROM_INPUT
            y[i] = __fmul_rn(y[i], factor.r);
#endif
            dx[e] = gradient<false>(dy[i], y[i], dot, factor, args.scale);
          }
          store_dx(start, static_cast<long long>(vector) * kBackwardVec, dx);
        }
      }
    }
  }
}
