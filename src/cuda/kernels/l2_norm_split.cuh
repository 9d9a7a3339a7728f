// l2_norm_split: rows too long for one block, or in batches too small to give every
// multiprocessor a row (else l2_norm_staged). Each row is cut into blocks_per_row segments handled
// by co-resident blocks (cooperative launch); the blocks of one row exchange partial sums through
// the encoder's workspace as tagged words (partial_exchange.cuh), with no atomics but one per block
// per dispatch: a row's blocks wait only for the partials themselves, which is faster than an
// arrival counter with acquire/release atomics (docs/PERFORMANCE.md).
//
// Two modes, each its own kernel (L2NORM_SPLIT_ON_CHIP), chosen on the host from dim and the
// device alone:
// - on chip: a segment's first tile stays in registers and its other tiles in dynamic shared
//   memory, so memory is read once and written once, with an L2 evict-first policy. The staged
//   tiles are loaded one at a time, each summed as the next loads. One partial sum per tile,
//   combined in tiles.cuh's order: how tiles map to blocks (which depends on the row count) never
//   changes a row's result, and l2_norm_staged gives the same bits. While the partial sums
//   travel, blocks may write part of their output early to move L2 write-backs out of the store
//   phase (write_early_lines).
// - streamed: rows longer than the chip holds; one partial sum per block and every tile is read
//   again, mostly from L2, for the scaling pass.
//
// Defines: those of tiles.cuh (L2NORM_DTYPE, L2NORM_OUT_DTYPE, L2NORM_VEC_BYTES, L2NORM_ITEMS:
// vectors per thread per tile, L2NORM_BLOCK_THREADS, L2NORM_EPS_CLAMP, L2NORM_SCALED),
// L2NORM_SPLIT_ON_CHIP (1 on chip, 0 streamed), L2NORM_ROW_SUM_IN_WARPS (1: on chip, rows of at
// most the policy's warp_row_sum_tiles tiles, warp_row_sum).
#include "partial_exchange.cuh"
#include "tiles.cuh"

namespace l2norm_kernels {
constexpr bool kOnChip = L2NORM_SPLIT_ON_CHIP != 0;
constexpr bool kRowSumInWarps = L2NORM_ROW_SUM_IN_WARPS != 0;

// On chip, nothing reads the tile from memory again (but a rare row); streamed, the scaling pass
// does.
__device__ __forceinline__ void load_tile(const L2NormArgs& args, long long row_offset,
                                          long long tile, long long vectors, float* x) {
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    load_tile_vector<kOnChip>(args.input, row_offset, tile, vectors, item, x + item * kVec);
  }
}

// Rows of at most kKernelPolicy.warp_row_sum_tiles tiles on chip (the host picks the kernel by
// dim): the row's f32 sum from its `per_row` partials (from `words` on) is computed by every warp
// on its own, in group_sum<kBlockThreads>'s order over "thread t holds partial t": lane l plays
// thread 32w + l of the first kPolledWarps warps w, its loads in flight together, the butterflies
// give those warps' totals, and warps_tree adds them to the other warps' zeros, so the bits are
// group_sum's. The kernel then has no block reduction after the tile sums (no shared memory, no
// barrier): each warp starts storing as soon as it has the sum. It is a kernel of its own because
// the gain holds only when no block reduction is compiled in beside it (docs/PERFORMANCE.md).
constexpr int kPolledWarps = kKernelPolicy.warp_row_sum_tiles / 32;
static_assert(kKernelPolicy.warp_row_sum_tiles % 32 == 0 && kPolledWarps <= kWarps,
              "the row's tile sums fill whole warps of lanes");

__device__ __forceinline__ float warp_row_sum(const unsigned long long* words, long long per_row,
                                              unsigned int tag) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  unsigned long long tagged[kPolledWarps] = {};
  bool waiting[kPolledWarps];
  bool any_waiting = false;
