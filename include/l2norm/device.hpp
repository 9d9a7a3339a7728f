// Where data lives and work runs: the CPU, or CUDA device N.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace l2norm {

class Device {
 public:
  enum class Kind { cpu, cuda };

  static Device cpu() noexcept { return Device(Kind::cpu, 0); }
  static Device cuda(int index = 0) noexcept { return Device(Kind::cuda, index); }
  // "cpu", "cuda", "cuda:N". Throws Error(invalid_argument) on anything else.
  static Device parse(std::string_view text);

  Kind kind() const noexcept { return kind_; }
  int index() const noexcept { return index_; }
  bool is_cpu() const noexcept { return kind_ == Kind::cpu; }
  bool is_cuda() const noexcept { return kind_ == Kind::cuda; }
  std::string name() const;  // "cpu" or "cuda:N"

  friend bool operator==(const Device&, const Device&) = default;

 private:
  Device(Kind kind, int index) noexcept : kind_(kind), index_(index) {}
  Kind kind_;
  int index_;
};

struct DeviceInfo {
  Device device;
  std::string description;  // e.g. "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.1 GiB"
};

// True when this build has the CUDA backend and at least one usable CUDA device is present.
bool cuda_available() noexcept;
// Why the CUDA backend cannot be used here ("built without CUDA", "no CUDA driver: ..."), or empty.
std::string cuda_unavailable_reason();
int cuda_device_count() noexcept;
// The CPU and every usable CUDA device.
std::vector<DeviceInfo> list_devices();
// Throws Error(unsupported) naming the device and the reason when `device` cannot run work here.
void require_device(const Device& device);

// Worker threads the CPU backend uses (default: hardware concurrency, or $L2NORM_NUM_THREADS).
// Results are bitwise identical whatever the count. n < 1 restores the default.
void set_cpu_thread_count(int n);
int cpu_thread_count() noexcept;

}  // namespace l2norm
