// Row-wise L2 normalization on the CPU (docs/DESIGN.md "Semantics"): the entry that ties the
// parts together. Each row is read twice, a sum of squares in the fixed order of cpu/row_sum.hpp,
// then a pass that scales, rounds to the output dtype (the input's or another) and stores
// (cpu/row_math.hpp); a row longer than L2 is re-read from L3. When the call asks for rstd, each
// row's factor goes to rstd[row * rstd_stride]. The rows are spread over the thread pool
// (cpu/row_schedule.hpp); outputs larger than the last-level cache (cpu/cache_size.hpp) are stored
// with non-temporal stores. Results depend on dim, the dtypes and the call's options only: not on
// alignment, thread count or instruction-set clone; the sum order on dim and the input dtype alone.
#include "cpu/l2_norm_cpu.hpp"

#include <cstdint>
#include <string>

#include "core/backend.hpp"
#include "cpu/cache_size.hpp"
#include "cpu/chunk.hpp"
#include "cpu/row_math.hpp"
#include "cpu/row_schedule.hpp"

namespace l2norm::detail::cpu {
namespace {

template <DType In, DType Out>
inline void normalize_rows(const L2NormCall& call, const RowOptions& options,
                           std::int64_t row_begin, std::int64_t row_end) {
  const auto* input = static_cast<const ElementOf<In>*>(call.input);
  auto* output = static_cast<ElementOf<Out>*>(call.output);
  RowCursor cursor(call.layout, row_begin);
  LineJoiner joiner;
  LineJoiner* const join = options.streaming ? &joiner : nullptr;
  std::int64_t row = row_begin;
  if (kPairsShortRows<In> && call.dim * std::int64_t(sizeof(ElementOf<In>)) <= kPairedRowBytes) {
    for (; row + 1 < row_end; row += 2) {
      const std::int64_t input0 = cursor.input_offset();
      const std::int64_t output0 = cursor.output_offset();
      cursor.advance();
      float rstd0 = 0.0f;
      float rstd1 = 0.0f;
      normalize_row_pair<In, Out>(input + input0, output + output0, input + cursor.input_offset(),
                                  output + cursor.output_offset(), call.dim, options, join, rstd0,
                                  rstd1);
      cursor.advance();
      if (call.rstd != nullptr) {
        call.rstd[row * call.rstd_stride] = rstd0;
        call.rstd[(row + 1) * call.rstd_stride] = rstd1;
      }
    }
  }
  for (; row < row_end; ++row) {
    const float rstd = normalize_row<In, Out>(
        input + cursor.input_offset(), output + cursor.output_offset(), call.dim, options, join);
    if (call.rstd != nullptr) call.rstd[row * call.rstd_stride] = rstd;
    cursor.advance();
  }
  joiner.flush();
  // The pool reports the part done after this returns: the rows' streaming stores come first.
  if (options.streaming) order_streaming_stores();
}

template <DType In>
inline void normalize_rows_from(const L2NormCall& call, const RowOptions& options,
                                std::int64_t row_begin, std::int64_t row_end) {
  switch (call.output_dtype) {
    case DType::f32:
      normalize_rows<In, DType::f32>(call, options, row_begin, row_end);
      break;
    case DType::f16:
      normalize_rows<In, DType::f16>(call, options, row_begin, row_end);
      break;
    case DType::bf16:
      normalize_rows<In, DType::bf16>(call, options, row_begin, row_end);
      break;
  }
}

// The instruction-set clones of the row loop, one per input dtype; each holds the loops of the
// three output dtypes, picked once per range of rows.
L2NORM_CPU_KERNEL(void normalize_rows_f32(const L2NormCall& call, const RowOptions& options,
                                          std::int64_t row_begin, std::int64_t row_end),
                  { normalize_rows_from<DType::f32>(call, options, row_begin, row_end); })

L2NORM_CPU_KERNEL(void normalize_rows_f16(const L2NormCall& call, const RowOptions& options,
                                          std::int64_t row_begin, std::int64_t row_end),
                  { normalize_rows_from<DType::f16>(call, options, row_begin, row_end); })

L2NORM_CPU_KERNEL(void normalize_rows_bf16(const L2NormCall& call, const RowOptions& options,
                                           std::int64_t row_begin, std::int64_t row_end),
                  { normalize_rows_from<DType::bf16>(call, options, row_begin, row_end); })

}  // namespace

std::int64_t l2_norm_job_bytes(const L2NormCall& call) {
  const auto input_bytes = static_cast<std::int64_t>(dtype_size(call.dtype));
  const auto output_bytes = static_cast<std::int64_t>(dtype_size(call.output_dtype));
  const bool in_place = call.output == call.input;
  const std::int64_t row_bytes = call.dim * (in_place ? input_bytes : input_bytes + output_bytes);
  return call.rows > INT64_MAX / row_bytes ? INT64_MAX : call.rows * row_bytes;
}

// Non-temporal stores pay where they skip the read for ownership of an output line that is not
// cached. In place the row's lines were just read, so the core owns them already: streaming them
// out would only evict lines the ordinary stores write back anyway.
bool l2_norm_streams(const L2NormCall& call, std::int64_t job_bytes) {
  return call.output != call.input && job_bytes > streaming_threshold_bytes();
}

void normalize_row_range(const L2NormCall& call, bool streaming, std::int64_t row_begin,
                         std::int64_t row_end) {
  const RowOptions options{call.eps, call.scale, call.scaled, call.eps_mode, streaming};
  switch (call.dtype) {
    case DType::f32:
      normalize_rows_f32(call, options, row_begin, row_end);
      break;
    case DType::f16:
      normalize_rows_f16(call, options, row_begin, row_end);
      break;
    case DType::bf16:
      normalize_rows_bf16(call, options, row_begin, row_end);
      break;
  }
}

std::string l2_norm_variant_name(const L2NormCall& call, bool streaming) {
  std::string variant = "cpu.l2_norm<";
  variant += dtype_name(call.dtype);
  if (call.output_dtype != call.dtype) {
    variant += "->";
    variant += dtype_name(call.output_dtype);
  }
  variant += call.eps_mode == EpsMode::add ? ",add" : ",clamp";
  variant += call.scaled ? ",scaled" : ",unscaled";
  variant += streaming ? ",streaming>" : ",cached>";
  return variant;
}

std::string run_l2_norm(const L2NormCall& call) {
  const std::int64_t job_bytes = l2_norm_job_bytes(call);
  const bool streaming = l2_norm_streams(call, job_bytes);
  for_each_row_range(call.rows, job_bytes, [&](std::int64_t row_begin, std::int64_t row_end) {
    normalize_row_range(call, streaming, row_begin, row_end);
  });
  return l2_norm_variant_name(call, streaming);
}

std::string run(Backend, EncoderImpl&, const L2NormCall& call) {
  return run_l2_norm(call);
}

}  // namespace l2norm::detail::cpu
