#include "normalize.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>

#include "atomic_file.hpp"
#include "byte_source.hpp"
#include "host_buffer.hpp"
#include "progress.hpp"
#include "row_io.hpp"

namespace l2norm::cli {

namespace {

using io::ElementType;

// How often blocked stages look at the interrupt flag (a signal handler cannot notify a
// condition variable).
constexpr auto kStopPollInterval = std::chrono::milliseconds(50);

// Three chunks in flight: one being read, one being normalized, one being written.
constexpr std::size_t kSlotCount = 3;

struct Plan {
  io::ArrayInfo input;
  io::FileFormat output_format = io::FileFormat::npy;
  ElementType output_type = ElementType::f32;
  ElementType compute_type = ElementType::f32;
  io::RowLayout output_layout;
  std::int64_t rows_per_chunk = 1;
  std::int64_t chunk_count = 0;
};

void refuse_same_file(const io::FileSource& input, const std::string& output_path) {
  struct stat input_info {};
  struct stat output_info {};
  if (::fstat(input.descriptor(), &input_info) != 0) return;
  if (::stat(output_path.c_str(), &output_info) != 0) return;
  if (input_info.st_dev == output_info.st_dev && input_info.st_ino == output_info.st_ino) {
    throw Error(ErrorCode::invalid_argument,
                output_path +
                    ": the output is the input file; write to another path (the input "
                    "is never modified)");
  }
}

Plan make_plan(const NormalizeOptions& options, const io::FileSource& input) {
  Plan plan;
  plan.input = io::read_array_info(input, options.in_dtype);
  const std::optional<io::FileFormat> output_format =
      io::format_from_extension(options.output_path);
  if (!output_format) {
    throw Error(ErrorCode::invalid_argument,
                options.output_path + ": the output name must end in .npy or .fvecs");
  }
  plan.output_format = *output_format;
  const ElementType input_type = plan.input.layout.element;
  if (options.out_dtype) {
    plan.output_type = io::element_type_of(*options.out_dtype);
  } else if (plan.output_format == io::FileFormat::npy && input_type != ElementType::f64) {
    plan.output_type = input_type;
  } else {
    plan.output_type = ElementType::f32;
  }
  if (plan.output_format == io::FileFormat::fvecs) {
    if (plan.output_type != ElementType::f32) {
      throw Error(ErrorCode::invalid_argument, options.output_path +
                                                   ": .fvecs output holds f32 only, not " +
                                                   std::string(io::element_name(plan.output_type)));
    }
    if (plan.input.layout.dim > std::numeric_limits<std::int32_t>::max()) {
      throw Error(ErrorCode::invalid_argument,
                  options.output_path + ": dim " + std::to_string(plan.input.layout.dim) +
                      " does not fit the 32-bit dimension field of .fvecs records");
    }
  }
  // Same type in and out: compute in it. Otherwise widen exactly to f32, compute, round once.
  plan.compute_type = plan.output_type == input_type ? input_type : ElementType::f32;

  const io::RowLayout& in = plan.input.layout;
  plan.output_layout = io::output_row_layout(plan.output_format, plan.output_type, in.rows, in.dim);
  const std::uint64_t row_bytes = std::max<std::uint64_t>(in.row_stride, 1);
  const std::uint64_t chunk_bytes = options.chunk_bytes.value_or(default_chunk_bytes(
      row_bytes * static_cast<std::uint64_t>(std::max<std::int64_t>(in.rows, 0))));
  plan.rows_per_chunk = static_cast<std::int64_t>(std::clamp<std::uint64_t>(
      chunk_bytes / row_bytes, 1, static_cast<std::uint64_t>(std::max<std::int64_t>(in.rows, 1))));
  plan.chunk_count = (in.rows + plan.rows_per_chunk - 1) / plan.rows_per_chunk;
  return plan;
}

// Runs l2_norm in place on packed host rows, through device memory when the device is a GPU.
class ChunkNormalizer {
 public:
  ChunkNormalizer(Device device, DType dtype, std::int64_t dim, std::int64_t max_rows,
                  const L2NormOptions& op)
      : device_(device), dtype_(dtype), dim_(dim), op_(op), encoder_(device) {
    if (device.is_cuda()) device_rows_.emplace(device, dtype, max_rows * dim);
  }

