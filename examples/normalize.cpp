// The README's C++ example: normalize q-like rows on the GPU when one is present, else the CPU,
// then take the gradient of the normalization, then normalize a q and a k in one dispatch.
#include <cstdint>
#include <cstdio>
#include <optional>
#include <vector>

#include "l2norm/l2norm.hpp"

int main() {
  try {
    const l2norm::Device device =
        l2norm::cuda_available() ? l2norm::Device::cuda(0) : l2norm::Device::cpu();
    const std::int64_t rows = 2, dim = 2;
    const std::vector<float> host = {3.0f, 4.0f, 30.0f, 40.0f};

    l2norm::Buffer x(device, l2norm::DType::f32, rows * dim);
    l2norm::Buffer y(device, l2norm::DType::f32, rows * dim);
    x.copy_from_host(host.data(), host.size() * sizeof(float));

    l2norm::CommandEncoder encoder(device);
    l2norm::l2_norm(encoder, x.view({rows, dim}), y.view({rows, dim}), {.eps = 1e-6f});
    encoder.wait();

    std::vector<float> out(host.size());
    y.copy_to_host(out.data(), out.size() * sizeof(float));
    std::printf("%s: %.1f %.1f | %.1f %.1f\n", device.name().c_str(), out[0], out[1], out[2],
                out[3]);

    // The gradient of sum(dy * y) with respect to x, from x alone: for x = [3, 4] and dy = [1, 0],
    // dx = (dy - (dy . y) y) / |x| = [0.128, -0.096]; for [30, 40], a tenth of that.
    const std::vector<float> gradient = {1.0f, 0.0f, 1.0f, 0.0f};
    l2norm::Buffer dy(device, l2norm::DType::f32, rows * dim);
    l2norm::Buffer dx(device, l2norm::DType::f32, rows * dim);
    dy.copy_from_host(gradient.data(), gradient.size() * sizeof(float));
    l2norm::l2_norm_backward_from_input(encoder, dy.view({rows, dim}), x.view({rows, dim}),
                                        dx.view({rows, dim}), {.eps = 1e-6f});
    encoder.wait();
    dx.copy_to_host(out.data(), out.size() * sizeof(float));
    std::printf("dx: %.4f %.4f | %.4f %.4f\n", out[0], out[1], out[2], out[3]);

    // q and k in one dispatch (one launch on CUDA), q scaled by 0.5 and k not, k written as bf16.
    l2norm::Buffer k_out(device, l2norm::DType::bf16, rows * dim);
    l2norm::l2_norm_pair(
        encoder,
        {x.view({rows, dim}), y.view({rows, dim}), std::nullopt, {.eps = 1e-6f, .scale = 0.5f}},
        {dy.view({rows, dim}), k_out.view({rows, dim})});
    encoder.wait();
    y.copy_to_host(out.data(), out.size() * sizeof(float));
    std::vector<std::uint16_t> k_bits(host.size());
    k_out.copy_to_host(k_bits.data(), k_bits.size() * sizeof(std::uint16_t));
    std::printf("pair: q %.1f %.1f | k %.1f %.1f\n", out[0], out[1],
                l2norm::bf16_bits_to_f32(k_bits[0]), l2norm::bf16_bits_to_f32(k_bits[1]));
    return 0;
  } catch (const l2norm::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
}
