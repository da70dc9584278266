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

#include "dpsgd/accounting/calibration.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/validate.hpp"
#include "dpsgd/sampling/binomial_tail.hpp"

namespace {

// A usage problem the library's validators do not cover (flags given together, an unknown name): one
// line on stderr, exit status 2, as for an InvalidArgument from a validator.
struct UsageError {
  std::string message;
};

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

// The truncation of the query: (N, B) when both flags are given, (0, 0) when neither is.
void truncation_of(const CommonFlags& flags, std::int64_t& dataset_size, std::int64_t& capacity) {
  dataset_size = capacity = 0;
  if (flags.dataset_size.has_value() != flags.batch_size.has_value()) {
    throw UsageError{"--dataset-size and --batch-size must be given together (truncated Poisson sampling)"};
  }
  if (!flags.dataset_size) return;
  dataset_size = dpsgd::validate_count("--dataset-size", *flags.dataset_size, 1.0, 9e15);
  capacity = dpsgd::validate_count("--batch-size", *flags.batch_size, 1.0, static_cast<double>(dataset_size));
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

// The four subcommands and the flags they fill.
struct Commands {
  CLI::App app{"dpsgd: privacy accounting for DP-SGD with Poisson sampling (add/remove adjacency)"};
  CommonFlags flags;
  double plan_dataset = std::nan(""), epochs = std::nan("");
  std::vector<double> batch_sizes;
  std::optional<double> truncation_target;
  CLI::App *epsilon = nullptr, *delta = nullptr, *calibrate = nullptr, *plan = nullptr;
};

void define_commands(Commands& c) {
  c.app.require_subcommand(1);
  c.epsilon = c.app.add_subcommand("epsilon", "epsilon for (sampling rate, noise multiplier, steps, delta)");
  add_mechanism_flags(c.epsilon, c.flags, true, true);
  add_truncation_flags(c.epsilon, c.flags);

  c.delta = c.app.add_subcommand("delta", "delta for (sampling rate, noise multiplier, steps, epsilon)");
  add_mechanism_flags(c.delta, c.flags, true, false);
  add_truncation_flags(c.delta, c.flags);

  c.calibrate = c.app.add_subcommand("calibrate", "the smallest noise multiplier meeting (epsilon, delta)");
  add_mechanism_flags(c.calibrate, c.flags, false, true);
  c.calibrate->add_option("--epsilon", c.flags.epsilon, "epsilon > 0")->required();
  add_truncation_flags(c.calibrate, c.flags);

  c.plan = c.app.add_subcommand("plan", "noise, steps and capacity for each batch size at a privacy target");
  c.plan->add_option("--dataset-size", c.plan_dataset, "N >= 1")->required();
  c.plan->add_option("--epsilon", c.flags.epsilon, "epsilon > 0")->required();
  c.plan->add_option("--delta", c.flags.delta, "delta in (0, 1)")->required();
  c.plan->add_option("--epochs", c.epochs, "passes over the data (steps = epochs N / B)")->required();
  c.plan->add_option("--batch-sizes", c.batch_sizes, "expected batch sizes, e.g. 256,1024,4096")
      ->required()
      ->delimiter(',');
  c.plan->add_option(
      "--truncation-probability", c.truncation_target,
      "per-step probability that a batch overflows its capacity (default: the truncation charge is 1% of delta)");
  c.plan->add_option("--accountant", c.flags.accountant, "pld (default, tight) or rdp");
  c.plan->add_flag("--json", c.flags.json, "print one JSON object on stdout");
}

// What an accounting query is about, checked: one phase of T steps, possibly truncated.
dpsgd::TrainingPhase checked_phase(const CommonFlags& flags, bool with_noise) {
  dpsgd::validate_sampling_rate(flags.sampling_rate, "--sampling-rate");
  if (with_noise) dpsgd::validate_accounted_noise_multiplier(flags.noise_multiplier, "--noise-multiplier");
  dpsgd::TrainingPhase phase;
  phase.sampling_rate = flags.sampling_rate;
  phase.noise_multiplier = with_noise ? flags.noise_multiplier : 1.0;
  phase.steps = dpsgd::validate_count("--steps", flags.steps, 1.0, 1e12);
  truncation_of(flags, phase.dataset_size, phase.capacity);
  return phase;
}

// Every flag of the chosen subcommand, checked before any accounting.
void check_flags(const Commands& c) {
  accountant_options(c.flags);
  if (c.app.got_subcommand(c.epsilon) || c.app.got_subcommand(c.delta) || c.app.got_subcommand(c.calibrate)) {
    checked_phase(c.flags, !c.app.got_subcommand(c.calibrate));
    if (!c.app.got_subcommand(c.delta)) dpsgd::validate_delta(c.flags.delta, "--delta");
    if (!c.app.got_subcommand(c.epsilon)) dpsgd::validate_epsilon(c.flags.epsilon, "--epsilon");
    return;
  }
  dpsgd::validate_epsilon(c.flags.epsilon, "--epsilon");
  dpsgd::validate_delta(c.flags.delta, "--delta");
  dpsgd::validate_count("--dataset-size", c.plan_dataset, 1.0, 9e15);
  if (!(std::isfinite(c.epochs) && c.epochs > 0.0 && c.epochs <= 1e6))
    dpsgd::throw_invalid_value("--epochs", "in (0, 1e6]", c.epochs);
  if (c.truncation_target && !(*c.truncation_target > 0.0 && *c.truncation_target < 1.0))
    dpsgd::throw_invalid_value("--truncation-probability", "in (0, 1)", *c.truncation_target);
  for (const double batch : c.batch_sizes) {
    if (!(std::isfinite(batch) && batch >= 1.0 && batch <= c.plan_dataset))
      dpsgd::throw_invalid_value("--batch-sizes", "in [1, dataset size]", batch);
  }
}

void epsilon_command(const CommonFlags& flags, std::ostream& out) {
  const dpsgd::TrainingPhase phase = checked_phase(flags, true);
  const dpsgd::AccountingAnswer answer =
      dpsgd::epsilon_answer(std::span<const dpsgd::TrainingPhase>(&phase, 1), flags.delta, accountant_options(flags));
  const double epsilon = answer.value;
  nlohmann::json result = base_json(flags, phase.sampling_rate, phase.steps, phase.dataset_size, phase.capacity);
  result["noise_multiplier"] = flags.noise_multiplier;
  result["delta"] = flags.delta;
  result["epsilon"] = std::isfinite(epsilon) ? nlohmann::json(epsilon) : nlohmann::json(nullptr);
  add_provenance(result, answer);
  print(out, result, flags.json,
        "epsilon = " + (std::isfinite(epsilon) ? format(epsilon) : std::string("inf")) +
            " at delta = " + format(flags.delta) + provenance(flags, answer));
}

void delta_command(const CommonFlags& flags, std::ostream& out) {
  const dpsgd::TrainingPhase phase = checked_phase(flags, true);
  const dpsgd::AccountingAnswer answer =
      dpsgd::delta_answer(std::span<const dpsgd::TrainingPhase>(&phase, 1), flags.epsilon, accountant_options(flags));
  nlohmann::json result = base_json(flags, phase.sampling_rate, phase.steps, phase.dataset_size, phase.capacity);
  result["noise_multiplier"] = flags.noise_multiplier;
  result["epsilon"] = flags.epsilon;
  result["delta"] = answer.value;
  add_provenance(result, answer);
  print(out, result, flags.json,
        "delta = " + format(answer.value) + " at epsilon = " + format(flags.epsilon) + provenance(flags, answer));
}

void calibrate_command(const CommonFlags& flags, std::ostream& out) {
  const dpsgd::TrainingPhase phase = checked_phase(flags, false);
  const dpsgd::NoiseCalibration calibration = dpsgd::calibrate_noise({.sampling_rate = phase.sampling_rate,
                                                                      .steps = phase.steps,
                                                                      .epsilon = flags.epsilon,
                                                                      .delta = flags.delta,
                                                                      .dataset_size = phase.dataset_size,
                                                                      .capacity = phase.capacity,
                                                                      .options = accountant_options(flags)});
  const double sigma = calibration.noise_multiplier;
  const dpsgd::AccountingAnswer& answer = calibration.answer;
  nlohmann::json result = base_json(flags, phase.sampling_rate, phase.steps, phase.dataset_size, phase.capacity);
  result["noise_multiplier"] = sigma;
  result["epsilon"] = answer.value;
  result["target_epsilon"] = flags.epsilon;
  result["delta"] = flags.delta;
  add_provenance(result, answer);
  print(out, result, flags.json,
        "noise_multiplier = " + format(sigma) + " gives epsilon = " + format(answer.value) +
            " <= " + format(flags.epsilon) + " at delta = " + format(flags.delta) + provenance(flags, answer));
}

// One row of `plan`: the steps, capacity and calibrated sigma for one expected batch size.
nlohmann::json plan_row(const Commands& c, std::int64_t dataset, double batch) {
  const double q = batch / c.plan_dataset;
  const double step_count = std::ceil(c.epochs * c.plan_dataset / batch);
  if (!(step_count <= 1e12)) {
    throw UsageError{"--epochs " + format(c.epochs) + " over " + format(c.plan_dataset) + " examples at batch size " +
                     format(batch) + " means " + format(step_count) + " steps, more than the 1e12 supported"};
  }
  const auto steps = static_cast<std::int64_t>(step_count);
  // Default capacity: the library's rule, a truncation charge of 1% of delta.
  const dpsgd::TruncationCapacity capacity =
      c.truncation_target ? dpsgd::capacity_for_truncation_probability(dataset, q, *c.truncation_target)
                          : dpsgd::capacity_for_delta_share(dataset, q, steps, c.flags.epsilon, c.flags.delta);
  const std::int64_t cap = std::min<std::int64_t>(capacity.capacity, dataset);
  const double sigma = dpsgd::calibrate_noise({.sampling_rate = q,
                                               .steps = steps,
                                               .epsilon = c.flags.epsilon,
                                               .delta = c.flags.delta,
                                               .dataset_size = cap < dataset ? dataset : 0,
                                               .capacity = cap < dataset ? cap : 0,
                                               .options = accountant_options(c.flags)})
                           .noise_multiplier;
  return {{"batch_size", batch},
          {"sampling_rate", q},
          {"steps", steps},
          {"noise_multiplier", sigma},
          {"noise_batch_ratio", sigma / batch},
          {"capacity", cap},
          {"truncation_probability", capacity.truncation_probability}};
}

void plan_command(const Commands& c, std::ostream& out) {
  const CommonFlags& flags = c.flags;
  const auto dataset = static_cast<std::int64_t>(c.plan_dataset);
  nlohmann::json result = {{"dataset_size", dataset},        {"epsilon", flags.epsilon},
                           {"delta", flags.delta},           {"epochs", c.epochs},
                           {"accountant", flags.accountant}, {"plans", nlohmann::json::array()}};
  std::ostringstream table;
  table << "dataset " << dataset << ", epsilon " << format(flags.epsilon) << " at delta " << format(flags.delta) << ", "
        << format(c.epochs) << " epochs (" << flags.accountant << ", truncated Poisson sampling)\n";
  char line[256];
  std::snprintf(line, sizeof(line), "%10s %13s %10s %16s %12s %10s %14s", "batch", "sampling_rate", "steps",
                "noise_multiplier", "sigma/batch", "capacity", "P[trunc]/step");
  table << line;
  for (const double batch : c.batch_sizes) {
    const nlohmann::json row = plan_row(c, dataset, batch);
    result["plans"].push_back(row);
    std::snprintf(line, sizeof(line), "\n%10.0f %13.6g %10lld %16.6g %12.4g %10lld %14.3g", batch,
                  row["sampling_rate"].get<double>(), row["steps"].get<long long>(),
                  row["noise_multiplier"].get<double>(), row["noise_batch_ratio"].get<double>(),
                  row["capacity"].get<long long>(), row["truncation_probability"].get<double>());
    table << line;
  }
  print(out, result, flags.json, table.str());
}

void execute(const Commands& c, std::ostream& out) {
  if (c.app.got_subcommand(c.epsilon)) return epsilon_command(c.flags, out);
  if (c.app.got_subcommand(c.delta)) return delta_command(c.flags, out);
  if (c.app.got_subcommand(c.calibrate)) return calibrate_command(c.flags, out);
  plan_command(c, out);
}

}  // namespace

namespace dpsgd::cli {

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err, bool validate_only) {
  Commands commands;
  define_commands(commands);
  std::vector<const char*> argv{"dpsgd"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  try {
    commands.app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::CallForHelp& e) {
    return commands.app.exit(e, out, err);
  } catch (const CLI::CallForAllHelp& e) {
    return commands.app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    err << "error: " << e.what() << "\n";
    return 2;
  }
  try {
    check_flags(commands);
    if (!validate_only) execute(commands, out);
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
