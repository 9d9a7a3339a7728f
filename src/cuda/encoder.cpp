// The CUDA CommandEncoder and the l2_norm dispatcher: picks the variant, finds its loaded kernel
// (compiling through KernelRegistry only on first use, never during graph capture) and enqueues
// it on the encoder's stream with no host synchronization.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "core/backend.hpp"
#include "cuda/kernels/l2_norm_args.cuh"
#include "cuda/l2_norm_variants.hpp"
#include "cuda/outer_divisor.hpp"
#include "cuda/runtime.hpp"
#include "l2norm/error.hpp"
#include "l2norm/registry.hpp"

namespace l2norm::detail::cuda {

namespace {

struct LoadedVariant {
  void* kernel = nullptr;
  // Rows kernel on sm_90 and newer: launched with programmatic stream serialization, so its launch
  // and prologue overlap the previous kernel's tail (the kernel waits for that kernel's completion
  // before its first memory access).
  bool programmatic = false;
  // Split kernel: blocks one cooperative launch may have and tiles one block keeps on chip (one in
  // registers, the others in dynamic shared memory).
  int co_resident_blocks = 0;
  int tiles_on_chip = 1;
  std::string name;
};

// Loaded kernels by (device, variant): a dispatch finds its kernel here without building a
// KernelSpec or hashing sources. Entries are never removed, so references stay valid.
class LoadedVariants {
 public:
  const LoadedVariant* find(int device_index, const L2NormVariant& variant) {
    std::lock_guard lock(mutex_);
    const auto found = variants_.find(key(device_index, variant));
    return found == variants_.end() ? nullptr : &found->second;
  }

  const LoadedVariant& find_or_load(int device_index, const L2NormVariant& variant) {
    if (const LoadedVariant* loaded = find(device_index, variant)) return *loaded;
    return load(device_index, variant);
  }

 private:
  const LoadedVariant& load(int device_index, const L2NormVariant& variant) {
    KernelRegistry& registry = KernelRegistry::global();
    static std::once_flag registered;
    std::call_once(registered, [&registry] { register_l2_norm_sources(registry); });
    LoadedVariant loaded;
    loaded.kernel = registry.kernel(Device::cuda(device_index), variant.spec());
    loaded.name = variant.name();
    const DeviceProperties& properties = device_properties(device_index);
    if (variant.kind == KernelKind::rows) {
      loaded.programmatic = properties.arch >= 90;
    } else if (variant.kind == KernelKind::staged) {
      // Rows are sized so that they fit (staged_row_fits); the limit only has to allow them.
      allow_dynamic_shared_memory(
          loaded, device_index,
          properties.shared_memory_per_block_optin - static_shared_bytes(loaded, device_index));
    } else {
      const std::size_t tile_bytes = variant.tile_bytes();
      const std::size_t static_bytes = static_shared_bytes(loaded, device_index);
      const std::size_t free_shared = properties.shared_memory_per_block_optin > static_bytes
                                          ? properties.shared_memory_per_block_optin - static_bytes
                                          : 0;
      // Streamed blocks keep nothing beyond their registers; on chip, a block's per-tile sums
      // have room for L2NORM_MAX_TILES_PER_BLOCK tiles.
      const std::size_t staged_tiles =
          variant.kind == KernelKind::split_on_chip
              ? std::min<std::size_t>(free_shared / tile_bytes, L2NORM_MAX_TILES_PER_BLOCK - 1)
              : 0;
      const std::size_t staged_bytes = staged_tiles * tile_bytes;
      if (staged_tiles > 0) allow_dynamic_shared_memory(loaded, device_index, staged_bytes);
      loaded.tiles_on_chip = 1 + static_cast<int>(staged_tiles);
      int blocks_per_multiprocessor = 0;
      DeviceScope scope(device_index);
      check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_multiprocessor, loaded.kernel,
                                                          variant.block_threads, staged_bytes),
            "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
      loaded.co_resident_blocks = blocks_per_multiprocessor * properties.multiprocessors;
      if (loaded.co_resident_blocks < 1) {
        throw Error(ErrorCode::unsupported, "l2_norm: " + loaded.name + " cannot run on cuda:" +
                                                std::to_string(device_index) +
                                                " (no block fits on a multiprocessor)");
      }
    }
    std::lock_guard lock(mutex_);
    return variants_.try_emplace(key(device_index, variant), std::move(loaded)).first->second;
  }

  static std::size_t static_shared_bytes(const LoadedVariant& loaded, int device_index) {
    DeviceScope scope(device_index);
    cudaFuncAttributes attributes{};
    check(cudaFuncGetAttributes(&attributes, loaded.kernel), "cudaFuncGetAttributes");
    return attributes.sharedSizeBytes;
  }

