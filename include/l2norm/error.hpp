// One exception type for the whole C++ API. Every failure the library can detect is reported as an
// l2norm::Error carrying a code; the library never aborts the process.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace l2norm {

enum class ErrorCode {
  invalid_argument,  // the caller passed something the op cannot accept
  unsupported,       // valid request, but this build or device cannot run it
  out_of_memory,     // host or device allocation failed
  backend,           // a CUDA runtime or driver call failed
  compile,           // NVRTC rejected a kernel source (message carries the log and options)
  io,                // file reading or writing failed (tools only)
};

std::string_view error_code_name(ErrorCode code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace l2norm
