#include "array_format.hpp"

#include <cmath>
#include <cstring>
#include <limits>

namespace l2norm::io {

namespace {

// Doubles at or above this magnitude round to infinity in f32 (FLT_MAX plus half an ulp).
constexpr double kF32OverflowThreshold = 0x1.ffffffp127;

float f64_to_f32(double value) noexcept {
  if (std::isnan(value)) return std::numeric_limits<float>::quiet_NaN();
  if (std::fabs(value) >= kF32OverflowThreshold) {
    return value > 0 ? std::numeric_limits<float>::infinity()
                     : -std::numeric_limits<float>::infinity();
  }
  return static_cast<float>(value);
}

float load_as_f32(ElementType type, const std::byte* source, std::size_t index) noexcept {
  switch (type) {
    case ElementType::f32: {
      float value;
      std::memcpy(&value, source + index * 4, 4);
      return value;
    }
    case ElementType::f16:
    case ElementType::bf16: {
      std::uint16_t bits;
      std::memcpy(&bits, source + index * 2, 2);
      return type == ElementType::f16 ? f16_bits_to_f32(bits) : bf16_bits_to_f32(bits);
    }
    case ElementType::f64: {
      double value;
      std::memcpy(&value, source + index * 8, 8);
      return f64_to_f32(value);
    }
  }
  return 0.0f;
}

void store_from_f32(ElementType type, float value, std::byte* destination,
                    std::size_t index) noexcept {
  switch (type) {
    case ElementType::f32:
      std::memcpy(destination + index * 4, &value, 4);
      return;
    case ElementType::f16:
    case ElementType::bf16: {
      const std::uint16_t bits =
          type == ElementType::f16 ? f32_to_f16_bits(value) : f32_to_bf16_bits(value);
      std::memcpy(destination + index * 2, &bits, 2);
      return;
    }
    case ElementType::f64: {
      const double wide = value;
      std::memcpy(destination + index * 8, &wide, 8);
      return;
    }
  }
}

}  // namespace

std::size_t element_size(ElementType type) noexcept {
  switch (type) {
    case ElementType::f32:
      return 4;
    case ElementType::f16:
      return 2;
    case ElementType::bf16:
      return 2;
    case ElementType::f64:
      return 8;
  }
  return 0;
}

std::string_view element_name(ElementType type) noexcept {
  switch (type) {
    case ElementType::f32:
      return "f32";
    case ElementType::f16:
      return "f16";
    case ElementType::bf16:
      return "bf16";
    case ElementType::f64:
      return "f64";
  }
  return "?";
}

ElementType element_type_of(DType dtype) noexcept {
  switch (dtype) {
    case DType::f32:
      return ElementType::f32;
    case DType::f16:
      return ElementType::f16;
    case DType::bf16:
      return ElementType::bf16;
  }
  return ElementType::f32;
}

DType compute_dtype_of(ElementType type) noexcept {
  switch (type) {
    case ElementType::f16:
      return DType::f16;
    case ElementType::bf16:
      return DType::bf16;
    case ElementType::f32:
    case ElementType::f64:
      return DType::f32;
  }
  return DType::f32;
}

std::string_view format_name(FileFormat format) noexcept {
  return format == FileFormat::npy ? "npy" : "fvecs";
}

std::optional<FileFormat> format_from_extension(std::string_view path) noexcept {
  const auto ends_with_ignoring_case = [path](std::string_view suffix) {
    if (path.size() < suffix.size()) return false;
    const std::string_view tail = path.substr(path.size() - suffix.size());
    for (std::size_t i = 0; i < suffix.size(); ++i) {
      char c = tail[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != suffix[i]) return false;
    }
    return true;
  };
  if (ends_with_ignoring_case(".npy")) return FileFormat::npy;
  if (ends_with_ignoring_case(".fvecs")) return FileFormat::fvecs;
  return std::nullopt;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  if (shape.size() == 1) text += ",";
  return text + ")";
}

void convert_elements(ElementType from, const void* source, ElementType to, void* destination,
                      std::size_t count) noexcept {
  const auto* in = static_cast<const std::byte*>(source);
  auto* out = static_cast<std::byte*>(destination);
  if (from == to) {
    std::memmove(out, in, count * element_size(from));
    return;
  }
  if (from == ElementType::f32 && to != ElementType::f64) {
    // The common narrowing (f32 results to f16/bf16 outputs) in a loop the compiler can vectorize.
    std::uint16_t* out_bits = reinterpret_cast<std::uint16_t*>(out);
    const float* in_values = reinterpret_cast<const float*>(in);
    if (to == ElementType::f16) {
      for (std::size_t i = 0; i < count; ++i) out_bits[i] = f32_to_f16_bits(in_values[i]);
    } else {
      for (std::size_t i = 0; i < count; ++i) out_bits[i] = f32_to_bf16_bits(in_values[i]);
    }
    return;
  }
  for (std::size_t i = 0; i < count; ++i) store_from_f32(to, load_as_f32(from, in, i), out, i);
}

}  // namespace l2norm::io
