// Host-side helpers for tests: typed host tensors, float64 reference, ulp distances.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "l2norm/l2norm.hpp"

namespace l2norm::testing {

inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
inline constexpr float kInf = std::numeric_limits<float>::infinity();
inline constexpr DType kDTypes[] = {DType::f32, DType::f16, DType::bf16};
inline constexpr EpsMode kModes[] = {EpsMode::add, EpsMode::clamp};

// Values stored in `dtype`'s bit pattern on the host (f32: 4 bytes, f16/bf16: 2 bytes each).
class HostTensor {
 public:
  HostTensor(DType dtype, std::size_t count);
  DType dtype() const { return dtype_; }
  std::size_t count() const { return count_; }
  void* data() { return bytes_.data(); }
  const void* data() const { return bytes_.data(); }
  std::size_t bytes() const { return bytes_.size(); }
  float get(std::size_t i) const;    // widened exactly to f32
  void set(std::size_t i, float v);  // rounded to nearest even into dtype
  void fill_poison();                // a NaN pattern, to catch unwritten outputs
  bool bitwise_equal(const HostTensor& other) const;

 private:
  DType dtype_;
  std::size_t count_;
  std::vector<std::byte> bytes_;
};

// Uniform values in [-range, range], rounded into dtype.
HostTensor random_tensor(DType dtype, std::size_t count, std::uint64_t seed, float range = 2.0f);

// Row-wise float64 reference from the (already rounded) inputs: x / sqrt(sum + eps) or
// x / max(norm, eps), times scale; not rounded to the storage type.
std::vector<double> reference_l2_norm(const HostTensor& x, std::int64_t rows, std::int64_t dim,
                                      const L2NormOptions& options);

// Size of one ulp of `dtype` at magnitude |value| (the subnormal spacing near zero).
double ulp_at(double value, DType dtype);
// Accuracy budget in ulps of the output type (docs/DESIGN.md): f32 grows with log2(dim).
double budget_ulps(DType dtype, std::int64_t dim, bool scaled);

// Expects every element of `got` within budget of `expected` (NaN must match NaN). Reports the
// worst element. Returns the worst error in ulps.
double expect_within_budget(const HostTensor& got, const std::vector<double>& expected,
                            std::int64_t dim, bool scaled, const char* what);

// Calls check(values, rows, dim, options) for every dtype, eps mode (eps 1e-6) and dim of the ops
// tests' sweep, from one element to rows longer than the rows kernel takes: 37 rows, 9 from 4096
// elements, of random values seeded seed + dim.
template <typename Check>
void for_each_swept_shape(std::uint64_t seed, Check&& check) {
  for (const DType dtype : kDTypes) {
    for (const EpsMode mode : kModes) {
      for (const std::int64_t dim : {1, 3, 64, 128, 1000, 4099, 16384}) {
        const std::int64_t rows = dim >= 4096 ? 9 : 37;
        const HostTensor values =
            random_tensor(dtype, std::size_t(rows * dim), seed + std::uint64_t(dim));
        check(values, rows, dim, L2NormOptions{.eps = 1e-6f, .eps_mode = mode});
      }
    }
  }
}

// A view's place in its storage: the element offset of its first element and its strides in
// elements.
struct StorageView {
  std::int64_t offset;
  std::vector<std::int64_t> strides;
};

// The rows of an `in` and an `out` view of `shape` over their storages, gathered through the index
// arithmetic a user would write into contiguous [rows, dim] tensors of the storages' dtypes, and
// which storage elements the output view covers.
struct GatheredRows {
  HostTensor input;
  HostTensor output;
  std::vector<bool> written;  // one per element of the output storage
};
GatheredRows gather_rows(const HostTensor& input_storage, const StorageView& in,
                         const HostTensor& output_storage, const StorageView& out,
                         const std::vector<std::int64_t>& shape);

// Elements of `after` whose bits differ from `before`'s where `written` is false.
std::size_t count_clobbered(const HostTensor& before, const HostTensor& after,
                            const std::vector<bool>& written);

// Runs l2_norm on `device` for a contiguous rows x dim input and returns the output (copying
// through device buffers when the device is not the CPU). `variant`, if given, receives the name
// of the kernel variant the dispatcher picked.
HostTensor run_l2_norm(const Device& device, const HostTensor& input, std::int64_t rows,
                       std::int64_t dim, const L2NormOptions& options,
                       std::string* variant = nullptr);
// The same into an output of `output_dtype` (the flat entry point with two dtypes).
HostTensor run_l2_norm_into(const Device& device, const HostTensor& input, DType output_dtype,
                            std::int64_t rows, std::int64_t dim, const L2NormOptions& options,
                            std::string* variant = nullptr);
// The same, normalizing in place (one device buffer for input and output).
HostTensor run_l2_norm_in_place(const Device& device, const HostTensor& input, std::int64_t rows,
                                std::int64_t dim, const L2NormOptions& options);

}  // namespace l2norm::testing
