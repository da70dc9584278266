// Renyi DP of the Poisson-subsampled Gaussian mechanism and its conversion to (epsilon, delta).
#pragma once

#include <span>
#include <vector>

#include "dpsgd/accounting/gaussian_phase.hpp"

namespace dpsgd {

// The order grid of Google's dp_accounting (1.1 to 10.9 by 0.1, 11 to 63, 128, 256, 512, 1024), so
// that results are comparable order by order.
const std::vector<double>& default_rdp_orders();

// RDP at order alpha > 1 of one step of the Poisson-subsampled Gaussian mechanism with sampling
// rate q and noise multiplier sigma, under add/remove adjacency (Mironov, Talwar & Zhang 2019,
// "Renyi differential privacy of the sampled Gaussian mechanism": the exact binomial sum for
// integer alpha; for fractional alpha the two-sided series of their section 3.3 with signed
// coefficients and a bound on the rest, or the chord between integer orders where that is lower).
// Every value is rounded up by a bound on its error. q = 1 gives alpha / (2 sigma^2); sigma = 0 +inf.
// Throws InvalidArgument for q outside [0, 1], sigma < 0 or non-finite, or alpha <= 1.
double rdp_poisson_subsampled_gaussian(double sampling_rate, double noise_multiplier, double order);

// The RDP curve of the composition of `phases` over default_rdp_orders(): sum of steps * per-step RDP.
std::vector<double> rdp_of_phases(std::span<const GaussianPhase> phases);

struct RdpConversion {
  double value = 0.0;  // epsilon (or delta)
  double order = 0.0;  // the order that gave it
};

// The smallest epsilon over the orders for which RDP curve `rdp` implies (epsilon, delta)-DP, with the
// conversion of Canonne, Kamath & Steinke 2020 / Balle et al. 2020:
// eps = rdp + log1p(-1/alpha) - (log delta + log alpha) / (alpha - 1), and eps = 0 when
// delta >= sqrt(1 - exp(-rdp)) (the KL bound). Orders below 1.01 are numerically unstable and skipped.
RdpConversion rdp_to_epsilon(std::span<const double> orders, std::span<const double> rdp, double delta);

// The smallest delta over the orders for which the RDP curve implies (epsilon, delta)-DP: the
// minimum of the same conversion solved for delta and of the KL bound sqrt(1 - exp(-rdp)).
RdpConversion rdp_to_delta(std::span<const double> orders, std::span<const double> rdp, double epsilon);

}  // namespace dpsgd
