// libFuzzer target: the training-checkpoint loader, raw (byte 0 even) or re-signed at every level
// (byte 0 odd) so that mutations reach the type and range checks. A loaded checkpoint must round-trip.
#include <cmath>
#include <cstdint>
#include <string_view>

#include "dpsgd/core/error.hpp"
#include "dpsgd/optim/checkpoint.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  try {
    dpsgd::TrainingCheckpoint checkpoint;
    if (data[0] % 2 == 0) {
      checkpoint = dpsgd::checkpoint_from_string(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
    } else {
      nlohmann::json document = nlohmann::json::parse(data + 1, data + size, nullptr, false);
      if (document.is_discarded()) return 0;
      dpsgd::fuzz::resign(document);
      checkpoint = dpsgd::checkpoint_from_string(document.dump());
    }
    for (const float p : checkpoint.params) dpsgd::fuzz::require(std::isfinite(p), "parameters are finite");
    for (const double v : checkpoint.optimizer_state)
      dpsgd::fuzz::require(std::isfinite(v), "optimiser state is finite");
    dpsgd::fuzz::require(checkpoint.next_step <= checkpoint.ledger.next_step(), "applied steps were charged");
    const dpsgd::TrainingCheckpoint again = dpsgd::checkpoint_from_string(dpsgd::checkpoint_to_string(checkpoint));
    dpsgd::fuzz::require(again.params == checkpoint.params && again.seed == checkpoint.seed,
                         "a loaded checkpoint round-trips");
  } catch (const dpsgd::FormatError&) {
  }
  return 0;
}
