// Atomic file replacement (temporary file + fsync + rename + directory fsync) and whole-file reads.
#include "dpsgd/core/atomic_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
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

// Writes `content` to a fresh temporary file beside `path`, fsynced; returns its name.
std::string write_temporary(const std::string& path, const std::string& content) {
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
  return temporary;
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& content) {
  if (path.empty()) throw InvalidArgument("dpsgd::write_file_atomically: path must not be empty");
  const std::string temporary = write_temporary(path, content);
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    ::unlink(temporary.c_str());
    fail("rename", path);
  }
  sync_directory(directory_of(path));
}

void create_file_atomically(const std::string& path, const std::string& content) {
  if (path.empty()) throw InvalidArgument("dpsgd::create_file_atomically: path must not be empty");
  const std::string temporary = write_temporary(path, content);
  // link() fails with EEXIST instead of replacing, atomically, unlike rename().
  if (::link(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    errno = error;
    if (error == EEXIST) throw FileExists("dpsgd: " + path + " already exists; it is not replaced");
    fail("link", path);
  }
  ::unlink(temporary.c_str());
  sync_directory(directory_of(path));
}

FileLock::FileLock(const std::string& path) {
  const std::string lock_path = path + ".lock";
  fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd_ < 0) fail("creating the lock file", lock_path);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    if (error == EWOULDBLOCK) {
      throw IoError("dpsgd: " + path + " is in use by another process (it holds " + lock_path + ")");
    }
    errno = error;
    fail("flock", lock_path);
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

void sync_directory(const std::string& directory) {
  const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void validate_output_file(const std::string& name, const std::string& path) {
  if (path.empty()) return;
  namespace fs = std::filesystem;
  const fs::path file(path);
  const fs::path parent = file.has_parent_path() ? file.parent_path() : fs::path(".");
  std::string problem;
  if (fs::is_directory(file)) {
    problem = "is a directory";
  } else if (!fs::is_directory(parent)) {
    problem = "its directory " + parent.string() + " does not exist";
  } else if (::access(parent.c_str(), W_OK) != 0) {
    problem = "its directory " + parent.string() + " is not writable";
  }
  if (!problem.empty()) throw InvalidArgument(name + " " + path + ": " + problem);
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
