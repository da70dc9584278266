// JsonFields: strict, typed reading of JSON objects from untrusted files (ledgers, checkpoints).
// Every failure is a dpsgd::FormatError naming the field; nothing converts out of range silently.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "dpsgd/core/error.hpp"

namespace dpsgd {

class JsonFields {
 public:
  // `where` names the object in messages ("the ledger", "phases[3]"); `prefix` starts every message.
  JsonFields(const nlohmann::json& object, std::string where, std::string prefix)
      : object_(object), where_(std::move(where)), prefix_(std::move(prefix)) {
    if (!object_.is_object()) fail(where_ + " is not a JSON object");
  }

  [[noreturn]] void fail(const std::string& what) const { throw FormatError(prefix_ + what); }

  const nlohmann::json& value(const char* key) const {
    const auto it = object_.find(key);
    if (it == object_.end()) fail(where_ + " has no \"" + key + "\"");
    return *it;
  }

  std::string string(const char* key) const {
    const nlohmann::json& v = value(key);
    if (!v.is_string()) wrong_type(key, "a string");
    return v.get<std::string>();
  }

  bool boolean(const char* key) const {
    const nlohmann::json& v = value(key);
    if (!v.is_boolean()) wrong_type(key, "true or false");
    return v.get<bool>();
  }

  // Any JSON number, as a finite double.
  double number(const char* key) const {
    const nlohmann::json& v = value(key);
    if (!v.is_number()) wrong_type(key, "a number");
    const double d = v.get<double>();
    if (!std::isfinite(d)) wrong_type(key, "a finite number");
    return d;
  }

  // A JSON integer (not a float, however round) in [min, max].
  std::int64_t integer(const char* key, std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                       std::int64_t max = std::numeric_limits<std::int64_t>::max()) const {
    const nlohmann::json& v = value(key);
    if (!v.is_number_integer()) wrong_type(key, "an integer");
    if (v.is_number_unsigned() &&
        v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      out_of_range(key, min, max);
    const std::int64_t i = v.get<std::int64_t>();
    if (i < min || i > max) out_of_range(key, min, max);
    return i;
  }

  std::uint64_t unsigned_integer(const char* key) const {
    const nlohmann::json& v = value(key);
    if (!v.is_number_integer()) wrong_type(key, "an integer");
    if (!v.is_number_unsigned() && v.get<std::int64_t>() < 0) wrong_type(key, "a non-negative integer");
    return v.get<std::uint64_t>();
  }

  const nlohmann::json& array(const char* key) const {
    const nlohmann::json& v = value(key);
    if (!v.is_array()) wrong_type(key, "an array");
    return v;
  }

 private:
  [[noreturn]] void wrong_type(const char* key, const char* expected) const {
    fail(where_ + " has a \"" + key + "\" that is not " + expected);
  }
  [[noreturn]] void out_of_range(const char* key, std::int64_t min, std::int64_t max) const {
    fail(where_ + " has a \"" + key + "\" outside [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }

  const nlohmann::json& object_;
  std::string where_;
  std::string prefix_;
};

}  // namespace dpsgd
