// Row-wise L2 normalization on the CPU (docs/DESIGN.md "Semantics"): the entry that ties the
// parts together. Each row is read twice, a sum of squares in the fixed order of cpu/row_sum.hpp,
// then a pass that scales, rounds and stores (cpu/row_math.hpp); a row longer than L2 is re-read
// from L3. When the call asks for rstd, each row's factor goes to rstd[row * rstd_stride]. The rows
// are spread over the thread pool (cpu/row_schedule.hpp); outputs larger than the last-level cache
// (cpu/cache_size.hpp) are stored with non-temporal stores. Results depend on dim and the call's
// options only: not on alignment, thread count or instruction-set clone.
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

template <DType T>
void normalize_rows(const L2NormCall& call, const RowOptions& options, std::int64_t row_begin,
                    std::int64_t row_end) {
  const auto* input = static_cast<const ElementOf<T>*>(call.input);
  auto* output = static_cast<ElementOf<T>*>(call.output);
  RowCursor cursor(call.layout, row_begin);
  for (std::int64_t row = row_begin; row < row_end; ++row) {
    const float rstd = normalize_row<T>(input + cursor.input_offset(),
                                        output + cursor.output_offset(), call.dim, options);
    if (call.rstd != nullptr) call.rstd[row * call.rstd_stride] = rstd;
    cursor.advance();
  }
  // The pool reports the part done after this returns: the rows' streaming stores come first.
  if (options.streaming) order_streaming_stores();
}

L2NORM_CPU_KERNEL(void normalize_rows_f32(const L2NormCall& call, const RowOptions& options,
                                          std::int64_t row_begin, std::int64_t row_end),
                  { normalize_rows<DType::f32>(call, options, row_begin, row_end); })

L2NORM_CPU_KERNEL(void normalize_rows_f16(const L2NormCall& call, const RowOptions& options,
                                          std::int64_t row_begin, std::int64_t row_end),
                  { normalize_rows<DType::f16>(call, options, row_begin, row_end); })

L2NORM_CPU_KERNEL(void normalize_rows_bf16(const L2NormCall& call, const RowOptions& options,
                                           std::int64_t row_begin, std::int64_t row_end),
                  { normalize_rows<DType::bf16>(call, options, row_begin, row_end); })

}  // namespace

std::string run_l2_norm(const L2NormCall& call) {
  const auto element_bytes = static_cast<std::int64_t>(dtype_size(call.dtype));
  const bool in_place = call.output == call.input;
  const std::int64_t row_bytes = call.dim * element_bytes * (in_place ? 1 : 2);
  const std::int64_t job_bytes =
      call.rows > INT64_MAX / row_bytes ? INT64_MAX : call.rows * row_bytes;
  const RowOptions options{call.eps, call.scale, call.scaled, call.eps_mode,
                           job_bytes > streaming_threshold_bytes()};

  for_each_row_range(call.rows, job_bytes, [&](std::int64_t row_begin, std::int64_t row_end) {
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
  });

  std::string variant = "cpu.l2_norm<";
  variant += dtype_name(call.dtype);
  variant += call.eps_mode == EpsMode::add ? ",add" : ",clamp";
  variant += call.scaled ? ",scaled" : ",unscaled";
  variant += options.streaming ? ",streaming>" : ",cached>";
  return variant;
}

std::string run(Backend, EncoderImpl&, const L2NormCall& call) {
  return run_l2_norm(call);
}

}  // namespace l2norm::detail::cpu
