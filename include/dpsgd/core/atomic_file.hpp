// write_file_atomically: replace a file so that readers see the old or the new content, never a mix.
#pragma once

#include <string>

namespace dpsgd {

// Writes `content` to a temporary file beside `path`, fsyncs it, renames it over `path` and fsyncs
// the directory, so a crash at any moment leaves either the old file or the new one. Throws
// dpsgd::IoError naming the path and the failing system call.
void write_file_atomically(const std::string& path, const std::string& content);

// The whole content of `path`; throws dpsgd::IoError if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace dpsgd
