// Reading, splitting and tokenising Debian's fortune cookies for the language-model example.
#include "fortunes.hpp"

#include <fstream>
#include <sstream>

#include "dpsgd/core/error.hpp"

namespace dp_lm {

// Categories of everyday, personal text are private; technical, literary and quoted ones (computers,
// definitions, songs and poems, Star Trek...) are public. 23 public files, 20 private ones.
const std::vector<std::string>& public_categories() {
  static const std::vector<std::string> names = {
      "art",     "ascii-art",   "computers",   "debian",   "definitions", "disclaimer",   "goedel", "knghtbrd",
      "linux",   "linuxcookie", "literature",  "magic",    "news",        "paradoxum",    "perl",   "pratchett",
      "riddles", "science",     "songs-poems", "startrek", "tao",         "translate-me", "zippy"};
  return names;
}

const std::vector<std::string>& private_categories() {
  static const std::vector<std::string> names = {"cookie",     "drugs",     "education",     "ethnic", "food",
                                                 "fortunes",   "humorists", "kids",          "law",    "love",
                                                 "medicine",   "men-women", "miscellaneous", "people", "pets",
                                                 "platitudes", "politics",  "sports",        "wisdom", "work"};
  return names;
}

namespace {

// A category file: cookies separated by lines holding a single '%'. Trailing newlines are dropped.
std::vector<std::string> read_cookies(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw dpsgd::FormatError("cannot read " + path + " (is Debian's fortunes package installed?)");
  std::vector<std::string> cookies;
  std::string line, cookie;
  const auto finish = [&]() {
    while (!cookie.empty() && cookie.back() == '\n') cookie.pop_back();
    if (!cookie.empty()) cookies.push_back(cookie);
    cookie.clear();
  };
  while (std::getline(in, line)) {
    if (line == "%") {
      finish();
    } else {
      cookie += line + "\n";
    }
  }
  finish();
  if (cookies.empty()) throw dpsgd::FormatError(path + " holds no fortune cookies");
  return cookies;
}

}  // namespace

Corpus read_corpus(const std::string& directory) {
  Corpus corpus;
  for (const std::string& name : public_categories()) {
    for (std::string& cookie : read_cookies(directory + "/" + name)) corpus.public_train.push_back(std::move(cookie));
  }
  for (const std::string& name : private_categories()) {
    const std::vector<std::string> cookies = read_cookies(directory + "/" + name);
    for (std::size_t k = 0; k < cookies.size(); ++k) {
      (k % 10 == 9 ? corpus.private_test : corpus.private_train).push_back(cookies[k]);
    }
  }
  return corpus;
}

std::int32_t token_of(unsigned char c) {
  if (c == '\n') return 2;
  if (c == '\t') c = ' ';
  if (c >= ' ' && c <= '~') return 3 + (c - ' ');
  return 1;
}

void encode(std::span<const std::string* const> cookies, std::int64_t context, Sequences& out) {
  const std::size_t size = cookies.size() * static_cast<std::size_t>(context);
  out.tokens.assign(size, kBoundaryToken);
  out.targets.assign(size, kBoundaryToken);
  out.mask.assign(size, 0);
  for (std::size_t k = 0; k < cookies.size(); ++k) {
    if (cookies[k] == nullptr) continue;
    const std::string& text = *cookies[k];
    const std::size_t first = k * static_cast<std::size_t>(context);
    const std::size_t length = std::min(text.size() + 1, static_cast<std::size_t>(context));
    for (std::size_t s = 0; s < length; ++s) {
      out.tokens[first + s] = s == 0 ? kBoundaryToken : token_of(static_cast<unsigned char>(text[s - 1]));
      out.targets[first + s] = s < text.size() ? token_of(static_cast<unsigned char>(text[s])) : kBoundaryToken;
      out.mask[first + s] = 1;
    }
  }
}

}  // namespace dp_lm
