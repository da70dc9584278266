// Scattering2D: the data-independent 2-D scattering transform (Mallat) of images, on FFTW, multithreaded.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/features/morlet_filter_bank.hpp"

namespace dpsgd {

struct ScatteringConfig {
  std::int64_t height = 28, width = 28;
  int scales = 2;  // J: the output is subsampled by 2^J
  int angles = 8;  // L
};

// Second-order scattering coefficients of single-channel images, as Kymatio's Scattering2D computes
// them (same padding, filters, subsampling in the Fourier domain, channel order), with exact pi:
//   S0 x = x * phi_J,   S1 x = |x * psi_{j1,l1}| * phi_J,   S2 x = ||x * psi_{j1,l1}| * psi_{j2,l2}| * phi_J
// for j1 < j2. Channels: 1 + J L + L^2 J (J - 1) / 2 (81 for J = 2, L = 8), each of
// (height_padded / 2^J - 2) x (width_padded / 2^J - 2) pixels (7 x 7 for 28 x 28 images), where the
// image is reflection-padded to the next multiple of 2^J that leaves at least 2^J pixels of margin.
// No parameter is learnt from data: the features of one image depend on that image only, so
// computing them costs no privacy.
//
// Output rows are in the NHWC order of dpsgd::nn (element (h, w, c) at (h * out_width + w) *
// channels + c), ready for nn::Conv2d or a linear layer. Thread-safe: transforms may run
// concurrently on one object (the FFTW plans are made once, in the constructor).
class Scattering2D {
 public:
  explicit Scattering2D(const ScatteringConfig& config);
  ~Scattering2D();
  Scattering2D(const Scattering2D&) = delete;
  Scattering2D& operator=(const Scattering2D&) = delete;

  std::int64_t channels() const;
  std::int64_t out_height() const;
  std::int64_t out_width() const;
  std::int64_t output_size() const { return channels() * out_height() * out_width(); }
  const MorletFilterBank& filters() const;

  // The features of one image (height * width values, row-major) into `out` (output_size() values).
  void transform(std::span<const float> image, std::span<float> out) const;

  // The features of each row of `images` (height * width columns), on all OpenMP threads. Throws
  // InvalidArgument on a wrong column count or a non-finite pixel (naming the row).
  RowMajorMatrix<float> transform_rows(const ConstRowsRef<float>& images) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dpsgd
