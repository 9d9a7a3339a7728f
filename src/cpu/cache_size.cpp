#include "cpu/cache_size.hpp"

#include <algorithm>
#include <cstdio>
#include <string>

namespace l2norm::detail::cpu {
namespace {

// Size of the last-level cache. sysconf's value comes from CPUID, which virtual machines often
// misreport, so the kernel's own view (sysfs) is preferred. Read with C stdio: the library's text
// handling never goes through C++ streams, whose parsing follows the global C++ locale.
std::int64_t last_level_cache_bytes() {
  std::int64_t largest = 0;
  for (int index = 0; index < 8; ++index) {
    const std::string path =
        "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size";
    std::FILE* file = std::fopen(path.c_str(), "r");
    if (file == nullptr) continue;
    long long kibibytes = 0;
    char unit = 0;
    const int fields = std::fscanf(file, "%lld%c", &kibibytes, &unit);
    std::fclose(file);
    if (fields != 2 || unit != 'K' || kibibytes <= 0) continue;
    largest = std::max(largest, static_cast<std::int64_t>(kibibytes) << 10);
  }
  constexpr std::int64_t kAssumedCacheBytes = std::int64_t{32} << 20;
  return largest > 0 ? largest : kAssumedCacheBytes;
}

}  // namespace

std::int64_t streaming_threshold_bytes() {
  static const std::int64_t threshold = last_level_cache_bytes();
  return threshold;
}

}  // namespace l2norm::detail::cpu
