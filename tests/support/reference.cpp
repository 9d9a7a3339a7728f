#include "support/reference.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

namespace l2norm::testing {

HostTensor::HostTensor(DType dtype, std::size_t count)
    : dtype_(dtype), count_(count), bytes_(count * dtype_size(dtype)) {}

float HostTensor::get(std::size_t i) const {
  if (dtype_ == DType::f32) {
    float value;
    std::memcpy(&value, bytes_.data() + i * 4, 4);
    return value;
  }
  std::uint16_t bits;
  std::memcpy(&bits, bytes_.data() + i * 2, 2);
  return dtype_ == DType::f16 ? f16_bits_to_f32(bits) : bf16_bits_to_f32(bits);
}

void HostTensor::set(std::size_t i, float v) {
  if (dtype_ == DType::f32) {
    std::memcpy(bytes_.data() + i * 4, &v, 4);
    return;
  }
  const std::uint16_t bits = dtype_ == DType::f16 ? f32_to_f16_bits(v) : f32_to_bf16_bits(v);
  std::memcpy(bytes_.data() + i * 2, &bits, 2);
}

void HostTensor::fill_poison() {
  for (std::size_t i = 0; i < count_; ++i) set(i, std::numeric_limits<float>::quiet_NaN());
}

bool HostTensor::bitwise_equal(const HostTensor& other) const {
  return dtype_ == other.dtype_ && bytes_ == other.bytes_;
}

HostTensor random_tensor(DType dtype, std::size_t count, std::uint64_t seed, float range) {
  std::mt19937_64 generator(seed);
  std::uniform_real_distribution<float> distribution(-range, range);
  HostTensor tensor(dtype, count);
  for (std::size_t i = 0; i < count; ++i) tensor.set(i, distribution(generator));
  return tensor;
}

std::vector<double> reference_l2_norm(const HostTensor& x, std::int64_t rows, std::int64_t dim,
                                      const L2NormOptions& options) {
  std::vector<double> result(std::size_t(rows * dim));
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::size_t base = std::size_t(r * dim);
    double sum = 0.0;
    for (std::int64_t j = 0; j < dim; ++j) {
      const double value = x.get(base + std::size_t(j));
      sum += value * value;
    }
    const double denominator = options.eps_mode == EpsMode::add
                                   ? std::sqrt(sum + double(options.eps))
                                   : std::max(std::sqrt(sum), double(options.eps));
    for (std::int64_t j = 0; j < dim; ++j) {
      result[base + std::size_t(j)] =
          double(x.get(base + std::size_t(j))) / denominator * double(options.scale);
    }
  }
  return result;
}

double ulp_at(double value, DType dtype) {
  const int mantissa_bits = dtype == DType::f32 ? 23 : dtype == DType::f16 ? 10 : 7;
  const int min_exponent = dtype == DType::f32 ? -126 : dtype == DType::f16 ? -14 : -126;
  const double magnitude = std::fabs(value);
  int exponent = magnitude > 0.0 ? std::ilogb(magnitude) : min_exponent;
  exponent = std::max(exponent, min_exponent);
  return std::ldexp(1.0, exponent - mantissa_bits);
}

double budget_ulps(DType dtype, std::int64_t dim, bool scaled) {
  if (dtype != DType::f32) return scaled ? 2.0 : 1.0;
  const double log2_dim = std::ceil(std::log2(double(std::max<std::int64_t>(dim, 2))));
  return (log2_dim + 2.0) / 2.0 + 2.5 + (scaled ? 1.0 : 0.0);
}

double expect_within_budget(const HostTensor& got, const std::vector<double>& expected,
                            std::int64_t dim, bool scaled, const char* what) {
  const double budget = budget_ulps(got.dtype(), dim, scaled);
  double worst = 0.0;
  std::size_t worst_index = 0;
  std::size_t failures = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const double value = got.get(i);
    const double reference = expected[i];
    if (std::isnan(reference) || std::isnan(value)) {
      if (std::isnan(reference) != std::isnan(value)) {
        if (failures++ == 0) {
          ADD_FAILURE() << what << ": element " << i << " is " << value << ", expected "
                        << reference;
        }
      }
      continue;
    }
    const double error = std::fabs(value - reference) / ulp_at(reference, got.dtype());
    if (error > worst) {
      worst = error;
      worst_index = i;
    }
  }
  EXPECT_EQ(failures, 0u) << what << ": NaN mismatches";
  EXPECT_LE(worst, budget) << what << ": worst error " << worst << " ulp at element " << worst_index
                           << " (row " << worst_index / std::size_t(dim) << "): got "
                           << got.get(worst_index) << ", expected " << expected[worst_index]
                           << ", budget " << budget << " ulp of " << dtype_name(got.dtype());
  return worst;
}

