// Division of a row index by an outer dim's size without a divide instruction in the kernels
// (a 64-bit division is a long inline sequence that NVRTC compiles into every kernel and that runs
// once per row of a strided view). Granlund and Montgomery's method ("Division by invariant
// integers using multiplication", 1994, figure 4.1), for 64-bit unsigned dividends: with
// shift = ceil(log2(size)) and multiplier = floor(2^64 * (2^shift - size) / size) + 1,
//   t = high 64 bits of multiplier * n,  n / size = (t + ((n - t) >> 1)) >> (shift - 1)
// for every n < 2^64 and size >= 2 (shift 0, size 1: the quotient is n). row_math.cuh's
// row_offsets applies it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <tuple>
#include <type_traits>

namespace l2norm::detail::cuda {

struct OuterDivisor {
  std::uint64_t multiplier = 0;
  int shift = 0;
};

// For a size in 1 .. 2^63 (a dim of a tensor: a positive int64).
constexpr OuterDivisor outer_divisor(std::uint64_t size) {
  int shift = 0;
  while (shift < 63 && (std::uint64_t{1} << shift) < size) ++shift;
  // floor(2^64 * remainder / size) for remainder = 2^shift - size < size, by long division one
  // bit at a time (remainder < size <= 2^63, so doubling it never overflows).
  std::uint64_t remainder = shift == 0 ? 0 : (std::uint64_t{1} << shift) - size;
  std::uint64_t quotient = 0;
  for (int bit = 0; bit < 64; ++bit) {
    remainder <<= 1;
    quotient <<= 1;
    if (remainder >= size) {
      remainder -= size;
      quotient |= 1;
    }
  }
  return {quotient + 1, shift};
}

// Copies `layout`'s outer rank and sizes (ops/rows.hpp) into kernel arguments `args`, with the
// multipliers and shifts that divide by the sizes of dims 1 .. outer_rank - 1, the only ones the
// kernels divide by.
template <typename Args, typename Layout>
void set_outer_sizes(Args& args, const Layout& layout) {
  static_assert(std::extent_v<decltype(Args::outer_sizes)> ==
                std::tuple_size_v<std::remove_cvref_t<decltype(layout.outer_sizes)>>);
  args.outer_rank = layout.outer_rank;
  for (int i = 0; i < static_cast<int>(std::extent_v<decltype(Args::outer_sizes)>); ++i) {
    const auto index = static_cast<std::size_t>(i);
    args.outer_sizes[i] = layout.outer_sizes[index];
    if (i >= 1 && i < args.outer_rank) {
      const OuterDivisor divisor = outer_divisor(static_cast<std::uint64_t>(args.outer_sizes[i]));
      args.outer_multipliers[i] = divisor.multiplier;
      args.outer_shifts[i] = divisor.shift;
    }
  }
}

}  // namespace l2norm::detail::cuda
