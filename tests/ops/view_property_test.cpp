// Property test of the view checks: random shapes, strides (valid, zero, negative, huge), offsets,
// dtypes, null and misaligned pointers, with input and output in one device buffer between guard
// regions. An independent oracle (128-bit arithmetic, byte maps) says whether the call is invalid;
// the op must then throw Error(invalid_argument) and leave every byte alone, and otherwise write
// the output view's elements within the accuracy budget and no other byte, guards included.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/backends.hpp"
#include "support/reference.hpp"

namespace l2norm::testing {
namespace {

__extension__ using Wide = __int128;

constexpr std::int64_t kGuardBytes = 64;
constexpr std::int64_t kMaxRegionBytes = std::int64_t{1} << 16;
constexpr std::byte kGuard{0xA5};

struct ViewSpec {
  std::vector<std::int64_t> strides;
  std::int64_t offset_bytes = 0;  // from the region's start
  bool null = false;
};

struct Case {
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;
  ViewSpec in, out;
  L2NormOptions options;

  std::string describe() const {
    std::ostringstream text;
    const auto list = [&](const std::vector<std::int64_t>& values) {
      text << '[';
      for (std::size_t i = 0; i < values.size(); ++i) text << (i ? ", " : "") << values[i];
      text << ']';
    };
    text << dtype_name(dtype) << " shape ";
    list(shape);
    text << " in strides ";
    list(in.strides);
    text << " at byte " << in.offset_bytes << (in.null ? " (null)" : "") << ", out strides ";
    list(out.strides);
    text << " at byte " << out.offset_bytes << (out.null ? " (null)" : "") << ", eps_mode "
         << eps_mode_name(options.eps_mode) << ", scale " << options.scale;
    return text.str();
  }
};

// --- Generation -----------------------------------------------------------------------------

class Generator {
 public:
  explicit Generator(std::uint64_t seed) : random_(seed) {}

  Case next() {
    Case c;
    const DType dtypes[] = {DType::f32, DType::f16, DType::bf16};
    c.dtype = dtypes[pick(3)];
    const int rank = 1 + int(pick(4));
    const int large_dim = chance(0.15) ? int(pick(std::uint64_t(rank))) : -1;
    for (int i = 0; i < rank; ++i) {
      std::int64_t size = 1 + std::int64_t(pick(5));
      if (chance(0.04)) size = 0;
      if (i == large_dim) size = std::vector<std::int64_t>{7, 16, 33, 64, 130}[pick(5)];
      c.shape.push_back(size);
    }
    c.in.strides = strides(c.shape);
    c.in.offset_bytes = std::int64_t(pick(9)) * std::int64_t(dtype_size(c.dtype));
    const std::int64_t dim = c.shape.back();
    if (chance(0.3)) {
      // In place, or the same rows with other strides in size-1 dims.
      c.out = c.in;
      for (std::size_t i = 0; i < c.shape.size(); ++i) {
        if (c.shape[i] == 1 && chance(0.3)) c.out.strides[i] = huge_or_small();
      }
      if (chance(0.2)) c.out.strides = strides(c.shape);
    } else {
      c.out.strides = strides(c.shape);
      std::int64_t offset = c.in.offset_bytes / std::int64_t(dtype_size(c.dtype));
      if (chance(0.5)) {
        offset += std::int64_t(pick(std::uint64_t(4 * dim + 3))) - 2 * dim;
      } else {
        offset = std::int64_t(pick(400));
      }
      c.out.offset_bytes = std::max<std::int64_t>(offset, 0) * std::int64_t(dtype_size(c.dtype));
    }
    if (chance(0.03)) c.in.offset_bytes += 1;
    if (chance(0.03)) c.out.offset_bytes += 1;
    c.in.null = chance(0.02);
    c.out.null = chance(0.02);
    if (chance(0.3)) c.options.eps_mode = EpsMode::clamp;
    if (chance(0.3)) c.options.scale = 0.75f;
    return c;
  }

