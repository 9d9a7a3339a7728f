// How the co-resident blocks of a cooperative launch exchange partial sums through a zeroed
// workspace the encoder owns, with no fence, float atomic or barrier word (l2_norm_split,
// l2_norm_backward_split).
//
// Each partial is written once, with relaxed 64-bit stores, into words that carry a tag in their
// high 32 bits (an f32 partial in the low 32 bits of one word, an f64 partial in two words, its
// high half first); a reader polls each word with relaxed loads until it carries the tag it
// expects. The value travels in the same single-copy-atomic word as its tag, so a reader that sees
// the tag sees the value.
//
// Tags: every dispatch claims one per wave (claim_wave_tags), all newer than any word already in
// the workspace, from a counter word whose high 32 bits are the next tag and whose low 32 count
// the blocks that have started. Thread 0 of every block adds one; the last block to start moves
// the tag past this dispatch's waves and zeroes the count in one further add. Every block of the
// grid reads the same tag base: the count returns to zero only after all of them have added. The
// workspace starts zeroed and tags start at 1, so a word no dispatch wrote never matches. Tags
// repeat after 2^32 waves; a word could then match only if no dispatch wrote it for exactly that
// many waves.
//
// Contract: every block of the grid calls claim_wave_tags exactly once per dispatch, and a block
// awaits only words that blocks co-resident with it write (cooperative launch), else it may wait
// forever.
#pragma once

namespace l2norm_kernels {

// The first of `waves` consecutive tags of this dispatch; thread 0 of each block calls it once.
__device__ __forceinline__ unsigned int claim_wave_tags(unsigned long long* counter,
                                                        long long waves) {
  unsigned long long before;
  asm volatile("atom.relaxed.gpu.global.add.u64 %0, [%1], 1;"
               : "=l"(before)
               : "l"(counter)
               : "memory");
  if ((before & 0xffffffffull) == gridDim.x - 1) {
    const unsigned long long advance = (static_cast<unsigned long long>(waves) << 32) - gridDim.x;
    asm volatile("red.relaxed.gpu.global.add.u64 [%0], %1;" ::"l"(counter), "l"(advance)
                 : "memory");
  }
  return static_cast<unsigned int>(before >> 32) + 1;
}

__device__ __forceinline__ unsigned int wave_tag(unsigned int first_tag, long long wave) {
  return first_tag + static_cast<unsigned int>(wave);
}

__device__ __forceinline__ void store_tagged(unsigned long long* word, unsigned int tag,
                                             unsigned int bits) {
  const unsigned long long tagged = (static_cast<unsigned long long>(tag) << 32) | bits;
  asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(word), "l"(tagged) : "memory");
}

__device__ __forceinline__ unsigned int await_tagged(const unsigned long long* word,
                                                     unsigned int tag) {
  unsigned long long tagged;
  do {
    asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(tagged) : "l"(word) : "memory");
  } while (static_cast<unsigned int>(tagged >> 32) != tag);
  return static_cast<unsigned int>(tagged);
}

// Words per partial of type T (f32: 1, f64: 2).
template <typename T>
constexpr int kPartialWords = sizeof(T) / sizeof(unsigned int);

// Partial `unit` of an array of partials starting at `words`, written and awaited.
__device__ __forceinline__ void publish_partial(unsigned long long* words, long long unit,
                                                unsigned int tag, float value) {
  store_tagged(words + unit, tag, __float_as_uint(value));
}

__device__ __forceinline__ void publish_partial(unsigned long long* words, long long unit,
                                                unsigned int tag, double value) {
  const auto bits = static_cast<unsigned long long>(__double_as_longlong(value));
  store_tagged(words + 2 * unit, tag, static_cast<unsigned int>(bits >> 32));
  store_tagged(words + 2 * unit + 1, tag, static_cast<unsigned int>(bits));
}

template <typename T>
__device__ __forceinline__ T await_partial(const unsigned long long* words, long long unit,
                                           unsigned int tag) {
  if constexpr (sizeof(T) == sizeof(double)) {
    const unsigned long long high = await_tagged(words + 2 * unit, tag);
    const unsigned long long low = await_tagged(words + 2 * unit + 1, tag);
    return __longlong_as_double(static_cast<long long>((high << 32) | low));
  } else {
    return __uint_as_float(await_tagged(words + unit, tag));
  }
}

// Where one wave's partial sums of one kind live, for rows cut into segments of whole tiles, one
// segment per block: the row's partials are contiguous (one per tile on chip, one per block
// streamed), two parities because a block may run one wave ahead of a slower block of its row,
// never two (it cannot finish a wave's last exchange before every block of its row has published
// that wave's partials, which each does after its reads of the wave before). In units; a unit is
// kPartialWords<T> words.
struct PartialLayout {
  long long per_row;
  long long first_own;  // this block's first partial, relative to the parity base
  long long parity_stride;
};

// The layout of block `segment` of row `row_in_wave` of a wave, its segment starting at tile
// `first_tile`: one partial per tile (PerTile, of `tiles` per row) or per block (of
// `blocks_per_row`), `rows_per_wave` rows a wave.
template <bool PerTile>
__device__ __forceinline__ PartialLayout partial_layout(long long tiles, long long blocks_per_row,
                                                        long long rows_per_wave,
                                                        long long row_in_wave, long long segment,
                                                        long long first_tile) {
  PartialLayout layout;
  layout.per_row = PerTile ? tiles : blocks_per_row;
  layout.first_own = row_in_wave * layout.per_row + (PerTile ? first_tile : segment);
  layout.parity_stride = rows_per_wave * layout.per_row;
  return layout;
}

}  // namespace l2norm_kernels
