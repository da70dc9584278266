// Atomic file replacement (temporary file + fsync + rename + directory fsync) and whole-file reads.
#include "dpsgd/core/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "dpsgd/core/error.hpp"

namespace dpsgd {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw IoError("dpsgd: " + what + " failed for " + path + ": " + std::strerror(errno));
}

std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& content) {
  if (path.empty()) throw InvalidArgument("dpsgd::write_file_atomically: path must not be empty");
  std::string pattern = path + ".tmp.XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  const int fd = mkstemp(name.data());
  if (fd < 0) fail("creating a temporary file", path);
  const std::string temporary(name.data());
  std::size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      ::unlink(temporary.c_str());
      fail("write", temporary);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    ::unlink(temporary.c_str());
    fail("fsync", temporary);
  }
  if (::close(fd) != 0) {
    ::unlink(temporary.c_str());
    fail("close", temporary);
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    ::unlink(temporary.c_str());
    fail("rename", path);
  }
  // The rename is durable only once the directory entry is on disk.
  const int dir = ::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("opening", path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) fail("reading", path);
  return buffer.str();
}

}  // namespace dpsgd