 private:
  std::uint64_t pick(std::uint64_t n) { return random_() % n; }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(random_) < p; }

  std::int64_t huge_or_small() {
    if (chance(0.5)) return std::int64_t(pick(20));
    return (std::int64_t{1} << (40 + pick(23))) + std::int64_t(pick(5)) - 2;
  }

  // Strides that pass the checks (a random dim order, sometimes padded), then a few broken ones.
  std::vector<std::int64_t> strides(const std::vector<std::int64_t>& shape) {
    const int rank = int(shape.size());
    std::vector<std::int64_t> result(shape.size(), 1);
    std::vector<int> order(std::size_t(rank - 1));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), random_);
    std::int64_t covered = shape.back();
    for (const int i : order) {
      const std::int64_t stride = covered + (chance(0.3) ? std::int64_t(pick(4)) : 0);
      result[std::size_t(i)] = stride;
      covered = stride * std::max<std::int64_t>(shape[std::size_t(i)] - 1, 0) + covered;
    }
    for (int i = 0; i < rank; ++i) {
      const double roll = std::uniform_real_distribution<double>(0, 1)(random_);
      std::int64_t& stride = result[std::size_t(i)];
      if (roll < 0.06) {
        stride = 0;
      } else if (roll < 0.10) {
        stride = -1 - std::int64_t(pick(8));
      } else if (roll < 0.18) {
        stride = (std::int64_t{1} << (40 + pick(23))) + std::int64_t(pick(5)) - 2;
      } else if (roll < 0.26) {
        stride = std::int64_t(pick(std::uint64_t(2 * shape.back() + 4)));
      } else if (roll < 0.27) {
        stride = std::numeric_limits<std::int64_t>::max() - std::int64_t(pick(3));
      }
    }
    return result;
  }

  std::mt19937_64 random_;
};

// --- Oracle ---------------------------------------------------------------------------------

