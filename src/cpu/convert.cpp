#include "cpu/convert.hpp"

#include <algorithm>
#include <cstdint>

#include "cpu/chunk.hpp"

namespace l2norm::detail::cpu {
namespace {

// A 16-bit chunk's vectors hold its even and its odd elements, so the plain f32 buffers are
// interleaved here.
template <DType T>
void widen_all(const void* source, float* destination, std::size_t count) {
  constexpr auto kChunk = std::size_t(kChunkElements<T>);
  const auto* elements = static_cast<const ElementOf<T>*>(source);
  for (std::size_t first = 0; first < count; first += kChunk) {
    const std::size_t available = std::min(kChunk, count - first);
    const Widened<T> values = widen<T>(load_up_to<T>(elements + first, std::int64_t(available)));
    for (std::size_t i = 0; i < available; ++i) {
      destination[first + i] = values.vectors[i % kVectorsPerChunk<T>][i / kVectorsPerChunk<T>];
    }
  }
}

template <DType T, bool kMayBeNaN>
void narrow_all(const float* source, void* destination, std::size_t count) {
  constexpr auto kChunk = std::size_t(kChunkElements<T>);
  auto* elements = static_cast<ElementOf<T>*>(destination);
  for (std::size_t first = 0; first < count; first += kChunk) {
    const std::size_t available = std::min(kChunk, count - first);
    Widened<T> values{};
    for (std::size_t i = 0; i < available; ++i) {
      values.vectors[i % kVectorsPerChunk<T>][i / kVectorsPerChunk<T>] = source[first + i];
    }
    const RawOf<T> raw = narrow<T, kMayBeNaN>(values);
    if (available == kChunk) {
      store<T>(elements + first, raw);
    } else {
      store_partial<T>(elements + first, raw, std::int64_t(available));
    }
  }
}

void widen_any(DType dtype, const void* source, float* destination, std::size_t count) {
  switch (dtype) {
    case DType::f32:
      widen_all<DType::f32>(source, destination, count);
      break;
    case DType::f16:
      widen_all<DType::f16>(source, destination, count);
      break;
    case DType::bf16:
      widen_all<DType::bf16>(source, destination, count);
      break;
  }
}

void narrow_any(DType dtype, const float* source, void* destination, std::size_t count,
                bool may_be_nan) {
  switch (dtype) {
    case DType::f32:
      narrow_all<DType::f32, true>(source, destination, count);
      break;
    case DType::f16:
      if (may_be_nan) {
        narrow_all<DType::f16, true>(source, destination, count);
      } else {
        narrow_all<DType::f16, false>(source, destination, count);
      }
      break;
    case DType::bf16:
      if (may_be_nan) {
        narrow_all<DType::bf16, true>(source, destination, count);
      } else {
        narrow_all<DType::bf16, false>(source, destination, count);
      }
      break;
  }
}

// The instruction-set versions.
L2NORM_CPU_KERNEL(void widen_dispatch(DType dtype, const void* source, float* destination,
                                      std::size_t count),
                  { widen_any(dtype, source, destination, count); })
L2NORM_CPU_KERNEL(void narrow_dispatch(DType dtype, const float* source, void* destination,
                                       std::size_t count, bool may_be_nan),
                  { narrow_any(dtype, source, destination, count, may_be_nan); })

}  // namespace

void widen_to_f32(DType dtype, const void* source, float* destination, std::size_t count) {
  widen_dispatch(dtype, source, destination, count);
}

void narrow_from_f32(DType dtype, const float* source, void* destination, std::size_t count) {
  narrow_dispatch(dtype, source, destination, count, true);
}

void narrow_non_nan_from_f32(DType dtype, const float* source, void* destination,
                             std::size_t count) {
  narrow_dispatch(dtype, source, destination, count, false);
}

}  // namespace l2norm::detail::cpu