  void run(std::byte* values, std::int64_t rows) {
    const std::size_t bytes = static_cast<std::size_t>(rows * dim_) * dtype_size(dtype_);
    if (!device_rows_) {
      const TensorView view(values, dtype_, device_, {rows, dim_});
      l2_norm(encoder_, view, view, op_);
      encoder_.wait();
      return;
    }
    device_rows_->copy_from_host(values, bytes);
    const TensorView view(device_rows_->data(), dtype_, device_, {rows, dim_});
    l2_norm(encoder_, view, view, op_);
    encoder_.wait();
    device_rows_->copy_to_host(values, bytes);
  }

 private:
  Device device_;
  DType dtype_;
  std::int64_t dim_;
  L2NormOptions op_;
  CommandEncoder encoder_;
  std::optional<Buffer> device_rows_;
};

struct ChunkSlot {
  enum class State { free, loaded, normalized };
  State state = State::free;
  std::int64_t chunk = -1;
  std::int64_t first_row = 0;
  std::int64_t row_count = 0;
  io::HostBuffer file_rows;    // as read from the input; also the values when no conversion
  io::HostBuffer values;       // compute-type values, when the input type differs
  io::HostBuffer output_rows;  // output layout, when it differs from the packed values
};

class Pipeline {
 public:
  Pipeline(const Plan& plan, const io::FileSource& input, io::AtomicOutputFile& output,
           ChunkNormalizer& normalizer, ProgressBar& progress,
           const std::atomic<bool>& stop_requested)
      : plan_(plan),
        reader_(input, plan.input.layout),
        output_(output),
        normalizer_(normalizer),
        progress_(progress),
        stop_requested_(stop_requested) {
    convert_input_ = plan.input.layout.element != plan.compute_type;
    pack_output_ =
        plan.output_layout.row_prefix != 0 || plan.output_layout.element != plan.compute_type;
  }

  // Returns normally only when every chunk was written; rethrows the first stage failure, or
  // throws Interrupted.
  void run() {
    std::thread reader([this] { guarded([this] { read_chunks(); }); });
    std::thread writer([this] { guarded([this] { write_chunks(); }); });
    guarded([this] { normalize_chunks(); });
    reader.join();
    writer.join();
    if (failure_) std::rethrow_exception(failure_);
    if (stop_requested_.load()) throw Interrupted();
  }

 private:
  template <typename Stage>
  void guarded(Stage stage) noexcept {
    try {
      stage();
    } catch (...) {
      const std::lock_guard lock(mutex_);
      if (!failure_) failure_ = std::current_exception();
      changed_.notify_all();
    }
  }

  // Waits until slot `chunk % kSlotCount` is in `state` for `chunk`; false if the run is over.
  bool wait_for_slot(std::int64_t chunk, ChunkSlot::State state) {
    ChunkSlot& slot = slot_of(chunk);
    std::unique_lock lock(mutex_);
    while (true) {
      if (failure_ || stop_requested_.load()) return false;
      const bool ready = state == ChunkSlot::State::free
                             ? slot.state == state
                             : slot.state == state && slot.chunk == chunk;
      if (ready) return true;
      changed_.wait_for(lock, kStopPollInterval);
    }
  }

  void hand_over(std::int64_t chunk, ChunkSlot::State state) {
    const std::lock_guard lock(mutex_);
    slot_of(chunk).state = state;
    slot_of(chunk).chunk = chunk;
    changed_.notify_all();
  }

  ChunkSlot& slot_of(std::int64_t chunk) {
    return slots_[static_cast<std::size_t>(chunk) % kSlotCount];
  }

  std::byte* packed_values(ChunkSlot& slot) const {
    return convert_input_ ? slot.values.data() : slot.file_rows.data();
  }

  // Buffers are sized on a slot's first use, so a file of one or two chunks never pays for three.
  void reserve_buffers(ChunkSlot& slot) const {
    const auto rows = static_cast<std::uint64_t>(plan_.rows_per_chunk);
    slot.file_rows.reserve(reader_.buffer_bytes(plan_.rows_per_chunk));
    if (convert_input_) {
      slot.values.reserve(rows * static_cast<std::uint64_t>(plan_.input.layout.dim) *
                          io::element_size(plan_.compute_type));
    }
    if (pack_output_) slot.output_rows.reserve(rows * plan_.output_layout.row_stride);
  }

