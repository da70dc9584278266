// The Morlet filter bank of the 2-D scattering transform, built in the Fourier domain at each resolution.
#pragma once

#include <cstdint>
#include <vector>

namespace dpsgd {

// A real filter in the Fourier domain on a rows x cols grid (row-major), at the resolutions it is
// applied: levels[r] is the filter periodised to (rows / 2^r) x (cols / 2^r), for signals already
// subsampled r times.
struct FourierFilter {
  int j = 0;      // scale: the wavelet's bandwidth is 0.8 * 2^j pixels
  int theta = 0;  // orientation index in [0, L)
  std::vector<std::vector<double>> levels;
};

// psi: J * L Morlet wavelets ordered by scale, then angle (the order of the scattering channels);
// phi: the Gaussian low-pass filter at scale 2^J.
struct MorletFilterBank {
  std::int64_t rows = 0, cols = 0;
  int scales = 0, angles = 0;
  std::vector<FourierFilter> psi;
  FourierFilter phi;
};

// The filter bank of Bruna & Mallat (2013) in the parametrisation of the reference implementation
// Kymatio (Andreux et al., JMLR 2020), so that the transform's features are the ones the published
// DP results used (Tramer & Boneh, ICLR 2021): wavelet (j, l) is a Morlet filter with Gaussian width
// sigma = 0.8 * 2^j, centre frequency xi = (3 pi / 4) / 2^j along the angle
// (L/2 - 1 - l) * pi / L, slant 4 / L, made exactly zero-mean; phi is a Gaussian of width
// 0.8 * 2^(J-1). Both are periodised over the grid (5 x 5 copies), normalised by 2 pi sigma^2 / slant,
// and transformed with a DFT of which the real part is kept (the filters are Hermitian in space, so
// the imaginary part is rounding only). Wavelet levels 0..j and low-pass levels 0..J-1 are formed.
// Requires rows and cols divisible by 2^J; throws InvalidArgument otherwise.
MorletFilterBank morlet_filter_bank(std::int64_t rows, std::int64_t cols, int scales, int angles);

// One Gabor filter in space on the grid (periodised as above), row-major complex values as
// interleaved (re, im) pairs: exposed for the tests of the filter bank.
std::vector<double> gabor_filter(std::int64_t rows, std::int64_t cols, double sigma, double theta, double xi,
                                 double slant);

}  // namespace dpsgd