  static void allow_dynamic_shared_memory(const LoadedVariant& loaded, int device_index,
                                          std::size_t bytes) {
    check(cudaKernelSetAttributeForDevice(static_cast<cudaKernel_t>(loaded.kernel),
                                          cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(bytes), device_index),
          "cudaKernelSetAttributeForDevice(MaxDynamicSharedMemorySize)");
  }

  static std::uint64_t key(int device_index, const L2NormVariant& variant) {
    return variant.packed() * 64 + static_cast<std::uint64_t>(device_index);
  }

  std::mutex mutex_;
  std::unordered_map<std::uint64_t, LoadedVariant> variants_;
};

LoadedVariants& loaded_variants() {
  static LoadedVariants variants;
  return variants;
}

L2NormArgs make_args(const L2NormCall& call) {
  L2NormArgs args{};
  args.input = call.input;
  args.output = call.output;
  args.rows = call.rows;
  args.dim = call.dim;
  args.outer_rank = call.layout.outer_rank;
  for (int i = 0; i < kMaxOuterRank; ++i) {
    const auto index = static_cast<std::size_t>(i);
    args.outer_sizes[i] = call.layout.outer_sizes[index];
    // The kernels divide by the sizes of dims 1 .. outer_rank - 1 only.
    if (i >= 1 && i < args.outer_rank) {
      const OuterDivisor divisor = outer_divisor(static_cast<std::uint64_t>(args.outer_sizes[i]));
      args.outer_multipliers[i] = divisor.multiplier;
      args.outer_shifts[i] = divisor.shift;
    }
    args.input_strides[i] = call.layout.input_strides[index];
    args.output_strides[i] = call.layout.output_strides[index];
  }
  args.eps = call.eps;
  args.scale = call.scale;
  return args;
}

// Slots of the split workspace: one per block that can be co-resident on the device.
std::int64_t split_workspace_slots(int device_index) {
  const DeviceProperties& properties = device_properties(device_index);
  return std::int64_t{properties.multiprocessors} *
         std::max(properties.max_blocks_per_multiprocessor, 1);
}

// Whether a row of `dim` fits on chip: its tiles over the blocks that can be co-resident (and
// have workspace slots), each keeping `tiles_on_chip`. Depends on dim and the device only, so a
// row's mode, and with it its sum order, never depends on the batch.
bool row_fits_on_chip(const LoadedVariant& on_chip, const L2NormVariant& variant, std::int64_t dim,
                      std::int64_t slots) {
  const std::int64_t tiles = row_tiles(variant, dim);
  const std::int64_t blocks = std::min<std::int64_t>(on_chip.co_resident_blocks, slots);
  return tiles <= blocks * on_chip.tiles_on_chip && tiles <= slots;
}

// The kernel a row of `dim` runs, found or loaded through `find_or_load`: `variant` itself, but for
// a split row that does not fit on this device's chip the streamed kernel, to which `variant` is
// then changed. The dispatcher and prewarm both decide here, so they always agree.
template <typename FindOrLoad>
const LoadedVariant& load_for_row(L2NormVariant& variant, std::int64_t dim, std::int64_t slots,
                                  FindOrLoad&& find_or_load) {
  const LoadedVariant* loaded = &find_or_load(variant);
  if (variant.kind == KernelKind::split_on_chip &&
      !row_fits_on_chip(*loaded, variant, dim, slots)) {
    variant = variant.with_kind(KernelKind::split_streamed);
    loaded = &find_or_load(variant);
  }
  return *loaded;
}

// Partial sums and the tag counter of the split kernel, one slot per co-resident block.
class SplitWorkspace {
 public:
  using Word = unsigned long long;

  // Zeroed on `stream`, before any kernel of the encoder runs there.
  SplitWorkspace(int device_index, cudaStream_t stream) {
    capacity_ = static_cast<std::size_t>(split_workspace_slots(device_index));
    // Per slot and parity one word for an f32 partial and two for an f64 one; one tag counter.
    const std::size_t bytes = (capacity_ * 2 * 3 + 1) * sizeof(Word);
    check(cudaMalloc(&memory_, bytes), "cudaMalloc of the l2_norm split workspace");
    // Once, at creation: tags start at 1, so no zeroed word matches one, and every dispatch leaves
    // the counter's count of started blocks at zero.
    const cudaError_t status = cudaMemsetAsync(memory_, 0, bytes, stream);
    if (status != cudaSuccess) {
      cudaFree(memory_);
      throw_cuda_error(status, "cudaMemsetAsync of the l2_norm split workspace");
    }
  }
  ~SplitWorkspace() { cudaFree(memory_); }
  SplitWorkspace(const SplitWorkspace&) = delete;
  SplitWorkspace& operator=(const SplitWorkspace&) = delete;

