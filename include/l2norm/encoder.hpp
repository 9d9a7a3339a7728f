// A CommandEncoder records the dispatches of one device's work, as in the seed's Metal encoder.
// On the CPU each dispatch runs as it is recorded; on CUDA it is enqueued on the encoder's stream
// (its own, or one the caller passes in) and commit()/wait() delimit and await a batch.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "l2norm/device.hpp"
#include "l2norm/dtype.hpp"

namespace l2norm {

namespace detail {
class EncoderImpl;
}

struct DispatchRecord {
  std::string op;       // "l2_norm"
  std::string variant;  // the kernel the backend picked, e.g. "l2_norm_rows<f32,vec4,aligned>"
  DType dtype;
  std::int64_t rows;
  std::int64_t dim;
};

class CommandEncoder {
 public:
  // Uses its own stream on CUDA. Throws Error(unsupported) if the device is not usable here.
  explicit CommandEncoder(Device device);
  // CUDA only: records onto the caller's cudaStream_t (passed as void* so this header needs no
  // CUDA headers). The stream is not owned and must outlive the encoder.
  CommandEncoder(Device device, void* cuda_stream);
  ~CommandEncoder();
  CommandEncoder(CommandEncoder&&) noexcept;
  CommandEncoder& operator=(CommandEncoder&&) noexcept;

  Device device() const noexcept { return device_; }
  // The cudaStream_t the encoder records onto (nullptr on the CPU).
  void* cuda_stream() const noexcept;

  // Ends the current batch. Its dispatches are already on the device: CUDA enqueues each one on
  // the stream as it is recorded, and the CPU has run it.
  // Returns how many dispatches the batch held.
  std::size_t commit();
  // Commits any open batch and blocks until every committed dispatch has finished.
  void wait();

  // Dispatches recorded since the last commit(), oldest first.
  std::span<const DispatchRecord> recorded() const noexcept { return recorded_; }

  // Internal: the op layer hands validated work to the backend through this.
  detail::EncoderImpl& impl() noexcept { return *impl_; }
  void record(DispatchRecord record) { recorded_.push_back(std::move(record)); }

 private:
  Device device_;
  std::unique_ptr<detail::EncoderImpl> impl_;
  std::vector<DispatchRecord> recorded_;
};

}  // namespace l2norm
