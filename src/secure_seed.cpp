// The OS-CSPRNG seed source: getrandom(2) with a /dev/urandom fallback, failing loudly otherwise.
#include "dpsgd/noise/secure_seed.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "dpsgd/core/atomic_file.hpp"
#include "dpsgd/core/error.hpp"

namespace dpsgd {

std::uint64_t secure_random_seed() {
  std::uint64_t seed = 0;
  auto* bytes = reinterpret_cast<unsigned char*>(&seed);
  std::size_t filled = 0;
  while (filled < sizeof(seed)) {
    const ssize_t got = getrandom(bytes + filled, sizeof(seed) - filled, 0);
    if (got > 0) {
      filled += static_cast<std::size_t>(got);
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // ENOSYS on old kernels, or a seccomp filter: try the device file instead.
    }
  }
  if (filled == sizeof(seed)) return seed;

  std::ifstream urandom("/dev/urandom", std::ios::binary);
  if (urandom.read(reinterpret_cast<char*>(&seed), sizeof(seed))) return seed;
  throw IoError(std::string("dpsgd::secure_random_seed: neither getrandom(2) nor /dev/urandom produced 8 bytes (") +
                std::strerror(errno) + ")");
}

void create_seed_file(const std::string& path, std::uint64_t seed) {
  create_file_atomically(path, std::to_string(seed) + "\n");  // mkstemp makes it mode 0600
}

std::uint64_t read_seed_file(const std::string& path) {
  const std::string text = read_file(path);
  std::size_t used = 0;
  std::uint64_t value = 0;
  try {
    value = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || text.find_first_not_of(" \n", used) != std::string::npos || text.find('-') != std::string::npos)
    throw FormatError("dpsgd: seed file " + path + " refused: it does not hold one unsigned integer");
  return value;
}

}  // namespace dpsgd
