// Tests of the IDX reader: plain and gzip files, and every way a file can be wrong.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "dpsgd/data/idx.hpp"

namespace dpsgd {
namespace {

namespace fs = std::filesystem;

std::string idx_bytes(std::uint8_t type, const std::vector<std::uint32_t>& dims,
                      const std::vector<std::uint8_t>& values) {
  std::string out{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (std::uint32_t d : dims) {
    for (int shift : {24, 16, 8, 0}) out.push_back(static_cast<char>((d >> shift) & 0xff));
  }
  out.append(values.begin(), values.end());
  return out;
}

class IdxFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dpsgd_idx_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes, bool gzip = false) {
    const std::string path = (dir_ / name).string();
    if (gzip) {
      gzFile f = gzopen(path.c_str(), "wb");
      gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
      gzclose(f);
    } else {
      std::ofstream(path, std::ios::binary) << bytes;
    }
    return path;
  }
  fs::path dir_;
};

TEST_F(IdxFiles, ReadsPlainAndGzipImagesWithLabels) {
  std::vector<std::uint8_t> pixels(3 * 2 * 2);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i * 20);
  for (bool gzip : {false, true}) {
    const std::string images = write(gzip ? "img.gz" : "img", idx_bytes(0x08, {3, 2, 2}, pixels), gzip);
    const std::string labels = write(gzip ? "lab.gz" : "lab", idx_bytes(0x08, {3}, {7, 0, 9}), gzip);
    const LabelledImages data = read_idx_images(images, labels);
    EXPECT_EQ(data.images.rows(), 3);
    EXPECT_EQ(data.images.cols(), 4);
    EXPECT_EQ(data.height, 2);
    EXPECT_FLOAT_EQ(data.images(1, 1), 100.0f / 255.0f);
    EXPECT_EQ(data.labels, (std::vector<std::int32_t>{7, 0, 9}));
  }
  EXPECT_EQ(find_idx_file(dir_.string(), "img"), (dir_ / "img").string());
  fs::remove(dir_ / "img");
  EXPECT_EQ(find_idx_file(dir_.string(), "img"), (dir_ / "img.gz").string());
  EXPECT_THROW(find_idx_file(dir_.string(), "nothing"), IoError);
}

// A 16-byte file whose header claims 2^34 values (16 GiB) must be refused as truncated without
// allocating what the header claims: memory grows only with the bytes actually read.
TEST_F(IdxFiles, HugeHeaderClaimFailsWithoutAllocatingIt) {
  const std::string path = write("huge", idx_bytes(0x08, {65536, 65536, 4}, {1, 2, 3}));
  try {
    read_idx(path);
    FAIL() << "a truncated file was accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

TEST_F(IdxFiles, AFifoOrDirectoryIsRefusedWithoutBlocking) {
  const std::string fifo = (dir_ / "images.fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Opening a FIFO for reading blocks until a writer appears; the reader must refuse it at once.
  EXPECT_THROW(read_idx(fifo), IoError);
  EXPECT_THROW(read_idx(dir_.string()), IoError);
}

TEST_F(IdxFiles, RefusesBrokenFiles) {
  const std::string good = idx_bytes(0x08, {2, 2, 2}, std::vector<std::uint8_t>(8, 1));
  EXPECT_THROW(read_idx((dir_ / "missing").string()), IoError);
  EXPECT_THROW(read_idx(write("empty", "")), FormatError);
  EXPECT_THROW(read_idx(write("short_header", good.substr(0, 6))), FormatError);
  EXPECT_THROW(read_idx(write("truncated", good.substr(0, good.size() - 1))), FormatError);
  EXPECT_THROW(read_idx(write("too_long", good + "x")), FormatError);
  EXPECT_THROW(read_idx(write("bad_magic", "\x01" + good.substr(1))), FormatError);
  EXPECT_THROW(read_idx(write("float_type", idx_bytes(0x0D, {2}, {0, 0, 0, 0, 0, 0, 0, 0}))), FormatError);
  EXPECT_THROW(read_idx(write("zero_dim", idx_bytes(0x08, {0, 2}, {}))), FormatError);
  EXPECT_THROW(read_idx(write("no_dims", idx_bytes(0x08, {}, {}))), FormatError);
  EXPECT_THROW(read_idx(write("huge", idx_bytes(0x08, {0xffffffffu, 0xffffffffu}, {1}))), FormatError);
  std::string gz_truncated;
  {
    const std::string path = write("whole.gz", good, true);
    std::ifstream in(path, std::ios::binary);
    gz_truncated.assign(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_THROW(read_idx(write("cut.gz", gz_truncated.substr(0, gz_truncated.size() / 2))), FormatError);
  try {
    read_idx(write("truncated2", good.substr(0, good.size() - 3)));
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  // Images and labels must agree.
  const std::string images = write("i", good);
  EXPECT_THROW(read_idx_images(images, write("l3", idx_bytes(0x08, {3}, {1, 2, 3}))), FormatError);
  EXPECT_THROW(read_idx_images(images, write("l_big", idx_bytes(0x08, {2}, {1, 10}))), FormatError);
  EXPECT_THROW(read_idx_images(images, write("l_2d", idx_bytes(0x08, {2, 1}, {1, 2}))), FormatError);
  EXPECT_THROW(read_idx_images(write("i_2d", idx_bytes(0x08, {2, 4}, std::vector<std::uint8_t>(8, 1))),
                               write("l", idx_bytes(0x08, {2}, {1, 2}))),
               FormatError);
  EXPECT_THROW(read_idx_images(images, write("l_ok", idx_bytes(0x08, {2}, {1, 2})), 1), InvalidArgument);
}

}  // namespace
}  // namespace dpsgd