std::int64_t leading_rows(const std::vector<std::int64_t>& shape) {
  std::int64_t rows = 1;
  for (std::size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  return rows;
}

// Element offset of each row, row-major over the leading dims.
std::vector<std::int64_t> row_offsets(const std::vector<std::int64_t>& shape,
                                      const std::vector<std::int64_t>& strides) {
  std::vector<std::int64_t> offsets;
  const std::int64_t rows = leading_rows(shape);
  for (std::int64_t r = 0; r < rows; ++r) {
    std::int64_t rest = r, offset = 0;
    for (int d = int(shape.size()) - 2; d >= 0; --d) {
      const std::int64_t size = shape[std::size_t(d)];
      offset += (rest % size) * strides[std::size_t(d)];
      rest /= size;
    }
    offsets.push_back(offset);
  }
  return offsets;
}

// The elements a non-empty view spans, exactly; the caller compares it with the limits.
Wide span_elements(const Case& c, const ViewSpec& view) {
  Wide elements = 1;
  for (std::size_t i = 0; i < c.shape.size(); ++i) {
    const Wide stride = view.strides[i] < 0 ? -Wide(view.strides[i]) : Wide(view.strides[i]);
    elements += Wide(c.shape[i] - 1) * stride;
  }
  return elements;
}

// Invalid by a rule that needs no memory map: null, negative or non-unit last stride,
// misalignment, an extent over int64 bytes, or output rows that break the documented rule.
bool structurally_invalid(const Case& c) {
  const auto element_bytes = std::int64_t(dtype_size(c.dtype));
  const std::int64_t dim = c.shape.back();
  for (const ViewSpec* view : {&c.in, &c.out}) {
    if (view->null) return true;
    for (const std::int64_t stride : view->strides) {
      if (stride < 0) return true;
    }
    if (dim > 1 && view->strides.back() != 1) return true;
    if ((kGuardBytes + view->offset_bytes) % element_bytes != 0) return true;
    if (span_elements(c, *view) * element_bytes > Wide(std::numeric_limits<std::int64_t>::max())) {
      return true;
    }
  }
  // The documented rule for the output's rows (include/l2norm/ops.hpp).
  std::vector<std::pair<std::int64_t, std::int64_t>> dims;  // (stride, size)
  for (std::size_t i = 0; i + 1 < c.shape.size(); ++i) {
    if (c.shape[i] > 1) dims.emplace_back(c.out.strides[i], c.shape[i]);
  }
  std::sort(dims.begin(), dims.end());
  Wide covered = dim;
  for (const auto& [stride, size] : dims) {
    if (Wide(stride) < covered) return true;
    covered += Wide(stride) * Wide(size - 1);
  }
  return false;
}

bool same_rows(const Case& c) {
  if (c.in.offset_bytes != c.out.offset_bytes || c.in.null != c.out.null) return false;
  for (std::size_t i = 0; i < c.shape.size(); ++i) {
    if (c.shape[i] > 1 && c.in.strides[i] != c.out.strides[i]) return false;
  }
  return true;
}

// --- The test -------------------------------------------------------------------------------

class ViewProperty : public OnEveryBackend {
 protected:
  struct Tally {
    int written = 0, refused = 0, empty = 0, skipped = 0;
  };
  Tally tally_;

  // Runs one case; returns false when it was skipped (a valid view outside any sane region).
  bool run_case(const Case& c, std::uint64_t seed) {
    const auto element_bytes = std::int64_t(dtype_size(c.dtype));
    const std::int64_t dim = c.shape.back(), rows = leading_rows(c.shape);
    const bool empty = rows == 0 || dim == 0;
    const bool invalid = dim == 0 || (!empty && structurally_invalid(c));

    // The region holds both views when they are small enough to be valid and real.
    std::int64_t region_bytes = 256;
    if (!empty && !invalid) {
      for (const ViewSpec* view : {&c.in, &c.out}) {
        const Wide end = Wide(view->offset_bytes) + span_elements(c, *view) * element_bytes;
        if (end > Wide(kMaxRegionBytes)) {
          ++tally_.skipped;
          return false;
        }
        region_bytes = std::max(region_bytes, std::int64_t(end));
      }
    }
    const std::int64_t total_bytes = kGuardBytes + region_bytes + kGuardBytes;
    const std::int64_t count = (total_bytes + element_bytes - 1) / element_bytes;
    HostTensor before = random_tensor(c.dtype, std::size_t(count), seed);
    auto* bytes = static_cast<std::byte*>(before.data());
    std::fill(bytes, bytes + kGuardBytes, kGuard);
    std::fill(bytes + kGuardBytes + region_bytes, bytes + before.bytes(), kGuard);

    // Byte maps of both views (valid, non-empty cases only) decide overlap exactly.
    bool overlap = false;
    std::vector<std::int64_t> in_rows, out_rows;
    std::vector<bool> written(before.bytes(), false);
    if (!empty && !invalid) {
      in_rows = row_offsets(c.shape, c.in.strides);
      out_rows = row_offsets(c.shape, c.out.strides);
      std::vector<bool> read(before.bytes(), false);
      bool rows_collide = false;
      for (std::size_t r = 0; r < out_rows.size(); ++r) {
        for (std::int64_t b = 0; b < dim * element_bytes; ++b) {
          const auto at =
              std::size_t(kGuardBytes + c.out.offset_bytes + out_rows[r] * element_bytes + b);
          rows_collide |= written[at];
          written[at] = true;
          read[std::size_t(kGuardBytes + c.in.offset_bytes + in_rows[r] * element_bytes + b)] =
              true;
        }
      }
      EXPECT_FALSE(rows_collide) << "the documented output-row rule admits colliding rows";
      if (!same_rows(c)) {
        for (std::size_t i = 0; i < written.size(); ++i) overlap |= written[i] && read[i];
      }
    }
    const bool expect_error = invalid || (!empty && overlap);

    Buffer buffer(device(), c.dtype, count);
    buffer.copy_from_host(before.data(), before.bytes());
    auto* region = static_cast<std::byte*>(buffer.data()) + kGuardBytes;
    const auto view = [&](const ViewSpec& spec) {
      return TensorView(spec.null ? nullptr : region + spec.offset_bytes, c.dtype, device(),
                        c.shape, spec.strides);
    };
    CommandEncoder encoder(device());
    bool threw = false;
    try {
      l2_norm(encoder, view(c.in), view(c.out), c.options);
      encoder.wait();
    } catch (const Error& error) {
      threw = true;
      EXPECT_EQ(error.code(), ErrorCode::invalid_argument) << error.what();
      EXPECT_EQ(std::string(error.what()).rfind("l2_norm: ", 0), 0u) << error.what();
      EXPECT_TRUE(expect_error) << "refused a valid call: " << error.what();
    }
    if (!threw) {
      EXPECT_FALSE(expect_error) << "accepted an invalid call";
    }
    ++(threw ? tally_.refused : empty ? tally_.empty : tally_.written);

    HostTensor after(c.dtype, std::size_t(count));
    buffer.copy_to_host(after.data(), after.bytes());
    const auto* got = static_cast<const std::byte*>(after.data());
    std::size_t changed = 0;
    for (std::size_t i = 0; i < before.bytes(); ++i) {
      if (!(written[i] && !threw)) changed += got[i] != bytes[i];
    }
    EXPECT_EQ(changed, 0u) << "bytes outside the output view changed (guards: " << kGuardBytes
                           << " bytes each side)";
    if (!threw && !empty) {
      HostTensor gathered_in(c.dtype, std::size_t(rows * dim));
      HostTensor gathered_out(c.dtype, std::size_t(rows * dim));
      const auto element = [&](std::int64_t offset_bytes, std::int64_t row, std::int64_t j) {
        return std::size_t((kGuardBytes + offset_bytes) / element_bytes + row + j);
      };
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t j = 0; j < dim; ++j) {
          const auto at = std::size_t(r * dim + j);
          gathered_in.set(at, before.get(element(c.in.offset_bytes, in_rows[std::size_t(r)], j)));
          gathered_out.set(at, after.get(element(c.out.offset_bytes, out_rows[std::size_t(r)], j)));
        }
      }
      expect_within_budget(gathered_out, reference_l2_norm(gathered_in, rows, dim, c.options), dim,
                           c.options.scale != 1.0f, "view property");
    }
    return true;
  }

  void run_cases(int wanted) {
    Generator generator(20240611);
    int ran = 0, attempts = 0;
    for (; ran < wanted && attempts < 20 * wanted; ++attempts) {
      const Case c = generator.next();
      SCOPED_TRACE("case " + std::to_string(attempts) + ": " + c.describe());
      if (!run_case(c, std::uint64_t(attempts))) continue;
      ++ran;
      if (HasFailure()) return;  // the first failing case says enough
    }
    EXPECT_EQ(ran, wanted) << "too many generated cases were skipped";
    std::cout << "[ view cases ] " << tally_.written << " written, " << tally_.refused
              << " refused, " << tally_.empty << " empty, " << tally_.skipped
              << " skipped (valid but too large for the region)\n";
    // Both outcomes must be well represented for the property to mean anything.
    EXPECT_GT(tally_.written, wanted / 5);
    EXPECT_GT(tally_.refused, wanted / 5);
  }
};

TEST_P(ViewProperty, EveryViewIsRefusedOrWrittenExactly) {
  run_cases(device().is_cpu() ? 3000 : 300);
}

INSTANTIATE_TEST_SUITE_P(Backends, ViewProperty, ::testing::ValuesIn(all_test_devices()),
                         device_param_name);

}  // namespace
}  // namespace l2norm::testing
