// The ```cpp blocks of a markdown page, for the tests that keep a page's code and a test file
// together (test_seed_calls.cpp, test_readme_snippets.cpp): each block must appear in the test
// file word for word, whitespace and blank lines aside.
#pragma once

#include <algorithm>
#include <cstddef>
#include <istream>
#include <sstream>
#include <string>
#include <vector>

namespace segloss {
namespace testing {

// The non-blank lines of `in`, each with its words joined by single spaces.
inline std::vector<std::string> normalized_lines(std::istream& in) {
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string w, joined;
    while (words >> w) joined += (joined.empty() ? "" : " ") + w;
    if (!joined.empty()) out.push_back(joined);
  }
  return out;
}

// The ```cpp blocks of a markdown page, normalized; `unterminated` is set when the page ends
// inside a block.
inline std::vector<std::vector<std::string>> cpp_blocks(std::istream& page, bool& unterminated) {
  std::vector<std::vector<std::string>> blocks;
  std::string line, text;
  bool in_block = false;
  while (std::getline(page, line)) {
    if (!in_block && line.rfind("```cpp", 0) == 0) {
      in_block = true;
      text.clear();
    } else if (in_block && line.rfind("```", 0) == 0) {
      in_block = false;
      std::istringstream in(text);
      blocks.push_back(normalized_lines(in));
    } else if (in_block) {
      text += line + "\n";
    }
  }
  unterminated = in_block;
  return blocks;
}

// Whether `block` appears in `source` as consecutive lines.
inline bool contains_block(const std::vector<std::string>& source,
                           const std::vector<std::string>& block) {
  for (size_t i = 0; i + block.size() <= source.size(); ++i)
    if (std::equal(block.begin(), block.end(), source.begin() + static_cast<std::ptrdiff_t>(i)))
      return true;
  return false;
}

}  // namespace testing
}  // namespace segloss
