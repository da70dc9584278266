// epsilon_answer and delta_answer: PLD and RDP side by side, with the truncation charge.
#include "dpsgd/accounting/epsilon_delta.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "dpsgd/accounting/detail/pld_queries.hpp"
#include "dpsgd/accounting/detail/rdp_focused.hpp"
#include "dpsgd/accounting/rdp.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/validate.hpp"

namespace dpsgd {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<GaussianPhase> mechanisms(std::span<const TrainingPhase> phases) {
  DPSGD_CHECK_ARG(!phases.empty(), "phases must hold at least one phase");
  std::vector<GaussianPhase> result;
  for (std::size_t k = 0; k < phases.size(); ++k) {
    validate_training_phase(phases[k], k);
    result.push_back(phases[k].mechanism());
  }
  return result;
}

// (1 + e^eps) eta: what truncation adds to delta at epsilon; +inf where e^eps overflows.
double truncation_charge(double epsilon, double eta) {
  if (eta == 0.0) return 0.0;
  return eta + std::exp(epsilon + std::log(eta));
}

// The RDP curve, with the series of fractional orders summed only within 1.5 of the order that the
// chord-only curve's conversion picks (`best_order`); chords elsewhere.
template <typename BestOrder>
std::vector<double> rdp_curve_for(const std::vector<GaussianPhase>& base, BestOrder&& best_order) {
  const double order = best_order(detail::rdp_of_phases_focused(base, 0.0, 0.0));
  return detail::rdp_of_phases_focused(base, order - 1.5, order + 1.5);
}

// RDP epsilon with the truncation charge: the smallest eps with (eps, delta - charge(eps)) implied by
// the RDP curve, by the fixed-point iteration that climbs to it from 0.
double rdp_epsilon(const std::vector<GaussianPhase>& base, double delta, double eta) {
  const std::vector<double> curve = rdp_curve_for(base, [&](const std::vector<double>& c) {
    return rdp_to_epsilon(default_rdp_orders(), c, std::max(delta - 2.0 * eta, 1e-300)).order;
  });
  const auto at = [&](double d) { return rdp_to_epsilon(default_rdp_orders(), curve, d).value; };
  if (eta == 0.0) return at(delta);
  double eps = 0.0;
  for (int round = 0; round < 60; ++round) {
    const double remaining = delta - truncation_charge(eps, eta);
    if (!(remaining > 0.0)) return kInf;
    const double next = at(remaining);
    if (!std::isfinite(next)) return kInf;
    if (next <= eps) return eps;  // (next, remaining)-DP implies (eps, remaining)-DP
    eps = next + 1e-12 * (1.0 + next);
    const double left = delta - truncation_charge(eps, eta);
    if (left > 0.0 && at(left) <= eps) return eps;
  }
  return kInf;
}

AccountingAnswer truncation_refusal(double eta, double delta, AccountantKind kind) {
  std::ostringstream note;
  note.precision(4);
  note << "truncation probability " << eta << " leaves no room in delta = " << delta
       << " (the charge (1 + e^eps) eta must stay below delta): raise the capacity";
  return {kInf, kind, note.str()};
}

}  // namespace

std::string to_string(AccountantKind kind) { return kind == AccountantKind::kRdp ? "rdp" : "pld"; }

AccountantKind parse_accountant_kind(const std::string& name) {
  if (name == "pld") return AccountantKind::kPld;
  if (name == "rdp") return AccountantKind::kRdp;
  DPSGD_CHECK_ARG(false, "accountant must be \"pld\" or \"rdp\", got \"" << name << "\"");
  return AccountantKind::kPld;
}

void AccountantOptions::validate() const {
  DPSGD_CHECK_ARG(kind == AccountantKind::kPld || kind == AccountantKind::kRdp,
                  "options.kind must be AccountantKind::kPld or kRdp, got " << static_cast<int>(kind));
  pld.validate();
}

void validate_accounted_delta(double delta) {
  validate_delta(delta);
  DPSGD_CHECK_ARG(delta >= kMinAccountedDelta, "delta must be in [1e-300, 1), got " << delta);
}

AccountingAnswer epsilon_answer(std::span<const TrainingPhase> phases, double delta, const AccountantOptions& options) {
  validate_accounted_delta(delta);
  options.validate();
  const std::vector<GaussianPhase> base = mechanisms(phases);
  const double eta = truncation_probability(phases);
  if (eta > 0.0 && delta <= 2.0 * eta) return truncation_refusal(eta, delta, options.kind);
  const double rdp = rdp_epsilon(base, delta, eta);
  if (options.kind == AccountantKind::kRdp) return {rdp, AccountantKind::kRdp, ""};
  PldResult pld;
  try {
    pld = detail::pld_epsilon_with_charge(base, delta, eta, options.pld);
  } catch (const std::exception& e) {
    // Arguments were validated above: anything thrown here is a limit of the PLD (a grid that cannot
    // fit, a count beyond its range). The RDP bound is sound on its own.
    return {rdp, AccountantKind::kRdp,
            std::string("the PLD could not answer (") + e.what() + "); reporting the RDP bound"};
  }
  if (pld.value <= rdp) return {pld.value, AccountantKind::kPld, pld.note};
  std::string note = "the RDP bound is tighter here";
  if (!pld.note.empty()) note += " (PLD: " + pld.note + ")";
  return {rdp, AccountantKind::kRdp, note};
}

double compute_epsilon(std::span<const TrainingPhase> phases, double delta, const AccountantOptions& options) {
  return epsilon_answer(phases, delta, options).value;
}

AccountingAnswer delta_answer(std::span<const TrainingPhase> phases, double epsilon, const AccountantOptions& options) {
  validate_epsilon(epsilon);
  options.validate();
  const std::vector<GaussianPhase> base = mechanisms(phases);
  const double charge = truncation_charge(epsilon, truncation_probability(phases));
  const std::vector<double> curve = rdp_curve_for(
      base, [&](const std::vector<double>& c) { return rdp_to_delta(default_rdp_orders(), c, epsilon).order; });
  const double rdp = rdp_to_delta(default_rdp_orders(), curve, epsilon).value;
  const auto with_charge = [&](double d) { return std::min(1.0, d + charge); };
  if (options.kind == AccountantKind::kRdp) return {with_charge(rdp), AccountantKind::kRdp, ""};
  PldResult pld;
  try {
    pld = pld_delta(base, epsilon, options.pld);
  } catch (const std::exception& e) {
    return {with_charge(rdp), AccountantKind::kRdp,
            std::string("the PLD could not answer (") + e.what() + "); reporting the RDP bound"};
  }
  if (pld.value <= rdp) return {with_charge(pld.value), AccountantKind::kPld, pld.note};
  std::string note = "the RDP bound is tighter here";
  if (!pld.note.empty()) note += " (PLD: " + pld.note + ")";
  return {with_charge(rdp), AccountantKind::kRdp, note};
}

double compute_delta(std::span<const TrainingPhase> phases, double epsilon, const AccountantOptions& options) {
  return delta_answer(phases, epsilon, options).value;
}

}  // namespace dpsgd
