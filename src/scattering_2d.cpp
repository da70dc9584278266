// Scattering2D on FFTW: reflection padding, filtering and subsampling in the Fourier domain, moduli.
#include "dpsgd/features/scattering_2d.hpp"

#include <fftw3.h>

#include <cmath>
#include <complex>
#include <mutex>
#include <string>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "fftw_planner.hpp"

namespace dpsgd {
namespace {

// A forward and an inverse complex DFT plan of one square-or-not size; executed on other buffers
// of FFTW's alignment (fftw_execute_dft), which is thread-safe.
struct PlanPair {
  std::int64_t rows = 0, cols = 0;
  fftw_plan forward = nullptr, inverse = nullptr;
};

// One thread's buffers: the full-resolution spectrum of the image, of the first-order modulus, and
// scratch arrays, all of FFTW's alignment.
class Workspace {
 public:
  explicit Workspace(std::size_t size) {
    for (fftw_complex*& b : buffers_) b = fftw_alloc_complex(size);
  }
  ~Workspace() {
    for (fftw_complex* b : buffers_) fftw_free(b);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  fftw_complex* image_spectrum() { return buffers_[0]; }
  fftw_complex* modulus_spectrum() { return buffers_[1]; }
  fftw_complex* a() { return buffers_[2]; }
  fftw_complex* b() { return buffers_[3]; }

 private:
  fftw_complex* buffers_[4] = {};
};

}  // namespace

struct Scattering2D::Impl {
  ScatteringConfig config;
  std::int64_t padded_rows = 0, padded_cols = 0, pad_top = 0, pad_left = 0;
  MorletFilterBank bank;
  std::vector<PlanPair> plans;  // plans[r]: the grid subsampled r times

  explicit Impl(const ScatteringConfig& c) : config(c) {
    const std::int64_t factor = std::int64_t{1} << c.scales;
    // Kymatio's padding: the next multiple of 2^J with at least 2^J pixels of margin in total.
    padded_rows = ((c.height + factor) / factor + 1) * factor;
    padded_cols = ((c.width + factor) / factor + 1) * factor;
    pad_top = (padded_rows - c.height) / 2;
    pad_left = (padded_cols - c.width) / 2;
    DPSGD_CHECK_ARG(padded_rows - pad_top - c.height < c.height && pad_top < c.height &&
                        padded_cols - pad_left - c.width < c.width && pad_left < c.width,
                    "a " << c.height << " x " << c.width << " image is too small to reflect-pad for J = " << c.scales);
    bank = morlet_filter_bank(padded_rows, padded_cols, c.scales, c.angles);
    make_plans();
  }

