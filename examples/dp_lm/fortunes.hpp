// Fortunes: Debian's fortune cookies as a text corpus, one cookie per record, split by category into a
// public part and a private part, with character-level tokens.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace dp_lm {

// Character tokens: 0 marks the start and the end of a cookie, 1 any character outside printable
// ASCII, 2 the newline, 3..97 the printable characters ' '..'~' (tab counts as a space).
inline constexpr std::int32_t kBoundaryToken = 0;
inline constexpr std::int64_t kVocabularySize = 98;

struct Corpus {
  std::vector<std::string> public_train;   // cookies of the public categories (non-private pretraining)
  std::vector<std::string> private_train;  // the private categories, minus their held-out tenth
  std::vector<std::string> private_test;   // every tenth cookie of each private category, never trained on
};

// The category files of each part (documented in docs/language_models.md).
const std::vector<std::string>& public_categories();
const std::vector<std::string>& private_categories();

// Reads the category files under `directory` (Debian: /usr/share/games/fortunes). Throws
// dpsgd::FormatError naming a missing or empty file.
Corpus read_corpus(const std::string& directory);

std::int32_t token_of(unsigned char c);

// Fixed-length model inputs for a batch of cookies: sequence k is [0, c_1, ..., c_n] with targets
// [c_1, ..., c_n, 0], both cut at `context` positions; positions past the cookie are padding (mask
// 0). A null cookie pointer is a padding slot: all its positions are masked.
struct Sequences {
  std::vector<std::int32_t> tokens, targets;
  std::vector<std::uint8_t> mask;
};
void encode(std::span<const std::string* const> cookies, std::int64_t context, Sequences& out);

}  // namespace dp_lm
