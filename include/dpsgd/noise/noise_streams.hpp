// NoiseStreams: one step's noise for many tensors, each tensor on a stream of its own.
#pragma once

#include <cstdint>
#include <span>

#include "dpsgd/core/error.hpp"
#include "dpsgd/noise/gaussian_noise.hpp"

namespace dpsgd {

// Adding noise tensor by tensor with one NoiseKey would give every tensor the same noise vector: the
// noise of a step would no longer be independent across its coordinates, and the Gaussian
// mechanism's analysis would not hold. A NoiseStreams object owns the streams of one (seed, step):
// every add() or take() uses a stream no earlier call used, so two tensors can never share noise.
// Tensor k (in call order) takes stream first_stream + k; coordinate j of it takes normal j of that
// stream, the same numbers the GPU twin (dpsgd::cuda::add_gaussian_noise with take()'s key) adds.
class NoiseStreams {
 public:
  NoiseStreams(std::uint64_t seed, std::uint64_t step, NoiseMode mode = NoiseMode::kStandard,
               std::uint32_t first_stream = 0)
      : seed_(seed), step_(step), mode_(mode), next_(first_stream) {
    DPSGD_CHECK_ARG(mode == NoiseMode::kStandard || mode == NoiseMode::kSecure,
                    "mode must be NoiseMode::kStandard or NoiseMode::kSecure, got " << static_cast<int>(mode));
  }

  // values <- (values + N(0, stddev^2)) * scale, from the next unused stream. Throws as
  // add_scaled_gaussian_noise does, and once the 2^32 streams of the step are used up.
  template <typename Scalar>
  void add(std::span<Scalar> values, double stddev, Scalar scale = Scalar{1}) {
    add_scaled_gaussian_noise<Scalar>(values, stddev, take(), mode_, 0, scale);
  }

  // The key of the next unused stream, now used: for noise added elsewhere (the GPU).
  NoiseKey take() {
    DPSGD_CHECK_ARG(next_ <= kLastStream, "all 2^32 noise streams of step " << step_ << " are used");
    const NoiseKey key(seed_, step_, static_cast<std::uint32_t>(next_));
    ++next_;
    return key;
  }

  NoiseMode mode() const { return mode_; }
  // Streams handed out so far (counting from first_stream).
  std::uint64_t used() const { return next_; }

 private:
  static constexpr std::uint64_t kLastStream = 0xFFFFFFFFull;
  std::uint64_t seed_, step_;
  NoiseMode mode_;
  std::uint64_t next_;
};

// Adds N(0, stddev^2) to every element of every tensor, tensor k from stream k of (seed, step): one
// call for a model whose parameters live in several buffers, with independent noise in each.
template <typename Scalar>
void add_gaussian_noise(std::span<const std::span<Scalar>> tensors, double stddev, std::uint64_t seed,
                        std::uint64_t step, NoiseMode mode = NoiseMode::kStandard) {
  NoiseStreams streams(seed, step, mode);
  for (const std::span<Scalar> tensor : tensors) streams.add<Scalar>(tensor, stddev);
}

}  // namespace dpsgd
