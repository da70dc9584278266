// IDX files (the MNIST family's format): a checked reader for unsigned-byte arrays, plain or gzip.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dpsgd/core/matrix_types.hpp"

namespace dpsgd {

// An IDX array of unsigned bytes: dims[0] items of dims[1] x dims[2] x ... values, row-major.
struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> values;
};

// Reads an IDX file of type 0x08 (unsigned byte), gzip-compressed or not. Throws dpsgd::IoError if
// the file cannot be opened, and dpsgd::FormatError if the magic number, element type or dimension
// count is wrong, a dimension is zero or absurd, or the data is shorter or longer than the header
// says (a truncated download, or a corrupt gzip stream).
IdxArray read_idx(const std::string& path);

// Images scaled to [0, 1] (one row per image, height * width columns) with their labels.
struct LabelledImages {
  RowMajorMatrix<float> images;
  std::vector<std::int32_t> labels;
  std::int64_t height = 0, width = 0;
};

// Reads an image file (3 dimensions) and a label file (1 dimension) and checks that they describe
// the same number of items and that every label is below `num_classes`.
LabelledImages read_idx_images(const std::string& images_path, const std::string& labels_path, int num_classes = 10);

// The path of `name` in `directory`, trying `name` and `name.gz`; throws dpsgd::IoError naming both
// when neither exists.
std::string find_idx_file(const std::string& directory, const std::string& name);

}  // namespace dpsgd
