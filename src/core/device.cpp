#include "l2norm/device.hpp"

#include <charconv>

#include "core/backend.hpp"
#include "l2norm/error.hpp"

namespace l2norm {

Device Device::parse(std::string_view text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  constexpr std::string_view prefix = "cuda:";
  if (text.starts_with(prefix)) {
    const std::string_view digits = text.substr(prefix.size());
    int index = -1;
    const auto [end, status] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (status == std::errc() && end == digits.data() + digits.size() && !digits.empty() &&
        index >= 0) {
      return cuda(index);
    }
  }
  throw Error(ErrorCode::invalid_argument,
              "unknown device '" + std::string(text) + "' (expected cpu, cuda or cuda:N)");
}

std::string Device::name() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index_);
}

bool cuda_available() noexcept {
  return detail::cuda::available();
}

std::string cuda_unavailable_reason() {
  return detail::cuda::unavailable_reason();
}

int cuda_device_count() noexcept {
  return detail::cuda::device_count();
}

std::vector<DeviceInfo> list_devices() {
  std::vector<DeviceInfo> devices{{Device::cpu(), std::to_string(cpu_thread_count()) + " threads"}};
  if (cuda_available()) {
    for (auto& info : detail::cuda::devices()) devices.push_back(std::move(info));
  }
  return devices;
}

void require_device(const Device& device) {
  if (device.is_cpu()) return;
  if (!cuda_available()) {
    throw Error(ErrorCode::unsupported,
                device.name() + " is not usable: " + cuda_unavailable_reason());
  }
  const int count = cuda_device_count();
  if (device.index() >= count) {
    throw Error(ErrorCode::unsupported, device.name() + " does not exist: " +
                                            std::to_string(count) + " CUDA device(s) present");
  }
}

}  // namespace l2norm