  std::size_t capacity() const { return capacity_; }
  Word* partial_f32() const { return static_cast<Word*>(memory_); }
  Word* partial_f64() const { return partial_f32() + 2 * capacity_; }
  Word* tag_counter() const { return partial_f64() + 2 * 2 * capacity_; }

 private:
  void* memory_ = nullptr;
  std::size_t capacity_ = 0;
};

class CudaEncoder final : public EncoderImpl {
 public:
  CudaEncoder(int device_index, void* stream)
      : device_index_(device_index),
        limits_{device_properties(device_index).multiprocessors,
                device_properties(device_index).shared_memory_per_block_optin} {
    DeviceScope scope(device_index);
    if (stream == nullptr) {
      check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
      owns_stream_ = true;
    } else {
      stream_ = static_cast<cudaStream_t>(stream);
    }
    try {
      check(cudaEventCreateWithFlags(&batch_end_, cudaEventDisableTiming), "cudaEventCreate");
      workspace_ = std::make_unique<SplitWorkspace>(device_index, stream_);
    } catch (...) {
      release();
      throw;
    }
  }

  ~CudaEncoder() override { release(); }
  CudaEncoder(const CudaEncoder&) = delete;
  CudaEncoder& operator=(const CudaEncoder&) = delete;

  std::string l2_norm(const L2NormCall& call) override {
    DeviceScope scope(device_index_);
    L2NormVariant variant = choose_l2_norm_variant(call.dtype, call.dim, call.vector_bytes,
                                                   call.eps_mode, call.scaled, call.rows, limits_);
    const LoadedVariant& loaded =
        load_for_row(variant, call.dim, static_cast<std::int64_t>(workspace_->capacity()),
                     [this](const L2NormVariant& wanted) -> const LoadedVariant& {
                       return find_or_load(wanted);
                     });
    L2NormArgs args = make_args(call);
    if (variant.kind == KernelKind::split_on_chip || variant.kind == KernelKind::split_streamed) {
      launch_split(variant, loaded, call, args);
    } else {
      // A row group per block (staged: one row). The kernels loop over rows, so the grid may stop
      // short of one block per group.
      const std::int64_t rows_per_block = variant.block_threads / variant.threads_per_row;
      const std::int64_t blocks = std::min<std::int64_t>(
          (call.rows + rows_per_block - 1) / rows_per_block, std::int64_t{1} << 30);
      cudaLaunchAttribute programmatic{};
      programmatic.id = cudaLaunchAttributeProgrammaticStreamSerialization;
      programmatic.val.programmaticStreamSerializationAllowed = 1;
      cudaLaunchConfig_t config{};
      config.gridDim = dim3(static_cast<unsigned int>(blocks));
      config.blockDim = dim3(static_cast<unsigned int>(variant.block_threads));
      config.dynamicSmemBytes =
          variant.kind == KernelKind::staged
              ? static_cast<std::size_t>(row_tiles(variant, call.dim)) * variant.tile_bytes()
              : 0;
      config.stream = stream_;
      config.attrs = &programmatic;
      config.numAttrs = loaded.programmatic ? 1 : 0;
      void* parameters[] = {&args};
      check(cudaLaunchKernelExC(&config, loaded.kernel, parameters), "l2_norm kernel launch");
    }
    return loaded.name;
  }

  // Marks the stream's position and awaits it. Nothing happens at commit(): every dispatch is
  // already on the stream, and an event recorded per commit would add host time to every dispatch
  // of a caller who commits each one.
  void wait() override {
    DeviceScope scope(device_index_);
    check(cudaEventRecord(batch_end_, stream_), "cudaEventRecord");
    check(cudaEventSynchronize(batch_end_), "cudaEventSynchronize");
  }

  void* cuda_stream() const noexcept override { return stream_; }

 private:
  const LoadedVariant& find_or_load(const L2NormVariant& variant) {
    if (const LoadedVariant* loaded = loaded_variants().find(device_index_, variant)) {
      return *loaded;
    }
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    check(cudaStreamIsCapturing(stream_, &capture), "cudaStreamIsCapturing");
    if (capture != cudaStreamCaptureStatusNone) {
      // A compile (or module load) now would break the capture: the registry raises instead.
      CompileGuard no_compiling;
      return loaded_variants().find_or_load(device_index_, variant);
    }
    return loaded_variants().find_or_load(device_index_, variant);
  }