#pragma unroll
  for (int i = 0; i < kPolledWarps; ++i) {
    waiting[i] = 32 * i + lane < per_row;
    any_waiting = any_waiting || waiting[i];
  }
  while (any_waiting) {
#pragma unroll
    for (int i = 0; i < kPolledWarps; ++i) {
      if (waiting[i]) {
        asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];"
                     : "=l"(tagged[i])
                     : "l"(words + 32 * i + lane)
                     : "memory");
      }
    }
    any_waiting = false;
#pragma unroll
    for (int i = 0; i < kPolledWarps; ++i) {
      if (waiting[i] && static_cast<unsigned int>(tagged[i] >> 32) == tag) waiting[i] = false;
      any_waiting = any_waiting || waiting[i];
    }
  }
  float totals[kWarps];
#pragma unroll
  for (int warp = 0; warp < kWarps; ++warp) {
    float mine = 0.0f;
    if (warp < kPolledWarps && 32 * warp + lane < per_row) {
      mine += __uint_as_float(static_cast<unsigned int>(tagged[warp]));
    }
    // Uniform over the warp; a warp of zeros sums to zero.
    totals[warp] = warp < kPolledWarps && 32 * warp < per_row ? warp_butterfly<32>(mine) : 0.0f;
  }
  return warps_tree<kWarps>(totals);
}

// The row's sum of squares in T (f32, or f64 for the rare path), in an order fixed by dim alone:
// on chip tiles.cuh's order; streamed, per block a block-wide tree, then a tree over the blocks.
// Both end their block's own sums with a block barrier, after which `first_tag` (the dispatch's
// first tag, in shared memory, written by thread 0 in the first wave) may be read.
// `thread_sum(tile)` gives the thread's sum of a tile; `while_waiting()` runs after the block's
// own partials are published, before the row's are awaited; `tile_scratch` holds tile_sums'
// totals, `row_scratch` kWarps values for the last group_sum (apart, so that it cannot overwrite
// totals another thread still reads).
template <typename T, typename ThreadSum, typename WhileWaiting>
__device__ __forceinline__ T row_sum_of_squares(
    unsigned long long* partials, const PartialLayout& layout, const unsigned int& first_tag,
    long long wave, long long row_in_wave, long long first_tile, long long end_tile,
    ThreadSum thread_sum, WhileWaiting while_waiting, T* tile_scratch, T* row_scratch) {
  unsigned long long* base = partials + (wave & 1) * layout.parity_stride * kPartialWords<T>;
  if constexpr (kOnChip) {
    const T tile_sum = tile_sums<kWarps, T>(first_tile, end_tile, thread_sum, tile_scratch);
    if (threadIdx.x < end_tile - first_tile) {
      publish_partial(base, layout.first_own + threadIdx.x, wave_tag(first_tag, wave), tile_sum);
    }
  } else {
    T sum = T(0);
    for (long long tile = first_tile; tile < end_tile; ++tile) sum += thread_sum(tile);
    const T block_sum = group_sum<kBlockThreads>(sum, tile_scratch);
    if (threadIdx.x == 0) {
      publish_partial(base, layout.first_own, wave_tag(first_tag, wave), block_sum);
    }
  }
  while_waiting();
  // With at most kBlockThreads units, thread t holds unit t, as tiles.cuh's order asks.
  const long long first_of_row = row_in_wave * layout.per_row;
  if constexpr (kOnChip && kRowSumInWarps && sizeof(T) == sizeof(float)) {
    (void)row_scratch;
    return warp_row_sum(base + first_of_row, layout.per_row, wave_tag(first_tag, wave));
  } else {
    T mine = T(0);
    for (long long unit = threadIdx.x; unit < layout.per_row; unit += kBlockThreads) {
      mine += await_partial<T>(base, first_of_row + unit, wave_tag(first_tag, wave));
    }
    return group_sum<kBlockThreads>(mine, row_scratch);
  }
}

