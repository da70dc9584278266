// The Morlet filter bank of the scattering transform: Gabor filters in space, their DFTs, periodisation.
#include "dpsgd/features/morlet_filter_bank.hpp"

#include <fftw3.h>

#include <cmath>
#include <complex>
#include <mutex>
#include <numbers>

#include "dpsgd/core/error.hpp"
#include "fftw_planner.hpp"

namespace dpsgd {
namespace {

using Complex = std::complex<double>;

// The real part of the 2-D DFT (forward, unnormalised) of a complex rows x cols array.
std::vector<double> real_dft(const std::vector<double>& interleaved, std::int64_t rows, std::int64_t cols) {
  const auto n = static_cast<std::size_t>(rows * cols);
  fftw_complex* in = fftw_alloc_complex(n);
  fftw_complex* out = fftw_alloc_complex(n);
  fftw_plan plan = nullptr;
  {
    std::lock_guard<std::mutex> lock(detail::fftw_planner_mutex());
    plan = fftw_plan_dft_2d(static_cast<int>(rows), static_cast<int>(cols), in, out, FFTW_FORWARD, FFTW_ESTIMATE);
  }
  if (plan == nullptr) {
    fftw_free(in);
    fftw_free(out);
    throw Error("dpsgd: FFTW could not plan a " + std::to_string(rows) + " x " + std::to_string(cols) + " DFT");
  }
  for (std::size_t i = 0; i < n; ++i) {
    in[i][0] = interleaved[2 * i];
    in[i][1] = interleaved[2 * i + 1];
  }
  fftw_execute(plan);
  std::vector<double> real(n);
  for (std::size_t i = 0; i < n; ++i) real[i] = out[i][0];
  {
    std::lock_guard<std::mutex> lock(detail::fftw_planner_mutex());
    fftw_destroy_plan(plan);
  }
  fftw_free(in);
  fftw_free(out);
  return real;
}

// The filter for signals subsampled `res` times: frequencies above the new Nyquist band are zeroed
// (the middle rows and columns of the DFT), then the spectrum is folded onto the smaller grid (the
// DFT of the subsampled signal's filter, up to the factor the subsampling's mean supplies).
std::vector<double> periodise(const std::vector<double>& spectrum, std::int64_t rows, std::int64_t cols, int res) {
  const std::int64_t factor = std::int64_t{1} << res, small_rows = rows / factor, small_cols = cols / factor;
  const auto masked_range = [&](std::int64_t size) {
    const auto start = static_cast<std::int64_t>(static_cast<double>(size) * std::ldexp(1.0, -res - 1));
    const auto length = static_cast<std::int64_t>(static_cast<double>(size) * (1.0 - std::ldexp(1.0, -res)));
    return std::pair{start, start + length};
  };
  const auto [row_begin, row_end] = masked_range(rows);
  const auto [col_begin, col_end] = masked_range(cols);
  std::vector<double> out(static_cast<std::size_t>(small_rows * small_cols), 0.0);
  for (std::int64_t r = 0; r < rows; ++r) {
    if (r >= row_begin && r < row_end) continue;
    for (std::int64_t c = 0; c < cols; ++c) {
      if (c >= col_begin && c < col_end) continue;
      out[static_cast<std::size_t>((r % small_rows) * small_cols + c % small_cols)] +=
          spectrum[static_cast<std::size_t>(r * cols + c)];
    }
  }
  return out;
}

// A Morlet wavelet: the Gabor filter minus the Gaussian envelope scaled so that the sum is exactly
// zero (the wavelet has no response to a constant image).
std::vector<double> morlet_filter(std::int64_t rows, std::int64_t cols, double sigma, double theta, double xi,
                                  double slant) {
  std::vector<double> wave = gabor_filter(rows, cols, sigma, theta, xi, slant);
  const std::vector<double> envelope = gabor_filter(rows, cols, sigma, theta, 0.0, slant);
  Complex wave_sum = 0.0, envelope_sum = 0.0;
  for (std::size_t i = 0; i < wave.size(); i += 2) {
    wave_sum += Complex(wave[i], wave[i + 1]);
    envelope_sum += Complex(envelope[i], envelope[i + 1]);
  }
  const Complex k = wave_sum / envelope_sum;
  for (std::size_t i = 0; i < wave.size(); i += 2) {
    const Complex value = Complex(wave[i], wave[i + 1]) - k * Complex(envelope[i], envelope[i + 1]);
    wave[i] = value.real();
    wave[i + 1] = value.imag();
  }
  return wave;
}

FourierFilter fourier_filter(const std::vector<double>& space, std::int64_t rows, std::int64_t cols, int levels) {
  FourierFilter filter;
  const std::vector<double> spectrum = real_dft(space, rows, cols);
  for (int res = 0; res < levels; ++res) filter.levels.push_back(periodise(spectrum, rows, cols, res));
  return filter;
}

}  // namespace

std::vector<double> gabor_filter(std::int64_t rows, std::int64_t cols, double sigma, double theta, double xi,
                                 double slant) {
  DPSGD_CHECK_ARG(rows >= 1 && cols >= 1, "the grid must be at least 1 x 1, got " << rows << " x " << cols);
  DPSGD_CHECK_ARG(std::isfinite(sigma) && sigma > 0.0, "sigma must be finite and > 0, got " << sigma);
  DPSGD_CHECK_ARG(std::isfinite(slant) && slant > 0.0, "slant must be finite and > 0, got " << slant);
  // The quadratic form R diag(1, slant^2) R^T / (2 sigma^2) of the rotated, slanted Gaussian.
  const double c = std::cos(theta), s = std::sin(theta), s2 = slant * slant, denom = 2.0 * sigma * sigma;
  const double a = (c * c + s2 * s * s) / denom, b = 2.0 * (c * s - s2 * c * s) / denom,
               d = (s * s + s2 * c * c) / denom;
  std::vector<double> out(static_cast<std::size_t>(2 * rows * cols), 0.0);
  for (int er = -2; er <= 2; ++er) {
    for (int ec = -2; ec <= 2; ++ec) {
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t q = 0; q < cols; ++q) {
          const double x = static_cast<double>(r + er * rows), y = static_cast<double>(q + ec * cols);
          const Complex value = std::exp(Complex(-(a * x * x + b * x * y + d * y * y), xi * (x * c + y * s)));
          out[static_cast<std::size_t>(2 * (r * cols + q))] += value.real();
          out[static_cast<std::size_t>(2 * (r * cols + q) + 1)] += value.imag();
        }
      }
    }
  }
  const double norm = 2.0 * std::numbers::pi * sigma * sigma / slant;
  for (double& v : out) v /= norm;
  return out;
}

