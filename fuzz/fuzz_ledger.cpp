// libFuzzer target: the privacy ledger loader. Byte 0 picks raw bytes from a file (checksum and all)
// or a re-signed JSON document (reaching the field checks); a loaded ledger must round-trip.
#include <cstdint>

#include "dpsgd/accounting/privacy_ledger.hpp"
#include "dpsgd/core/error.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  try {
    dpsgd::PrivacyLedger ledger;
    if (data[0] % 2 == 0) {
      ledger = dpsgd::PrivacyLedger::load(dpsgd::fuzz::write_scratch_file(data + 1, size - 1, ".ledger.json"));
    } else {
      nlohmann::json document = nlohmann::json::parse(data + 1, data + size, nullptr, false);
      if (document.is_discarded()) return 0;
      dpsgd::fuzz::resign(document);
      ledger = dpsgd::PrivacyLedger::from_json(document);
    }
    const dpsgd::PrivacyLedger again = dpsgd::PrivacyLedger::from_json(ledger.to_json());
    dpsgd::fuzz::require(again.next_step() == ledger.next_step() && again.steps() == ledger.steps(),
                         "a loaded ledger round-trips");
    dpsgd::fuzz::require(ledger.steps() >= 0 && static_cast<std::uint64_t>(ledger.steps()) <= ledger.next_step(),
                         "charged steps never exceed next_step");
  } catch (const dpsgd::FormatError&) {
  } catch (const dpsgd::IoError&) {
  }
  return 0;
}
