// A white-box audit of the DP-SGD mechanism, check by check: the noise's scale, each example's clipped
// contribution (dense and ghost routes, against adversarial examples), and that the privacy claim
// covers the sampler actually used. Each check can fail on a realistic bug, which the audit can
// inject on request to prove it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpsgd::audit {

// A bug the audit plants in the mechanism it runs (the library itself is not changed): the negative
// controls of the audit.
enum class InjectedBug : int {
  kNone = 0,
  kHalfNoise = 1,           // the step adds noise at sigma / 2 while the accountant is told sigma
  kDoubleClip = 2,          // examples are clipped to 2 C while the noise is scaled for C
  kNoTruncationCharge = 3,  // batches are truncated to a capacity the accountant is not told about
  kGramCancellation = 4,    // ghost norms from float Gram products with no rounding bound (the pre-fix code)
};

// "none", "half-noise", "double-clip", "no-truncation-charge", "gram-cancellation"; parse throws
// InvalidArgument for anything else.
std::string to_string(InjectedBug bug);
InjectedBug parse_injected_bug(const std::string& name);

struct MechanismAuditConfig {
  double noise_multiplier = 1.0;  // sigma the accountant is told
  double clip_norm = 1.0;         // C
  double delta = 1e-5;
  // Probability that the audit fails a correct mechanism, split evenly over its statistical checks
  // (the deterministic ones never fail a correct mechanism).
  double false_failure = 1e-9;
  InjectedBug bug = InjectedBug::kNone;
  std::uint64_t seed = 1;
};

struct MechanismAuditCheck {
  std::string name;
  bool passed = false;
  double statistic = 0.0;  // what was measured
  double limit = 0.0;      // what it had to stay within
  std::string detail;
};

struct MechanismAuditResult {
  std::vector<MechanismAuditCheck> checks;
  bool passed() const;
};

// Runs the checks through the library's own step driver, sampler, clipping and accountant:
//  - noise: the released noise of DpSgd::step over 2^20 coordinates has variance (sigma C)^2 (a normal
//    approximation of the chi-square statistic, two-sided at its share of false_failure);
//  - dense clipping: a canary of norm 20 C along one coordinate, other examples orthogonal to it,
//    through a truncated Poisson sampler, clip_and_accumulate and DpSgd over 4000 steps: the mean
//    release on that coordinate when the canary was sampled estimates its contribution, which must
//    not exceed C beyond the sampling error (one-sided at its share of false_failure);
//  - ghost clipping: an example whose per-position gradients cancel (the Gram route's worst case)
//    must add at most C (1 + 1e-4) to the clipped gradient (deterministic);
//  - accounting: the epsilon the run's ledger reports must cover the run's sampler, truncation
//    included (deterministic).
// Throws InvalidArgument on bad settings.
MechanismAuditResult run_mechanism_audit(const MechanismAuditConfig& config);

}  // namespace dpsgd::audit