  void read_chunks() {
    const io::RowLayout& in = plan_.input.layout;
    for (std::int64_t chunk = 0; chunk < plan_.chunk_count; ++chunk) {
      if (!wait_for_slot(chunk, ChunkSlot::State::free)) return;
      ChunkSlot& slot = slot_of(chunk);
      reserve_buffers(slot);
      slot.first_row = chunk * plan_.rows_per_chunk;
      slot.row_count = std::min(plan_.rows_per_chunk, in.rows - slot.first_row);
      reader_.read_rows(slot.first_row, slot.row_count,
                        {slot.file_rows.data(), slot.file_rows.capacity()});
      if (convert_input_) {
        io::convert_elements(in.element, slot.file_rows.data(), plan_.compute_type,
                             slot.values.data(), static_cast<std::size_t>(slot.row_count * in.dim));
      }
      hand_over(chunk, ChunkSlot::State::loaded);
    }
  }

  void normalize_chunks() {
    for (std::int64_t chunk = 0; chunk < plan_.chunk_count; ++chunk) {
      if (!wait_for_slot(chunk, ChunkSlot::State::loaded)) return;
      ChunkSlot& slot = slot_of(chunk);
      normalizer_.run(packed_values(slot), slot.row_count);
      hand_over(chunk, ChunkSlot::State::normalized);
    }
  }

  void write_chunks() {
    for (std::int64_t chunk = 0; chunk < plan_.chunk_count; ++chunk) {
      if (!wait_for_slot(chunk, ChunkSlot::State::normalized)) return;
      ChunkSlot& slot = slot_of(chunk);
      const std::byte* bytes = packed_values(slot);
      const std::uint64_t size =
          static_cast<std::uint64_t>(slot.row_count) * plan_.output_layout.row_stride;
      if (pack_output_) {
        io::pack_rows(plan_.output_layout, plan_.compute_type, bytes, slot.row_count,
                      slot.output_rows.data());
        bytes = slot.output_rows.data();
      }
      output_.write({bytes, size});
      progress_.update(slot.first_row + slot.row_count);
      hand_over(chunk, ChunkSlot::State::free);
    }
  }

  const Plan& plan_;
  io::RowReader reader_;
  io::AtomicOutputFile& output_;
  ChunkNormalizer& normalizer_;
  ProgressBar& progress_;
  const std::atomic<bool>& stop_requested_;
  bool convert_input_ = false;
  bool pack_output_ = false;
  std::array<ChunkSlot, kSlotCount> slots_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::exception_ptr failure_;
};

}  // namespace

Device resolve_device(const std::string& text) {
  if (text == "auto") return cuda_available() ? Device::cuda(0) : Device::cpu();
  return Device::parse(text);
}

NormalizeSummary normalize_file(const NormalizeOptions& options,
                                const std::atomic<bool>& stop_requested) {
  const auto start = std::chrono::steady_clock::now();
  const io::FileSource input(options.input_path);
  const Plan plan = make_plan(options, input);
  refuse_same_file(input, options.output_path);
  const Device device = resolve_device(options.device);
  require_device(device);

  const io::RowLayout& in = plan.input.layout;
  const DType compute_dtype = io::compute_dtype_of(plan.compute_type);
  std::optional<ChunkNormalizer> normalizer;
  if (in.rows > 0) {
    normalizer.emplace(device, compute_dtype, in.dim, plan.rows_per_chunk, options.op);
  }

  io::AtomicOutputFile output(options.output_path);
  const std::vector<std::int64_t> output_shape = plan.output_format == io::FileFormat::npy
                                                     ? plan.input.shape
                                                     : std::vector<std::int64_t>{in.rows, in.dim};
  output.write(io::output_header(plan.output_format, plan.output_type, output_shape));
  if (in.rows > 0) {
    ProgressBar progress(options.show_progress, in.rows,
                         in.row_value_bytes() + plan.output_layout.row_value_bytes());
    Pipeline(plan, input, output, *normalizer, progress, stop_requested).run();
    progress.finish();
  }
  if (stop_requested.load()) throw Interrupted();
  output.commit();

  NormalizeSummary summary;
  summary.rows = in.rows;
  summary.dim = in.dim;
  summary.input_type = in.element;
  summary.output_type = plan.output_type;
  summary.compute_dtype = compute_dtype;
  summary.device = device;
  summary.chunks = plan.chunk_count;
  summary.bytes_read = static_cast<std::uint64_t>(in.rows) * in.row_stride;
  summary.bytes_written = output.bytes_written();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace l2norm::cli
