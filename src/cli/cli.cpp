// The dpsgd command line (epsilon, delta, calibrate, plan; text or JSON) as a function over argument strings.
#include "cli.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "dpsgd/accounting/accountant.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/sampling/binomial_tail.hpp"

namespace {

// A bad flag value: one line on stderr naming the flag, exit status 2.
struct UsageError {
  std::string message;
};

[[noreturn]] void usage_error(const std::string& flag, const std::string& requirement, double value) {
  std::ostringstream out;
  out.precision(17);
  out << flag << " must be " << requirement << ", got " << value;
  throw UsageError{out.str()};
}

void check_sampling_rate(double q) {
  if (!(std::isfinite(q) && q > 0.0 && q <= 1.0)) usage_error("--sampling-rate", "in (0, 1]", q);
}
void check_noise_multiplier(double s) {
  if (!(std::isfinite(s) && s > 0.0)) usage_error("--noise-multiplier", "finite and > 0", s);
}
void check_delta(double d) {
  if (!(std::isfinite(d) && d >= 1e-300 && d < 1.0)) usage_error("--delta", "in [1e-300, 1)", d);
}
void check_epsilon(double e) {
  if (!(std::isfinite(e) && e > 0.0)) usage_error("--epsilon", "finite and > 0", e);
}
void check_steps(double t) {
  if (!(std::isfinite(t) && t >= 1.0 && t == std::floor(t) && t <= 1e12))
    usage_error("--steps", "an integer in [1, 1e12]", t);
}

struct CommonFlags {
  double sampling_rate = std::nan("");
  double noise_multiplier = std::nan("");
  double steps = std::nan("");
  double delta = std::nan("");
  double epsilon = std::nan("");
  std::string accountant = "pld";
  std::optional<double> dataset_size, batch_size;
  bool json = false;
};

// --sampling-rate and --steps, --noise-multiplier unless the command calibrates it, and the one of
// --delta / --epsilon the command takes as given.
void add_mechanism_flags(CLI::App* command, CommonFlags& flags, bool with_noise, bool given_delta) {
  command->add_option("--sampling-rate", flags.sampling_rate, "q in (0, 1]")->required();
  if (with_noise) command->add_option("--noise-multiplier", flags.noise_multiplier, "sigma > 0")->required();
  command->add_option("--steps", flags.steps, "T >= 1")->required();
  if (given_delta) {
    command->add_option("--delta", flags.delta, "delta in (0, 1)")->required();
  } else {
    command->add_option("--epsilon", flags.epsilon, "epsilon > 0")->required();
  }
}

void add_truncation_flags(CLI::App* command, CommonFlags& flags) {
  command->add_option("--dataset-size", flags.dataset_size,
                      "N: with --batch-size, account for Poisson batches truncated to capacity B (Chua et al. 2024)");
  command->add_option("--batch-size", flags.batch_size, "B: the fixed capacity batches are truncated to");
  command->add_option("--accountant", flags.accountant, "pld (default, tight) or rdp");
  command->add_flag("--json", flags.json, "print one JSON object on stdout");
}

// Validates the shared flags and returns the (possibly truncated) phase description.
dpsgd::AccountantOptions accountant_options(const CommonFlags& flags) {
  if (flags.accountant != "pld" && flags.accountant != "rdp") {
    throw UsageError{"--accountant must be pld or rdp, got " + flags.accountant};
  }
  dpsgd::AccountantOptions options;
  options.kind = dpsgd::parse_accountant_kind(flags.accountant);
  return options;
}

void truncation_of(const CommonFlags& flags, std::int64_t& dataset_size, std::int64_t& capacity) {
  dataset_size = capacity = 0;
  if (flags.dataset_size.has_value() != flags.batch_size.has_value()) {
    throw UsageError{"--dataset-size and --batch-size must be given together (truncated Poisson sampling)"};
  }
  if (!flags.dataset_size) return;
  const double n = *flags.dataset_size, b = *flags.batch_size;
  if (!(std::isfinite(n) && n >= 1.0 && n == std::floor(n) && n <= 9e15))
    usage_error("--dataset-size", "an integer >= 1", n);
  if (!(std::isfinite(b) && b >= 1.0 && b == std::floor(b) && b <= n))
    usage_error("--batch-size", "an integer in [1, dataset size]", b);
  dataset_size = static_cast<std::int64_t>(n);
  capacity = static_cast<std::int64_t>(b);
}

nlohmann::json base_json(const CommonFlags& flags, double q, std::int64_t steps, std::int64_t n, std::int64_t b) {
  nlohmann::json out = {{"sampling_rate", q}, {"steps", steps}, {"accountant", flags.accountant}};
  if (b > 0) {
    const dpsgd::TrainingPhase phase{q, 1.0, steps, n, b};
    out["dataset_size"] = n;
    out["batch_size"] = b;
    out["adjacency"] = "add/remove one example";
    out["truncation_probability"] = dpsgd::truncation_probability(std::span<const dpsgd::TrainingPhase>(&phase, 1));
  }
  return out;
}

void print(std::ostream& stream, const nlohmann::json& out, bool json, const std::string& text) {
  stream << (json ? out.dump() : text) << "\n";
}

// The accountant that produced an answer and, when there is one, the note saying why (a fallback
// from PLD to RDP, merged phases, a loose answer): the output says so.
void add_provenance(nlohmann::json& result, const dpsgd::AccountingAnswer& answer) {
  result["method"] = dpsgd::to_string(answer.method);
  if (!answer.note.empty()) result["note"] = answer.note;
}

std::string provenance(const CommonFlags& flags, const dpsgd::AccountingAnswer& answer) {
  std::string text = " (" + flags.accountant;
  if (dpsgd::to_string(answer.method) != flags.accountant) text += ", reporting " + dpsgd::to_string(answer.method);
  text += ")";
  if (!answer.note.empty()) text += "\nnote: " + answer.note;
  return text;
}

std::string format(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.6g", value);
  return buffer;
}

}  // namespace