  ~Impl() { destroy_plans(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void destroy_plans() {
    std::lock_guard<std::mutex> lock(detail::fftw_planner_mutex());
    for (PlanPair& p : plans) {
      for (fftw_plan plan : {p.forward, p.inverse}) {
        if (plan == nullptr) continue;
        fftw_destroy_plan(plan);
        --detail::fftw_plans_held_elsewhere();
      }
    }
    plans.clear();
  }

  void make_plans() {
    const auto size = static_cast<std::size_t>(padded_rows * padded_cols);
    fftw_complex* in = fftw_alloc_complex(size);
    fftw_complex* out = fftw_alloc_complex(size);
    {
      std::lock_guard<std::mutex> lock(detail::fftw_planner_mutex());
      for (int r = 0; r <= config.scales; ++r) {
        PlanPair p{.rows = padded_rows >> r, .cols = padded_cols >> r};
        p.forward =
            fftw_plan_dft_2d(static_cast<int>(p.rows), static_cast<int>(p.cols), in, out, FFTW_FORWARD, FFTW_ESTIMATE);
        p.inverse =
            fftw_plan_dft_2d(static_cast<int>(p.rows), static_cast<int>(p.cols), in, out, FFTW_BACKWARD, FFTW_ESTIMATE);
        detail::fftw_plans_held_elsewhere() += (p.forward != nullptr ? 1 : 0) + (p.inverse != nullptr ? 1 : 0);
        plans.push_back(p);
      }
    }
    fftw_free(in);
    fftw_free(out);
    for (const PlanPair& p : plans) {
      if (p.forward == nullptr || p.inverse == nullptr) {
        destroy_plans();  // the destructor does not run for an object whose constructor throws
        throw Error("dpsgd::Scattering2D: FFTW could not plan a DFT");
      }
    }
  }

  std::int64_t channels() const {
    const std::int64_t j = config.scales, l = config.angles;
    return 1 + j * l + l * l * j * (j - 1) / 2;
  }
  std::int64_t out_rows() const { return (padded_rows >> config.scales) - 2; }
  std::int64_t out_cols() const { return (padded_cols >> config.scales) - 2; }

  // The reflection-padded image (numpy's "reflect": the edge pixel is not repeated) into `out`.
  void pad(std::span<const float> image, fftw_complex* out) const {
    const auto reflect = [](std::int64_t i, std::int64_t n) { return i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i); };
    for (std::int64_t r = 0; r < padded_rows; ++r) {
      const std::int64_t source_row = reflect(r - pad_top, config.height);
      for (std::int64_t c = 0; c < padded_cols; ++c) {
        const std::int64_t source_col = reflect(c - pad_left, config.width);
        out[r * padded_cols + c][0] = image[static_cast<std::size_t>(source_row * config.width + source_col)];
        out[r * padded_cols + c][1] = 0.0;
      }
    }
  }

  // out = subsample(spectrum .* filter, 2^k), where spectrum and filter live on the grid subsampled
  // `level` times: the mean over the 2^k x 2^k aliases of each frequency is the spectrum of the
  // signal subsampled by 2^k in space.
  void filter_and_subsample(const fftw_complex* spectrum, const std::vector<double>& filter, int level, int k,
                            fftw_complex* out) const {
    const std::int64_t rows = padded_rows >> level, cols = padded_cols >> level;
    const std::int64_t small_rows = rows >> k, small_cols = cols >> k, copies = std::int64_t{1} << k;
    const double scale = 1.0 / static_cast<double>(copies * copies);
    for (std::int64_t i = 0; i < small_rows * small_cols; ++i) out[i][0] = out[i][1] = 0.0;
    for (std::int64_t r = 0; r < rows; ++r) {
      fftw_complex* to = out + (r % small_rows) * small_cols;
      const fftw_complex* from = spectrum + r * cols;
      const double* f = filter.data() + r * cols;
      for (std::int64_t block = 0; block < cols; block += small_cols) {
        for (std::int64_t c = 0; c < small_cols; ++c) {
          to[c][0] += from[block + c][0] * f[block + c];
          to[c][1] += from[block + c][1] * f[block + c];
        }
      }
    }
    for (std::int64_t i = 0; i < small_rows * small_cols; ++i) {
      out[i][0] *= scale;
      out[i][1] *= scale;
    }
  }

  // In place: the inverse DFT (normalised) on the grid subsampled `level` times, then the modulus,
  // then the forward DFT of that real signal.
  void modulus_in_fourier(fftw_complex* data, fftw_complex* scratch, int level) const {
    const PlanPair& p = plans[static_cast<std::size_t>(level)];
    const std::int64_t n = p.rows * p.cols;
    fftw_execute_dft(p.inverse, data, scratch);
    const double norm = 1.0 / static_cast<double>(n);
    // sqrt of the sum of squares, not hypot (a third of the transform's time): the inputs are floats,
    // so every value here is below 1e39 * n and its square far from double's overflow.
    for (std::int64_t i = 0; i < n; ++i) {
      scratch[i][0] = std::sqrt(scratch[i][0] * scratch[i][0] + scratch[i][1] * scratch[i][1]) * norm;
      scratch[i][1] = 0.0;
    }
    fftw_execute_dft(p.forward, scratch, data);
  }

  // The real part of the inverse DFT of a spectrum on the coarsest grid, without its one-pixel
  // border, into channel `channel` of the NHWC output.
  void write_channel(fftw_complex* spectrum, fftw_complex* scratch, std::int64_t channel, std::span<float> out) const {
    const PlanPair& p = plans[static_cast<std::size_t>(config.scales)];
    fftw_execute_dft(p.inverse, spectrum, scratch);
    const double norm = 1.0 / static_cast<double>(p.rows * p.cols);
    const std::int64_t ch = channels(), oc = out_cols();
    for (std::int64_t r = 0; r < out_rows(); ++r) {
      for (std::int64_t c = 0; c < oc; ++c) {
        out[static_cast<std::size_t>((r * oc + c) * ch + channel)] =
            static_cast<float>(scratch[(r + 1) * p.cols + (c + 1)][0] * norm);
      }
    }
  }

  void transform(std::span<const float> image, std::span<float> out, Workspace& w) const {
    const int big_j = config.scales;
    const std::vector<double>* phi = bank.phi.levels.data();
    pad(image, w.a());
    fftw_execute_dft(plans[0].forward, w.a(), w.image_spectrum());
    std::int64_t channel = 0;
    filter_and_subsample(w.image_spectrum(), phi[0], 0, big_j, w.a());
    write_channel(w.a(), w.b(), channel++, out);
    // First order, then the second-order channels of the same path after all of it (Kymatio's order:
    // S0, every S1, then S2 by (n1, n2)): second-order channels are numbered up front.
    std::int64_t second = 1 + static_cast<std::int64_t>(bank.psi.size());
    for (const FourierFilter& psi1 : bank.psi) {
      const int j1 = psi1.j;
      filter_and_subsample(w.image_spectrum(), psi1.levels[0], 0, j1, w.modulus_spectrum());
      modulus_in_fourier(w.modulus_spectrum(), w.b(), j1);
      filter_and_subsample(w.modulus_spectrum(), phi[j1], j1, big_j - j1, w.a());
      write_channel(w.a(), w.b(), channel++, out);
      for (const FourierFilter& psi2 : bank.psi) {
        const int j2 = psi2.j;
        if (j2 <= j1) continue;
        filter_and_subsample(w.modulus_spectrum(), psi2.levels[static_cast<std::size_t>(j1)], j1, j2 - j1, w.a());
        modulus_in_fourier(w.a(), w.b(), j2);
        filter_and_subsample(w.a(), phi[j2], j2, big_j - j2, w.b());
        write_channel(w.b(), w.a(), second++, out);
      }
    }
  }
};

Scattering2D::Scattering2D(const ScatteringConfig& config) {
  DPSGD_CHECK_ARG(config.height >= 1 && config.height <= 4096 && config.width >= 1 && config.width <= 4096,
                  "image size must be in [1, 4096] on each side, got " << config.height << " x " << config.width);
  DPSGD_CHECK_ARG(config.scales >= 1 && config.scales <= 8, "scales (J) must be in [1, 8], got " << config.scales);
  DPSGD_CHECK_ARG(config.angles >= 1 && config.angles <= 64, "angles (L) must be in [1, 64], got " << config.angles);
  impl_ = std::make_unique<Impl>(config);
}

Scattering2D::~Scattering2D() = default;

std::int64_t Scattering2D::channels() const { return impl_->channels(); }
std::int64_t Scattering2D::out_height() const { return impl_->out_rows(); }
std::int64_t Scattering2D::out_width() const { return impl_->out_cols(); }
const MorletFilterBank& Scattering2D::filters() const { return impl_->bank; }

void Scattering2D::transform(std::span<const float> image, std::span<float> out) const {
  const std::int64_t pixels = impl_->config.height * impl_->config.width;
  DPSGD_CHECK_ARG(static_cast<std::int64_t>(image.size()) == pixels,
                  "image must have " << pixels << " values, got " << image.size());
  DPSGD_CHECK_ARG(static_cast<std::int64_t>(out.size()) == output_size(),
                  "out must have " << output_size() << " values, got " << out.size());
  for (std::size_t i = 0; i < image.size(); ++i) {
    DPSGD_CHECK_ARG(std::isfinite(image[i]), "image value " << i << " is not finite: " << image[i]);
  }
  Workspace w(static_cast<std::size_t>(impl_->padded_rows * impl_->padded_cols));
  impl_->transform(image, out, w);
}

RowMajorMatrix<float> Scattering2D::transform_rows(const ConstRowsRef<float>& images) const {
  const std::int64_t pixels = impl_->config.height * impl_->config.width;
  DPSGD_CHECK_ARG(images.cols() == pixels, "images must have " << pixels << " columns, got " << images.cols());
  for (Eigen::Index r = 0; r < images.rows(); ++r) {
    DPSGD_CHECK_ARG(images.row(r).allFinite(), "image row " << r << " holds a non-finite value");
  }
  RowMajorMatrix<float> features(images.rows(), output_size());
  const auto n = static_cast<std::int64_t>(images.rows());
#pragma omp parallel
  {
    Workspace w(static_cast<std::size_t>(impl_->padded_rows * impl_->padded_cols));
    RowMajorMatrix<float> row;
#pragma omp for schedule(dynamic, 64)
    for (std::int64_t r = 0; r < n; ++r) {
      row = images.row(r);
      impl_->transform({row.data(), static_cast<std::size_t>(pixels)},
                       {features.row(r).data(), static_cast<std::size_t>(output_size())}, w);
    }
  }
  return features;
}

}  // namespace dpsgd
