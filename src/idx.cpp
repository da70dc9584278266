// IDX reader: header and size checks, transparent gzip through zlib.
#include "dpsgd/data/idx.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include "dpsgd/core/error.hpp"

namespace dpsgd {
namespace {

[[noreturn]] void bad_file(const std::string& path, const std::string& what) {
  throw FormatError("dpsgd: " + path + " is not a valid IDX file: " + what);
}

// Reads exactly `size` bytes, or reports how many there were.
std::size_t read_some(gzFile file, const std::string& path, void* buffer, std::size_t size) {
  std::size_t total = 0;
  auto* bytes = static_cast<unsigned char*>(buffer);
  while (total < size) {
    const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(size - total, 1u << 30));
    const int got = gzread(file, bytes + total, chunk);
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file, &code);
      bad_file(path, std::string("corrupt compressed data (") + (message ? message : "zlib error") + ")");
    }
    if (got == 0) break;
    total += static_cast<std::size_t>(got);
  }
  return total;
}

class GzFile {
 public:
  // Opened without blocking and checked to be a regular file first: a FIFO or device named as a data
  // file would otherwise block the read forever or stream without end.
  explicit GzFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) throw IoError("dpsgd: cannot open " + path + ": " + std::strerror(errno));
    struct stat info {};
    if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
      ::close(fd);
      throw IoError("dpsgd: " + path + " is not a regular file");
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    file_ = gzdopen(fd, "rb");
    if (file_ == nullptr) {
      ::close(fd);
      throw IoError("dpsgd: cannot open " + path + ": " + (errno ? std::strerror(errno) : "unknown error"));
    }
  }
  ~GzFile() { gzclose(file_); }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;
  gzFile get() const { return file_; }

 private:
  gzFile file_;
};

}  // namespace

IdxArray read_idx(const std::string& path) {
  errno = 0;
  GzFile file(path);
  unsigned char magic[4];
  if (read_some(file.get(), path, magic, 4) != 4) bad_file(path, "shorter than its 4-byte magic number");
  if (magic[0] != 0 || magic[1] != 0) bad_file(path, "the magic number does not start with two zero bytes");
  if (magic[2] != 0x08) bad_file(path, "element type 0x" + std::to_string(magic[2]) + " is not 0x08 (unsigned byte)");
  const int ndims = magic[3];
  if (ndims < 1 || ndims > 4) bad_file(path, "it declares " + std::to_string(ndims) + " dimensions (1 to 4 supported)");
  IdxArray array;
  std::uint64_t total = 1;
  for (int d = 0; d < ndims; ++d) {
    unsigned char be[4];
    if (read_some(file.get(), path, be, 4) != 4)
      bad_file(path, "the header ends inside dimension " + std::to_string(d));
    const std::uint64_t size =
        (std::uint64_t{be[0]} << 24) | (std::uint64_t{be[1]} << 16) | (std::uint64_t{be[2]} << 8) | be[3];
    if (size == 0) bad_file(path, "dimension " + std::to_string(d) + " is zero");
    total *= size;
    if (total > (std::uint64_t{1} << 34)) bad_file(path, "it declares more than 2^34 values");
    array.dims.push_back(static_cast<std::int64_t>(size));
  }
  // Memory grows with the data actually read, never with what a (possibly hostile) header claims:
  // a 16-byte file declaring 2^34 values must not allocate 16 GiB before failing.
  constexpr std::size_t kChunk = std::size_t{1} << 24;
  std::size_t got = 0;
  while (got < total) {
    const std::size_t want = std::min<std::size_t>(kChunk, static_cast<std::size_t>(total) - got);
    array.values.resize(got + want);
    const std::size_t read = read_some(file.get(), path, array.values.data() + got, want);
    got += read;
    if (read < want) break;
  }
  array.values.resize(got);
  if (got != total) {
    bad_file(path, "truncated: the header promises " + std::to_string(total) + " values, the file holds " +
                       std::to_string(got));
  }
  unsigned char extra;
  if (read_some(file.get(), path, &extra, 1) != 0) bad_file(path, "it holds more data than its header declares");
  return array;
}

LabelledImages read_idx_images(const std::string& images_path, const std::string& labels_path, int num_classes) {
  DPSGD_CHECK_ARG(num_classes >= 2, "num_classes must be >= 2, got " << num_classes);
  const IdxArray images = read_idx(images_path);
  const IdxArray labels = read_idx(labels_path);
  if (images.dims.size() != 3)
    bad_file(images_path, "an image file has 3 dimensions, this one " + std::to_string(images.dims.size()));
  if (labels.dims.size() != 1)
    bad_file(labels_path, "a label file has 1 dimension, this one " + std::to_string(labels.dims.size()));
  if (images.dims[0] != labels.dims[0]) {
    throw FormatError("dpsgd: " + images_path + " holds " + std::to_string(images.dims[0]) + " images but " +
                      labels_path + " holds " + std::to_string(labels.dims[0]) + " labels");
  }
  LabelledImages out;
  out.height = images.dims[1];
  out.width = images.dims[2];
  const std::int64_t n = images.dims[0], pixels = out.height * out.width;
  out.images.resize(n, pixels);
  for (std::int64_t i = 0; i < n * pixels; ++i) out.images.data()[i] = static_cast<float>(images.values[i]) / 255.0f;
  out.labels.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const int label = labels.values[static_cast<std::size_t>(i)];
    if (label >= num_classes)
      bad_file(labels_path, "label " + std::to_string(label) + " of item " + std::to_string(i) + " is not below " +
                                std::to_string(num_classes));
    out.labels[static_cast<std::size_t>(i)] = label;
  }
  return out;
}

std::string find_idx_file(const std::string& directory, const std::string& name) {
  const std::filesystem::path base(directory);
  for (const std::string& candidate : {name, name + ".gz"}) {
    const auto path = base / candidate;
    if (std::filesystem::exists(path)) return path.string();
  }
  throw IoError("dpsgd: neither " + (base / name).string() + " nor " + (base / (name + ".gz")).string() +
                " exists (install the Debian package dataset-fashion-mnist, or pass --data-dir)");
}

}  // namespace dpsgd
