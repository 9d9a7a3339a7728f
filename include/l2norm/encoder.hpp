// A CommandEncoder records the dispatches of one device's work. On the CPU each dispatch runs as it
// is recorded; on CUDA it is enqueued on the encoder's stream (its own, or one the caller passes
// in) and commit()/wait() delimit and await a batch.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "l2norm/device.hpp"
#include "l2norm/dtype.hpp"

namespace l2norm {

namespace detail {
struct EncoderAccess;
}

struct DispatchRecord {
  std::string op;       // e.g. "l2_norm"
  std::string variant;  // the kernel the backend picked, e.g. "l2_norm_rows<f32,v16,8x2,add>"
  DType dtype;
  std::int64_t rows;
  std::int64_t dim;
};

class CommandEncoder {
 public:
  // Uses its own stream on CUDA. Throws Error(unsupported) if the device is not usable here.
  explicit CommandEncoder(Device device);
  // CUDA only: records onto the caller's cudaStream_t (passed as void* so this header needs no
  // CUDA headers). The stream is not owned and must outlive the encoder. An encoder allocates and
  // zeroes its workspaces when it is made: while `cuda_stream` is being captured into a CUDA graph
  // this throws Error(unsupported) instead and leaves the capture intact (make encoders before).
  CommandEncoder(Device device, void* cuda_stream);
  ~CommandEncoder();
  CommandEncoder(CommandEncoder&&) noexcept;
  CommandEncoder& operator=(CommandEncoder&&) noexcept;

  // A moved-from encoder has no device queue: every call below but the destructor and assignment
  // then throws Error(invalid_argument).
  Device device() const;
  // The cudaStream_t the encoder records onto (nullptr on the CPU).
  void* cuda_stream() const;

  // CUDA, sm_90 and newer: kernels that support it are launched with programmatic stream
  // serialization, so their launch overlaps the tail of the previous kernel on the stream (they
  // still wait for its completion before touching memory). On by default; off gives plain
  // launches. Results are the same bits either way. No effect on the CPU.
  void set_launch_overlap(bool enabled);
  bool launch_overlap() const;

  // Ends the current batch. Its dispatches are already on the device: CUDA enqueues each one on
  // the stream as it is recorded, and the CPU has run it.
  // Returns how many dispatches the batch held.
  std::size_t commit();
  // Commits any open batch and blocks until every committed dispatch has finished.
  void wait();

  // Dispatches recorded since the last commit(), oldest first.
  std::span<const DispatchRecord> recorded() const;

 private:
  friend struct detail::EncoderAccess;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace l2norm