  void launch_split(const L2NormVariant& variant, const LoadedVariant& loaded,
                    const L2NormCall& call, L2NormArgs& args) {
    const std::int64_t tiles = row_tiles(variant, call.dim);
    const auto capacity = static_cast<std::int64_t>(workspace_->capacity());
    const std::int64_t grid_limit = std::min<std::int64_t>(loaded.co_resident_blocks, capacity);
    const auto ceil_div = [](std::int64_t a, std::int64_t b) { return (a + b - 1) / b; };
    const bool on_chip = variant.kind == KernelKind::split_on_chip;
    std::int64_t tiles_per_block = 0;
    if (on_chip) {
      // As few tiles per block as lets every row be on chip at once (most blocks, most bandwidth);
      // when the rows do not fit in one wave, full blocks, so the fewest waves.
      tiles_per_block = loaded.tiles_on_chip;
      for (std::int64_t per_block = 1; per_block < loaded.tiles_on_chip; ++per_block) {
        if (call.rows * ceil_div(tiles, per_block) <= grid_limit) {
          tiles_per_block = per_block;
          break;
        }
      }
    } else {
      tiles_per_block =
          ceil_div(tiles, std::min({tiles, grid_limit, std::int64_t{variant.block_threads}}));
    }
    const std::int64_t blocks_per_row = ceil_div(tiles, tiles_per_block);
    tiles_per_block = ceil_div(tiles, blocks_per_row);
    const std::int64_t partials_per_row = on_chip ? tiles : blocks_per_row;
    const std::int64_t rows_per_wave =
        std::min({std::max<std::int64_t>(grid_limit / blocks_per_row, 1), call.rows,
                  capacity / partials_per_row});

    L2NormSplitArgs split{};
    split.blocks_per_row = blocks_per_row;
    split.tiles_per_block = tiles_per_block;
    split.rows_per_wave = rows_per_wave;
    split.waves = ceil_div(call.rows, rows_per_wave);
    // An input and output larger than L2 together cannot both be resident from an earlier use:
    // the output's lines are new to L2 and evict others (l2_norm_split.cuh, write_early_lines).
    const auto moved_bytes =
        2 * static_cast<std::uint64_t>(call.rows * call.dim) * dtype_size(call.dtype);
    split.early_lines =
        on_chip && moved_bytes > device_properties(device_index_).l2_cache_bytes ? 1 : 0;
    split.partial_f32 = workspace_->partial_f32();
    split.partial_f64 = workspace_->partial_f64();
    split.tag_counter = workspace_->tag_counter();

    cudaLaunchAttribute cooperative{};
    cooperative.id = cudaLaunchAttributeCooperative;
    cooperative.val.cooperative = 1;
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(static_cast<unsigned int>(rows_per_wave * blocks_per_row));
    config.blockDim = dim3(static_cast<unsigned int>(variant.block_threads));
    config.dynamicSmemBytes =
        on_chip ? static_cast<std::size_t>(tiles_per_block - 1) * variant.tile_bytes() : 0;
    config.stream = stream_;
    config.attrs = &cooperative;
    config.numAttrs = 1;
    void* parameters[] = {&args, &split};
    check(cudaLaunchKernelExC(&config, loaded.kernel, parameters), "l2_norm split kernel launch");
  }

  void release() noexcept {
    workspace_.reset();
    if (batch_end_ != nullptr) cudaEventDestroy(batch_end_);
    if (owns_stream_ && stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  int device_index_;
  DeviceLimits limits_;
  cudaStream_t stream_ = nullptr;
  bool owns_stream_ = false;
  cudaEvent_t batch_end_ = nullptr;
  std::unique_ptr<SplitWorkspace> workspace_;
};

}  // namespace

std::unique_ptr<EncoderImpl> make_encoder(int device_index, void* stream) {
  return std::make_unique<CudaEncoder>(device_index, stream);
}

void prewarm_l2_norm(int device_index, DType dtype, std::int64_t dim,
                     const L2NormOptions& options) {
  const DeviceProperties& properties = device_properties(device_index);
  const bool scaled = options.scale != 1.0f;
  for (L2NormVariant variant : l2_norm_variants_for(dtype, dim, options.eps_mode, scaled)) {
    // The streamed kernel only where this device cannot keep the row on chip, the staged one
    // only where one block holds the row (choose_l2_norm_variant's conditions).
    if (variant.kind == KernelKind::split_streamed) continue;
    if (variant.kind == KernelKind::staged &&
        !staged_row_fits(variant, dim, properties.shared_memory_per_block_optin)) {
      continue;
    }
    load_for_row(variant, dim, split_workspace_slots(device_index),
                 [device_index](const L2NormVariant& wanted) -> const LoadedVariant& {
                   return loaded_variants().find_or_load(device_index, wanted);
                 });
  }
}

}  // namespace l2norm::detail::cuda
