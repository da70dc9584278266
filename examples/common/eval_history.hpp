// EvalPoint: the held-out evaluations of a training example, kept in its checkpoints so a resumed run
// extends its curve.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "svg_plot.hpp"

namespace dpsgd_example {

struct EvalPoint {
  std::int64_t step;
  double value;    // the held-out figure (test accuracy, bits per character)
  double epsilon;  // spent by then; infinite without privacy
};

// In a checkpoint: {"history": [[step, value, epsilon or null], ...]} (JSON has no inf).
inline nlohmann::json history_to_json(const std::vector<EvalPoint>& history) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& e : history) {
    rows.push_back({e.step, e.value, std::isfinite(e.epsilon) ? nlohmann::json(e.epsilon) : nlohmann::json()});
  }
  return {{"history", rows}};
}

// The history a checkpoint holds (none for a run stopped before its first); throws dpsgd::FormatError
// for a malformed one.
inline std::vector<EvalPoint> history_from_json(const nlohmann::json& extra) {
  std::vector<EvalPoint> history;
  const auto rows = extra.find("history");
  if (rows == extra.end()) return history;
  const auto bad = [](const std::string& what) { throw dpsgd::FormatError("checkpoint refused: " + what); };
  if (!rows->is_array()) bad("its evaluation history is not a list");
  for (const auto& e : *rows) {
    if (!e.is_array() || e.size() != 3 || !e[0].is_number_integer() || !e[1].is_number() ||
        !(e[2].is_number() || e[2].is_null()))
      bad("an evaluation history entry is malformed: " + e.dump());
    history.push_back({e[0].get<std::int64_t>(), e[1].get<double>(),
                       e[2].is_null() ? std::numeric_limits<double>::infinity() : e[2].get<double>()});
  }
  return history;
}

// An SVG of the held-out figure (titled `value_title`) and the epsilon spent, against training steps.
inline std::string history_plot(const std::vector<EvalPoint>& history, const std::string& value_title, double delta) {
  char eps_title[96];
  std::snprintf(eps_title, sizeof(eps_title), "Epsilon spent (PLD, delta = %g)", delta);
  Series value{value_title, "#1f77b4", {}, {}}, eps{eps_title, "#d62728", {}, {}};
  for (const auto& e : history) {
    value.x.push_back(static_cast<double>(e.step));
    value.y.push_back(e.value);
    eps.x.push_back(static_cast<double>(e.step));
    eps.y.push_back(std::isfinite(e.epsilon) ? e.epsilon : 0.0);
  }
  return svg_line_charts({value, eps}, "training step");
}

}  // namespace dpsgd_example
