// The l2_norm_pair op: validates each target as l2_norm does, then the two against each other,
// describes them as an L2NormPairCall and hands it to the encoder's backend (the entry points
// declared in l2_norm_pair_call.hpp). A target with zero rows is dropped: the other one runs
// alone, as the l2_norm call it is.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "l2norm/error.hpp"
#include "l2norm/ops.hpp"
#include "ops/dispatch.hpp"
#include "ops/l2_norm_call.hpp"
#include "ops/l2_norm_pair_call.hpp"
#include "ops/views.hpp"

namespace l2norm {
namespace {

constexpr std::string_view kOp = "l2_norm_pair";

// Runs l2_norm's checks on one target; their errors are rethrown as this op's, naming the target:
// "l2_norm_pair: first target: input last-dim stride is 2, ...". Returns false for zero rows.
bool check_target(const L2NormTarget& target, std::string_view which) {
  try {
    return detail::check_l2_norm_views(target.input, target.output, target.options,
                                       target.rstd ? &*target.rstd : nullptr);
  } catch (const Error& error) {
    std::string_view message = error.what();
    constexpr std::string_view kInner = "l2_norm: ";
    if (message.starts_with(kInner)) message.remove_prefix(kInner.size());
    throw Error(error.code(),
                std::string(kOp) + ": " + std::string(which) + " target: " + std::string(message));
  }
}

struct ByteSpan {
  std::uintptr_t first;
  std::uintptr_t end;
};

// The bytes from a checked view's first element to the end of its last one.
ByteSpan byte_span(const TensorView& view) {
  std::int64_t last = 0;
  for (int i = 0; i < view.rank(); ++i) last += (view.size(i) - 1) * view.stride(i);
  const auto first = reinterpret_cast<std::uintptr_t>(view.data());
  return {first, first + (std::uintptr_t(last) + 1) * dtype_size(view.dtype())};
}

// rstd (a 1-D strided f32 view) must not fall inside the byte span of `other`: the test is the
// spans', so an rstd interleaved with another view's elements is refused too.
void check_rstd_apart(std::string_view rstd_name, const TensorView& rstd,
                      std::string_view other_name, const TensorView& other) {
  const ByteSpan a = byte_span(rstd);
  const ByteSpan b = byte_span(other);
  if (a.first < b.end && b.first < a.end) {
    detail::invalid_argument(kOp, std::string(rstd_name) + " overlaps " + std::string(other_name) +
                                      " (a target's outputs must share no memory with the other "
                                      "target's views)");
  }
}

// What `written` (an output or rstd of one target) must not share with `other` (the other one).
void check_apart(const L2NormTarget& written, std::string_view written_name,
                 const L2NormTarget& other, std::string_view other_name) {
  const std::string name(written_name);
  const std::string other_prefix(other_name);
  detail::check_disjoint(kOp, other_prefix + " input", other.input, name + " output",
                         written.output);
  detail::check_disjoint(kOp, other_prefix + " output", other.output, name + " output",
                         written.output);
  if (other.rstd) {
    check_rstd_apart(other_prefix + " rstd", *other.rstd, name + " output", written.output);
  }
  if (written.rstd) {
    check_rstd_apart(name + " rstd", *written.rstd, other_prefix + " input", other.input);
    check_rstd_apart(name + " rstd", *written.rstd, other_prefix + " output", other.output);
    if (other.rstd) {
      check_rstd_apart(name + " rstd", *written.rstd, other_prefix + " rstd", *other.rstd);
    }
  }
}

void check_devices(const CommandEncoder& encoder, const L2NormTarget& first,
                   const L2NormTarget& second) {
  std::vector<detail::NamedDevice> tensors{{"first input", first.input.device()},
                                           {"first output", first.output.device()},
                                           {"second input", second.input.device()},
                                           {"second output", second.output.device()}};
  if (first.rstd) tensors.push_back({"first rstd", first.rstd->device()});
  if (second.rstd) tensors.push_back({"second rstd", second.rstd->device()});
  detail::check_devices(kOp, tensors, encoder.device());
}

}  // namespace

void l2_norm_pair(CommandEncoder& encoder, const L2NormTarget& first, const L2NormTarget& second) {
  check_devices(encoder, first, second);
  const bool first_rows = check_target(first, "first");
  const bool second_rows = check_target(second, "second");
  if (first_rows && second_rows) {
    check_apart(first, "first", second, "second");
    check_apart(second, "second", first, "first");
  }
  const auto call_of = [](const L2NormTarget& target) {
    return detail::make_l2_norm_call(target.input, target.output, target.options,
                                     target.rstd ? &*target.rstd : nullptr);
  };
  if (first_rows && second_rows) {
    const detail::L2NormPairCall call{call_of(first), call_of(second), first.input.dtype(),
                                      first.input.rows() + second.input.rows(), first.input.dim()};
    detail::dispatch(encoder, "l2_norm_pair", call);
  } else if (first_rows || second_rows) {
    detail::dispatch(encoder, "l2_norm_pair", call_of(first_rows ? first : second));
  }
}

void prewarm_l2_norm_pair(const Device& device, const L2NormKernelShape& first,
                          const L2NormKernelShape& second) {
  for (const auto& [shape, which] : {std::pair{&first, std::string_view("first")},
                                     std::pair{&second, std::string_view("second")}}) {
    if (shape->dim <= 0) {
      detail::invalid_argument(kOp, "prewarm: " + std::string(which) +
                                        " dim must be positive, got " + std::to_string(shape->dim));
    }
    detail::check_dtype(kOp, std::string(which) + " input dtype", shape->input_dtype);
    detail::check_dtype(kOp, std::string(which) + " output dtype", shape->output_dtype);
    detail::check_options(kOp, shape->options);
  }
  require_device(device);
  detail::prewarm_on(device, detail::L2NormPairPrewarm{first, second});
  // A target alone (the other one empty) runs as l2_norm does.
  for (const L2NormKernelShape* shape : {&first, &second}) {
    detail::prewarm_on(device, detail::L2NormPrewarm{shape->input_dtype, shape->output_dtype,
                                                     shape->dim, shape->options});
  }
}

}  // namespace l2norm
