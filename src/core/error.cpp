#include "l2norm/error.hpp"

namespace l2norm {

std::string_view error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::invalid_argument:
      return "invalid argument";
    case ErrorCode::unsupported:
      return "unsupported";
    case ErrorCode::out_of_memory:
      return "out of memory";
    case ErrorCode::backend:
      return "backend";
    case ErrorCode::compile:
      return "compile";
    case ErrorCode::io:
      return "io";
  }
  return "unknown";
}

}  // namespace l2norm