// On chip, where the host asks for it, part of each segment's output is written early, with the
// input's own bits (converted to the output type where the two differ), while the row's partial
// sums travel; the scaled values overwrite it later.
// Writing a line allocates it in L2. Where L2 is full of dirty lines (other kernels' outputs),
// that evicts one, and its write-back to memory then runs while memory would otherwise idle
// instead of under the row's stores. The host asks only when input and output together exceed L2;
// smaller ones may be resident already, and then the early writes only cost. The policy's
// early_output_bytes per block, in item spans (kBlockThreads
// consecutive vectors, so that lines are written whole: a partly written line is first read from
// memory) two items apart, from the first staged tile on (the second tile the block stores). In
// place the bits written are the ones already there; the rare path reads staged tiles from shared
// memory, and the register tile, which this leaves alone, from memory. The placement is the
// measured best of those compared in docs/PERFORMANCE.md.
constexpr int kOutputVectorBytes = kVec * Out::kBytes;
constexpr int kEarlySpans = kKernelPolicy.early_output_bytes / (kBlockThreads * kOutputVectorBytes);
constexpr int kEarlySpanStride = 2;

__device__ __forceinline__ void write_early_lines(void* output, long long row_offset,
                                                  long long first_tile, long long end_tile,
                                                  long long vectors, const raw_vector_t* staged) {
  for (int span = 0; span < kEarlySpans; ++span) {
    // Staged item spans are numbered across the staged tiles, in order.
    const int index = span * kEarlySpanStride;
    const long long tile = first_tile + 1 + index / kItems;
    if (tile >= end_tile) break;
    const int vector = vector_in_tile(index % kItems);
    if (vector < vectors_inside(tile, vectors)) {
      char* start = tile_start<Out>(static_cast<char*>(output), row_offset, tile);
      const raw_vector_t& raw = staged[index * kBlockThreads + threadIdx.x];
      if constexpr (In::kCode == Out::kCode) {
        *reinterpret_cast<raw_vector_t*>(start + vector * kOutputVectorBytes) = raw;
      } else {
        float values[kVec];
        widen_raw<In, kVec>(raw, values);
        store_vector<Out, kVec>(start, vector * kVec, values);
      }
    }
  }
}

}  // namespace l2norm_kernels

