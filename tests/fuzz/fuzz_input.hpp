// How a fuzz input's bytes become what a decoder receives: a selector, an envelope and side frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <dtask/codec.hpp>

namespace dtask::fuzz {

// One input, laid out so that the generator (make_corpus.cpp) and the mutator agree on it:
//   [selector] [n frames (mod 4)] [n × frame length, 2 bytes little-endian] [main bytes...] [frames...]
// The frames are cut from the end, in order; a frame longer than what is left gets what is left.
// For the wire target the main bytes are the envelope and the selector the direction; for the
// codec target they are the payload header and the selector the decoded type.
struct Input {
  std::uint8_t selector = 0;
  std::string main;
  std::vector<Buffer> frames;
};

inline Input split(const std::uint8_t* data, std::size_t size) {
  Input in;
  std::size_t at = 0;
  auto byte = [&]() -> std::uint8_t { return at < size ? data[at++] : 0; };
  in.selector = byte();
  std::size_t n = byte() % 4;
  std::vector<std::size_t> lens(n);
  for (auto& l : lens) l = byte() | (static_cast<std::size_t>(byte()) << 8);
  std::size_t rest = size - std::min(at, size);
  std::size_t total = 0;
  for (auto& l : lens) {
    l = std::min(l, rest - total);
    total += l;
  }
  in.main.assign(reinterpret_cast<const char*>(data + at), rest - total);
  std::size_t pos = at + rest - total;
  // Each frame its own allocation (so ASan sees reads past it); an empty one has no memory at all,
  // as an empty vector's frame has none.
  for (auto l : lens) {
    in.frames.push_back(Buffer::copy_of(data + pos, l));
    pos += l;
  }
  return in;
}

// The inverse of split, for the corpus generator.
inline std::string join(std::uint8_t selector, const std::string& main, const std::vector<Buffer>& frames) {
  std::string out;
  out.push_back(static_cast<char>(selector));
  out.push_back(static_cast<char>(frames.size()));
  for (const auto& f : frames) {
    out.push_back(static_cast<char>(f.size() & 0xff));
    out.push_back(static_cast<char>((f.size() >> 8) & 0xff));
  }
  out += main;
  for (const auto& f : frames) out.append(reinterpret_cast<const char*>(f.data()), f.size());
  return out;
}

}  // namespace dtask::fuzz
