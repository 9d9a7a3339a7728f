#include "l2norm/dtype.hpp"

#include <string>

#include "l2norm/error.hpp"

namespace l2norm {

std::optional<DType> try_parse_dtype(std::string_view text) noexcept {
  if (text == "f32" || text == "float32") return DType::f32;
  if (text == "f16" || text == "float16") return DType::f16;
  if (text == "bf16" || text == "bfloat16") return DType::bf16;
  return std::nullopt;
}

DType parse_dtype(std::string_view text) {
  if (const auto dtype = try_parse_dtype(text)) return *dtype;
  throw Error(ErrorCode::invalid_argument,
              "unknown dtype '" + std::string(text) + "' (expected f32, f16 or bf16)");
}

}  // namespace l2norm
