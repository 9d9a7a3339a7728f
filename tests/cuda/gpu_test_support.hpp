// Helpers shared by the GPU tests of the CUDA backend.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "l2norm/l2norm.hpp"

// Skips (reported as SKIPPED, not passed) when no usable CUDA device is present.
#define L2NORM_REQUIRE_GPU()                                                              \
  do {                                                                                    \
    if (!::l2norm::cuda_available()) {                                                    \
      GTEST_SKIP() << "no usable CUDA GPU here: " << ::l2norm::cuda_unavailable_reason(); \
    }                                                                                     \
  } while (false)

#define L2NORM_CUDA_OK(call) ASSERT_EQ((call), cudaSuccess) << #call

namespace l2norm::testing {

// A fresh, empty folder under the system temp folder, removed when the object dies.
class TempDir {
 public:
  explicit TempDir(const std::string& stem)
      : path_(std::filesystem::temp_directory_path() /
              (stem + "-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
               "-" + std::to_string(reinterpret_cast<std::uintptr_t>(this)))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace l2norm::testing