namespace dpsgd::cli {

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err, bool validate_only) {
  CLI::App app{"dpsgd: privacy accounting for DP-SGD with Poisson sampling (add/remove adjacency)"};
  app.require_subcommand(1);
  CommonFlags flags;

  auto* eps_cmd = app.add_subcommand("epsilon", "epsilon for (sampling rate, noise multiplier, steps, delta)");
  add_mechanism_flags(eps_cmd, flags, true, true);
  add_truncation_flags(eps_cmd, flags);

  auto* delta_cmd = app.add_subcommand("delta", "delta for (sampling rate, noise multiplier, steps, epsilon)");
  add_mechanism_flags(delta_cmd, flags, true, false);
  add_truncation_flags(delta_cmd, flags);

  auto* cal_cmd = app.add_subcommand("calibrate", "the smallest noise multiplier meeting (epsilon, delta)");
  add_mechanism_flags(cal_cmd, flags, false, true);
  cal_cmd->add_option("--epsilon", flags.epsilon, "epsilon > 0")->required();
  add_truncation_flags(cal_cmd, flags);

  double plan_dataset = std::nan(""), epochs = std::nan("");
  std::vector<double> batch_sizes;
  std::optional<double> truncation_target;
  auto* plan_cmd = app.add_subcommand("plan", "noise, steps and capacity for each batch size at a privacy target");
  plan_cmd->add_option("--dataset-size", plan_dataset, "N >= 1")->required();
  plan_cmd->add_option("--epsilon", flags.epsilon, "epsilon > 0")->required();
  plan_cmd->add_option("--delta", flags.delta, "delta in (0, 1)")->required();
  plan_cmd->add_option("--epochs", epochs, "passes over the data (steps = epochs N / B)")->required();
  plan_cmd->add_option("--batch-sizes", batch_sizes, "expected batch sizes, e.g. 256,1024,4096")
      ->required()
      ->delimiter(',');
  plan_cmd->add_option(
      "--truncation-probability", truncation_target,
      "per-step probability that a batch overflows its capacity (default: the truncation charge is 1% of delta)");
  plan_cmd->add_option("--accountant", flags.accountant, "pld (default, tight) or rdp");
  plan_cmd->add_flag("--json", flags.json, "print one JSON object on stdout");

  std::vector<const char*> argv{"dpsgd"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    err << "error: " << e.what() << "\n";
    return 2;
  }

  try {
    const dpsgd::AccountantOptions options = accountant_options(flags);
    std::int64_t n = 0, b = 0;
    if (app.got_subcommand(eps_cmd)) {
      check_sampling_rate(flags.sampling_rate);
      check_noise_multiplier(flags.noise_multiplier);
      check_steps(flags.steps);
      check_delta(flags.delta);
      truncation_of(flags, n, b);
      if (validate_only) return 0;
      const auto steps = static_cast<std::int64_t>(flags.steps);
      const dpsgd::TrainingPhase phase{flags.sampling_rate, flags.noise_multiplier, steps, n, b};
      const dpsgd::AccountingAnswer answer =
          dpsgd::epsilon_answer(std::span<const dpsgd::TrainingPhase>(&phase, 1), flags.delta, options);
      const double epsilon = answer.value;
      nlohmann::json result = base_json(flags, flags.sampling_rate, steps, n, b);
      result["noise_multiplier"] = flags.noise_multiplier;
      result["delta"] = flags.delta;
      result["epsilon"] = std::isfinite(epsilon) ? nlohmann::json(epsilon) : nlohmann::json(nullptr);
      add_provenance(result, answer);
      print(out, result, flags.json,
            "epsilon = " + (std::isfinite(epsilon) ? format(epsilon) : std::string("inf")) +
                " at delta = " + format(flags.delta) + provenance(flags, answer));
    } else if (app.got_subcommand(delta_cmd)) {
      check_sampling_rate(flags.sampling_rate);
      check_noise_multiplier(flags.noise_multiplier);
      check_steps(flags.steps);
      check_epsilon(flags.epsilon);
      truncation_of(flags, n, b);
      if (validate_only) return 0;
      const auto steps = static_cast<std::int64_t>(flags.steps);
      const dpsgd::TrainingPhase phase{flags.sampling_rate, flags.noise_multiplier, steps, n, b};
      const dpsgd::AccountingAnswer answer =
          dpsgd::delta_answer(std::span<const dpsgd::TrainingPhase>(&phase, 1), flags.epsilon, options);
      nlohmann::json result = base_json(flags, flags.sampling_rate, steps, n, b);
      result["noise_multiplier"] = flags.noise_multiplier;
      result["epsilon"] = flags.epsilon;
      result["delta"] = answer.value;
      add_provenance(result, answer);
      print(out, result, flags.json,
            "delta = " + format(answer.value) + " at epsilon = " + format(flags.epsilon) + provenance(flags, answer));
    } else if (app.got_subcommand(cal_cmd)) {
      check_sampling_rate(flags.sampling_rate);
      check_steps(flags.steps);
      check_delta(flags.delta);
      check_epsilon(flags.epsilon);
      truncation_of(flags, n, b);
      if (validate_only) return 0;
      const auto steps = static_cast<std::int64_t>(flags.steps);
      const dpsgd::NoiseCalibration calibration =
          dpsgd::calibrate_noise(flags.sampling_rate, steps, flags.epsilon, flags.delta, options, n, b);
      const double sigma = calibration.noise_multiplier;
      const dpsgd::AccountingAnswer& answer = calibration.answer;
      nlohmann::json result = base_json(flags, flags.sampling_rate, steps, n, b);
      result["noise_multiplier"] = sigma;
      result["epsilon"] = answer.value;
      result["target_epsilon"] = flags.epsilon;
      result["delta"] = flags.delta;
      add_provenance(result, answer);
      print(out, result, flags.json,
            "noise_multiplier = " + format(sigma) + " gives epsilon = " + format(answer.value) +
                " <= " + format(flags.epsilon) + " at delta = " + format(flags.delta) + provenance(flags, answer));
    } else {
      check_epsilon(flags.epsilon);
      check_delta(flags.delta);
      if (!(std::isfinite(plan_dataset) && plan_dataset >= 1.0 && plan_dataset == std::floor(plan_dataset) &&
            plan_dataset <= 9e15)) {
        usage_error("--dataset-size", "an integer >= 1", plan_dataset);
      }
      if (!(std::isfinite(epochs) && epochs > 0.0 && epochs <= 1e6)) usage_error("--epochs", "in (0, 1e6]", epochs);
      if (truncation_target && !(*truncation_target > 0.0 && *truncation_target < 1.0)) {
        usage_error("--truncation-probability", "in (0, 1)", *truncation_target);
      }
      for (const double batch : batch_sizes) {
        if (!(std::isfinite(batch) && batch >= 1.0 && batch <= plan_dataset))
          usage_error("--batch-sizes", "in [1, dataset size]", batch);
      }
      if (validate_only) return 0;
      const auto dataset = static_cast<std::int64_t>(plan_dataset);
      nlohmann::json result = {{"dataset_size", dataset},        {"epsilon", flags.epsilon},
                               {"delta", flags.delta},           {"epochs", epochs},
                               {"accountant", flags.accountant}, {"plans", nlohmann::json::array()}};
      std::ostringstream table;
      table << "dataset " << dataset << ", epsilon " << format(flags.epsilon) << " at delta " << format(flags.delta)
            << ", " << format(epochs) << " epochs (" << flags.accountant << ", truncated Poisson sampling)\n";
      char line[256];
      std::snprintf(line, sizeof(line), "%10s %13s %10s %16s %12s %10s %14s\n", "batch", "sampling_rate", "steps",
                    "noise_multiplier", "sigma/batch", "capacity", "P[trunc]/step");
      table << line;
      for (const double batch : batch_sizes) {
        const double q = batch / plan_dataset;
        const double step_count = std::ceil(epochs * plan_dataset / batch);
        if (!(step_count <= 1e12)) {
          throw UsageError{"--epochs " + format(epochs) + " over " + format(plan_dataset) + " examples at batch size " +
                           format(batch) + " means " + format(step_count) + " steps, more than the 1e12 supported"};
        }
        const auto steps = static_cast<std::int64_t>(step_count);
        // Default capacity: the library's rule, a truncation charge of 1% of delta.
        const dpsgd::TruncationCapacity capacity =
            truncation_target ? dpsgd::capacity_for_truncation_probability(dataset, q, *truncation_target)
                              : dpsgd::capacity_for_delta_share(dataset, q, steps, flags.epsilon, flags.delta);
        const std::int64_t cap = std::min<std::int64_t>(capacity.capacity, dataset);
        const double sigma = dpsgd::calibrate_noise_multiplier(q, steps, flags.epsilon, flags.delta, options,
                                                               cap < dataset ? dataset : 0, cap < dataset ? cap : 0);
        result["plans"].push_back({{"batch_size", batch},
                                   {"sampling_rate", q},
                                   {"steps", steps},
                                   {"noise_multiplier", sigma},
                                   {"noise_batch_ratio", sigma / batch},
                                   {"capacity", cap},
                                   {"truncation_probability", capacity.truncation_probability}});
        std::snprintf(line, sizeof(line), "%10.0f %13.6g %10lld %16.6g %12.4g %10lld %14.3g\n", batch, q,
                      static_cast<long long>(steps), sigma, sigma / batch, static_cast<long long>(cap),
                      capacity.truncation_probability);
        table << line;
      }
      std::string text = table.str();
      text.pop_back();
      print(out, result, flags.json, text);
    }
  } catch (const UsageError& e) {
    err << "error: " << e.message << "\n";
    return 2;
  } catch (const dpsgd::InvalidArgument& e) {
    err << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    err << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace dpsgd::cli
