// build/bin/audit_dpsgd: audits the DP-SGD mechanism two ways and prints both tables: the white-box
// mechanism audit (noise scale, dense and ghost clipping, the accounting of truncation), which can
// plant a bug on request (--inject-bug) to show the check that catches it, and the gradient-canary
// audit (empirical epsilon lower bounds with noise, and with noise switched off).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "dpsgd/audit/gradient_canary_audit.hpp"
#include "dpsgd/audit/mechanism_audit.hpp"
#include "dpsgd/core/error.hpp"

namespace {

struct Options {
  std::int64_t canaries = 1000;
  std::uint64_t seed = 42;
  double delta = 1e-5;
  std::string bug = "none";
  bool canary_table = true;
};

// The mechanism audit's table; true when every check passed.
bool print_mechanism_audit(const Options& options) {
  dpsgd::audit::MechanismAuditConfig config;
  config.delta = options.delta;
  config.seed = options.seed;
  config.bug = dpsgd::audit::parse_injected_bug(options.bug);
  const dpsgd::audit::MechanismAuditResult result = dpsgd::audit::run_mechanism_audit(config);
  std::printf("Mechanism audit (sigma 1, C 1, planted bug: %s)\n\n", options.bug.c_str());
  std::printf("| check | measured | limit | verdict | how |\n|---|---|---|---|---|\n");
  for (const auto& check : result.checks) {
    std::printf("| %s | %.6g | %.6g | %s | %s |\n", check.name.c_str(), check.statistic, check.limit,
                check.passed ? "pass" : "FAIL", check.detail.c_str());
  }
  std::printf("\n%s\n\n", result.passed() ? "mechanism audit: passed" : "mechanism audit: FAILED");
  std::fflush(stdout);
  return result.passed();
}

// The gradient-canary table for several (sigma, q, T), with noise and without.
void print_canary_audit(const Options& options) {
  struct Setting {
    double sigma, q;
    std::int64_t steps;
  };
  const std::vector<Setting> settings{{2.0, 0.1, 100}, {2.0, 0.05, 300}, {4.0, 0.3, 30},
                                      {1.0, 0.1, 100}, {0.8, 0.05, 200}, {1.0, 0.01, 1000}};
  std::printf(
      "| sigma | q | T | claimed eps (PLD) | one-run LB, noise on | threshold LB, noise on | "
      "one-run LB, noise off | threshold LB, noise off | verdict |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (const Setting& s : settings) {
    dpsgd::audit::GradientCanaryAuditConfig config;
    config.noise_multiplier = s.sigma;
    config.sampling_rate = s.q;
    config.steps = s.steps;
    config.canaries = options.canaries;
    config.dataset_size = 500;
    config.delta = options.delta;
    config.seed = options.seed;
    const auto honest = dpsgd::audit::run_gradient_canary_audit(config);
    config.add_noise = false;
    const auto broken = dpsgd::audit::run_gradient_canary_audit(config);
    const bool honest_ok = honest.one_run.epsilon_lower_bound <= honest.claimed_epsilon &&
                           honest.threshold.epsilon_lower_bound <= honest.claimed_epsilon;
    const bool caught = broken.one_run.epsilon_lower_bound > broken.claimed_epsilon ||
                        broken.threshold.epsilon_lower_bound > broken.claimed_epsilon;
    std::printf("| %.2g | %.2g | %lld | %.3f | %.3f (%lld/%lld) | %.3f | %.3f (%lld/%lld) | %.3f | %s |\n", s.sigma,
                s.q, static_cast<long long>(s.steps), honest.claimed_epsilon, honest.one_run.epsilon_lower_bound,
                static_cast<long long>(honest.one_run.correct), static_cast<long long>(honest.one_run.guesses),
                honest.threshold.epsilon_lower_bound, broken.one_run.epsilon_lower_bound,
                static_cast<long long>(broken.one_run.correct), static_cast<long long>(broken.one_run.guesses),
                broken.threshold.epsilon_lower_bound,
                !honest_ok ? "VIOLATION: bound above the claim"
                : caught   ? "ok; broken run caught"
                           : "ok; broken run not caught (claim above what the canaries can show)");
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"audit_dpsgd: white-box mechanism audit and gradient-canary epsilon lower bounds for DP-SGD"};
  Options options;
  app.add_option("--canaries", options.canaries, "canaries per run, each inserted with probability 1/2")
      ->check(CLI::Range(2, 1000000));
  app.add_option("--seed", options.seed, "seed of the audit runs (they are experiments: reproducible by design)");
  app.add_option("--delta", options.delta, "delta of the claimed guarantee")->check(CLI::Range(1e-300, 0.5));
  app.add_option("--inject-bug", options.bug,
                 "plant a bug in the audited mechanism: none, half-noise, double-clip, no-truncation-charge, "
                 "gram-cancellation (the audit must then fail)");
  app.add_flag("!--no-canaries", options.canary_table, "skip the gradient-canary table (the slow part)");
  CLI11_PARSE(app, argc, argv);
  try {
    const bool passed = print_mechanism_audit(options);
    if (options.canary_table) print_canary_audit(options);
    return passed ? 0 : 1;
  } catch (const dpsgd::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
