// write_file_atomically: replace a file so that readers see the old or the new content, never a mix.
#pragma once

#include <string>

namespace dpsgd {

// Writes `content` to a temporary file beside `path`, fsyncs it, renames it over `path` and fsyncs
// the directory, so a crash at any moment leaves either the old file or the new one. Throws
// dpsgd::IoError naming the path and the failing system call.
void write_file_atomically(const std::string& path, const std::string& content);

// Like write_file_atomically, but never replaces: if `path` exists (or appears meanwhile), throws
// dpsgd::FileExists and leaves it untouched. The file appears whole or not at all.
void create_file_atomically(const std::string& path, const std::string& content);

// An exclusive advisory lock (flock) on `path` + ".lock", held until destruction, so that a second
// process cannot work on the same file. Throws dpsgd::IoError naming the file when another process
// holds it, or when the lock file cannot be created. The lock file is left in place (removing it
// would race with a process about to lock it).
class FileLock {
 public:
  explicit FileLock(const std::string& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

// fsyncs `directory`, so that entries created or renamed in it survive a crash (best effort: a
// directory that cannot be opened is skipped).
void sync_directory(const std::string& directory);

// Checks, before any work, that `path` can be written as an output file later: not a directory, in
// an existing writable directory. Throws dpsgd::InvalidArgument naming `name` (a flag or parameter),
// the path and the problem. An empty path means "not requested" and passes.
void validate_output_file(const std::string& name, const std::string& path);

// The whole content of `path`; throws dpsgd::IoError if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace dpsgd