// At least one block per multiprocessor, said outright: with the block size alone, ptxas sometimes
// squeezed the streamed kernel into 64 registers with spills (for two blocks per multiprocessor,
// which a row's co-resident blocks do not need), depending on unrelated code.
extern "C" __global__ void __launch_bounds__(L2NORM_BLOCK_THREADS, 1)
    l2_norm_split(const L2NormArgs args, const L2NormSplitArgs split) {
  using namespace l2norm_kernels;
  // Per-warp totals of each of the block's tiles (on chip) or of one group_sum, and of the row's
  // group_sum.
  constexpr int kScratch = kOnChip ? kWarps * kKernelPolicy.max_tiles_per_block : kWarps;
  // Two, by wave parity, where the warps sum the row themselves: no barrier then follows the reads
  // of a wave's tile totals, and a warp writing the next wave's may pass a slower one still
  // reading; one two waves ahead would have passed the middle wave's tile-sum barrier, which
  // waits for all.
  constexpr int kScratchCopies = kOnChip && kRowSumInWarps ? 2 : 1;
  __shared__ float tile_scratch_f32[kScratchCopies * kScratch];
  __shared__ double tile_scratch_f64[kScratch];
  __shared__ float row_scratch_f32[kWarps];
  __shared__ double row_scratch_f64[kWarps];
  __shared__ unsigned int first_tag;
  static_assert(sizeof(tile_scratch_f32) + sizeof(tile_scratch_f64) + sizeof(row_scratch_f32) +
                        sizeof(row_scratch_f64) + sizeof(first_tag) <=
                    kKernelPolicy.split_static_shared_bytes,
                "the host reserves the policy's split_static_shared_bytes of static shared memory");
  extern __shared__ raw_vector_t staged[];

  const long long vectors = args.dim / kVec;
  const long long tiles = (vectors + kTileVectors - 1) / kTileVectors;
  // The grid fits 32 bits, and so does its 32-bit division.
  const auto blocks_per_row = static_cast<unsigned int>(split.blocks_per_row);
  const long long row_in_wave = blockIdx.x / blocks_per_row;
  const long long segment = blockIdx.x % blocks_per_row;
  const long long first_tile = segment * split.tiles_per_block;
  const long long end_tile = min(first_tile + split.tiles_per_block, tiles);
  const PartialLayout layout = partial_layout<kOnChip>(
      tiles, split.blocks_per_row, split.rows_per_wave, row_in_wave, segment, first_tile);

  float x[kValues];
  for (long long wave = 0; wave < split.waves; ++wave) {
    const long long row = wave * split.rows_per_wave + row_in_wave;
    // Uniform over the row's blocks: they leave together and nobody waits for them.
    if (row >= args.rows) break;
    const RowOffsets offsets = row_offsets(args, row);

    // On chip, the segment's first tile is loaded into registers and the others are staged by
    // cp.async one at a time, in order, each summed as it lands, under the loads of the next: only
    // the last tile's sum waits for the last load. At the start the register tile and the first
    // staged tile are in flight together. One call site each for the register loads and the
    // staging keeps NVRTC's compile time down.
    if constexpr (kOnChip) load_tile(args, offsets.input, first_tile, vectors, x);
    if (wave == 0 && threadIdx.x == 0) first_tag = claim_wave_tags(split.tag_counter, split.waves);

    // Where staged tile `tile` (after the first) lives.
    const auto staged_tile_at = [&](long long tile) {
      return staged + (tile - first_tile - 1) * kTileVectors;
    };
    // A tile's values: on chip from registers or shared memory, streamed from memory again.
    const auto values = [&](long long tile, float* out) {
      if constexpr (!kOnChip) {
        load_tile(args, offsets.input, tile, vectors, out);
      } else if (tile == first_tile) {
#pragma unroll
        for (int i = 0; i < kValues; ++i) out[i] = x[i];
      } else {
        read_staged_tile(staged_tile_at(tile), out);
      }
    };
    // The first pass over the tiles: a staged tile waits for its own landing (the only copies in
    // flight), then the next tile is staged.
    const auto landing_values = [&](long long tile, float* out) {
      if constexpr (kOnChip) {
        if (tile > first_tile) wait_for_staged_tiles();
        if (tile + 1 < end_tile) {
          stage_tile(args.input, offsets.input, tile + 1, vectors, staged_tile_at(tile + 1));
        }
      }
      values(tile, out);
    };
    // The rare path's values, one vector at a time: the register tile is read from memory again
    // (this block writes its tiles only after the row's sum, so even in place the input is intact).
    const auto vector_at = [&](long long tile, int item, float* out) {
      if (kOnChip && tile != first_tile) {
        read_staged_vector(staged_tile_at(tile), item, out);
      } else {
        load_tile_vector<false>(args.input, offsets.input, tile, vectors, item, out);
      }
    };

    const float sum = row_sum_of_squares(
        split.partial_f32, layout, first_tag, wave, row_in_wave, first_tile, end_tile,
        [&](long long tile) { return thread_sum_of_squares(tile, landing_values); },
        [&] {
          if (kOnChip && split.early_lines) {
            write_early_lines(args.output, offsets.output, first_tile, end_tile, vectors, staged);
          }
        },
        tile_scratch_f32 + (wave % kScratchCopies) * kScratch, row_scratch_f32);
    const RowScale row_scale = row_scale_from(sum, args.eps, [&] {
      return row_sum_of_squares(
          split.partial_f64, layout, first_tag, wave, row_in_wave, first_tile, end_tile,
          [&](long long tile) { return rare_thread_sum_of_squares(tile, vector_at); }, [] {},
          tile_scratch_f64, row_scratch_f64);
    });
    // The block of the row's first segment writes its rstd: every block holds the same row_scale.
    if (segment == 0 && threadIdx.x == 0) store_rstd(args, row, row_scale);
    store_scaled_tiles(args, offsets.output, first_tile, end_tile, vectors, row_scale, values,
                       vector_at);
  }
}