namespace {

// run_l2_norm's work, into an output of `output_dtype`; `in_place` writes the output over the
// input's buffer.
HostTensor run_on_device(const Device& device, const HostTensor& input, DType output_dtype,
                         std::int64_t rows, std::int64_t dim, const L2NormOptions& options,
                         bool in_place, std::string* variant) {
  HostTensor output(output_dtype, input.count());
  output.fill_poison();
  const auto count = std::int64_t(input.count());
  Buffer in(device, input.dtype(), count);
  Buffer out(device, output_dtype, in_place ? 0 : count);
  in.copy_from_host(input.data(), input.bytes());
  if (!in_place) out.copy_from_host(output.data(), output.bytes());
  Buffer& target = in_place ? in : out;
  CommandEncoder encoder(device);
  l2_norm(encoder, in, target, rows, dim, options);
  if (variant != nullptr) {
    // Exactly one dispatch, or a name no variant check accepts.
    *variant = encoder.recorded().size() == 1
                   ? encoder.recorded()[0].variant
                   : std::to_string(encoder.recorded().size()) + " dispatches recorded";
  }
  encoder.wait();
  target.copy_to_host(output.data(), output.bytes());
  return output;
}

}  // namespace

HostTensor run_l2_norm(const Device& device, const HostTensor& input, std::int64_t rows,
                       std::int64_t dim, const L2NormOptions& options, std::string* variant) {
  return run_on_device(device, input, input.dtype(), rows, dim, options, false, variant);
}

HostTensor run_l2_norm_into(const Device& device, const HostTensor& input, DType output_dtype,
                            std::int64_t rows, std::int64_t dim, const L2NormOptions& options,
                            std::string* variant) {
  return run_on_device(device, input, output_dtype, rows, dim, options, false, variant);
}

HostTensor run_l2_norm_in_place(const Device& device, const HostTensor& input, std::int64_t rows,
                                std::int64_t dim, const L2NormOptions& options) {
  return run_on_device(device, input, input.dtype(), rows, dim, options, true, nullptr);
}

GatheredRows gather_rows(const HostTensor& input_storage, const StorageView& in,
                         const HostTensor& output_storage, const StorageView& out,
                         const std::vector<std::int64_t>& shape) {
  const std::int64_t dim = shape.back();
  std::int64_t rows = 1;
  for (std::size_t d = 0; d + 1 < shape.size(); ++d) rows *= shape[d];
  GatheredRows gathered{HostTensor(input_storage.dtype(), std::size_t(rows * dim)),
                        HostTensor(output_storage.dtype(), std::size_t(rows * dim)),
                        std::vector<bool>(output_storage.count(), false)};
  for (std::int64_t r = 0; r < rows; ++r) {
    std::int64_t rest = r, in_row = in.offset, out_row = out.offset;
    for (int d = int(shape.size()) - 2; d >= 0; --d) {
      const std::int64_t i = rest % shape[std::size_t(d)];
      rest /= shape[std::size_t(d)];
      in_row += i * in.strides[std::size_t(d)];
      out_row += i * out.strides[std::size_t(d)];
    }
    for (std::int64_t j = 0; j < dim; ++j) {
      gathered.input.set(std::size_t(r * dim + j), input_storage.get(std::size_t(in_row + j)));
      gathered.output.set(std::size_t(r * dim + j), output_storage.get(std::size_t(out_row + j)));
      gathered.written[std::size_t(out_row + j)] = true;
    }
  }
  return gathered;
}

std::size_t count_clobbered(const HostTensor& before, const HostTensor& after,
                            const std::vector<bool>& written) {
  std::size_t clobbered = 0;
  for (std::size_t i = 0; i < written.size(); ++i) {
    if (written[i]) continue;
    clobbered +=
        std::bit_cast<std::uint32_t>(before.get(i)) != std::bit_cast<std::uint32_t>(after.get(i));
  }
  return clobbered;
}

}  // namespace l2norm::testing