MorletFilterBank morlet_filter_bank(std::int64_t rows, std::int64_t cols, int scales, int angles) {
  DPSGD_CHECK_ARG(scales >= 1 && scales <= 8, "scales (J) must be in [1, 8], got " << scales);
  DPSGD_CHECK_ARG(angles >= 1 && angles <= 64, "angles (L) must be in [1, 64], got " << angles);
  const std::int64_t factor = std::int64_t{1} << scales;
  DPSGD_CHECK_ARG(rows >= factor && cols >= factor && rows % factor == 0 && cols % factor == 0,
                  "the grid must be a multiple of 2^J = " << factor << " on each side, got " << rows << " x " << cols);
  MorletFilterBank bank{.rows = rows, .cols = cols, .scales = scales, .angles = angles, .psi = {}, .phi = {}};
  const double pi = std::numbers::pi;
  for (int j = 0; j < scales; ++j) {
    for (int l = 0; l < angles; ++l) {
      // Kymatio's angle: (int(L - L/2 - 1) - l) pi / L, with L/2 a real division truncated toward zero.
      const double first = std::trunc(static_cast<double>(angles) - angles / 2.0 - 1.0);
      const double theta = (first - l) * pi / angles;
      const std::vector<double> space =
          morlet_filter(rows, cols, 0.8 * std::ldexp(1.0, j), theta, 0.75 * pi / std::ldexp(1.0, j), 4.0 / angles);
      FourierFilter filter = fourier_filter(space, rows, cols, j + 1);
      filter.j = j;
      filter.theta = l;
      bank.psi.push_back(std::move(filter));
    }
  }
  bank.phi =
      fourier_filter(gabor_filter(rows, cols, 0.8 * std::ldexp(1.0, scales - 1), 0.0, 0.0, 1.0), rows, cols, scales);
  bank.phi.j = scales;
  return bank;
}

}  // namespace dpsgd
