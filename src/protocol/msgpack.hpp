// A direct MessagePack writer/reader for protocol structs: no intermediate JSON tree per message.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// Knows nothing of dtask's types: wire.hpp maps messages, ids and payloads onto it.
namespace dtask::protocol::msgpack {

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void nil() { byte(0xc0); }
  void boolean(bool b) { byte(b ? 0xc3 : 0xc2); }
  void uinteger(std::uint64_t v) {
    if (v < 128) byte(static_cast<std::uint8_t>(v));
    else if (v <= 0xff) { byte(0xcc); be(static_cast<std::uint8_t>(v)); }
    else if (v <= 0xffff) { byte(0xcd); be(static_cast<std::uint16_t>(v)); }
    else if (v <= 0xffffffffu) { byte(0xce); be(static_cast<std::uint32_t>(v)); }
    else { byte(0xcf); be(v); }
  }
  void integer(std::int64_t v) {
    if (v >= 0) return uinteger(static_cast<std::uint64_t>(v));
    if (v >= -32) byte(static_cast<std::uint8_t>(v));
    else if (v >= -128) { byte(0xd0); be(static_cast<std::uint8_t>(v)); }
    else if (v >= -32768) { byte(0xd1); be(static_cast<std::uint16_t>(v)); }
    else if (v >= INT32_MIN) { byte(0xd2); be(static_cast<std::uint32_t>(v)); }
    else { byte(0xd3); be(static_cast<std::uint64_t>(v)); }
  }
  void dbl(double d) {
    std::uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    byte(0xcb);
    be(bits);
  }
  void str(std::string_view s) {
    auto n = s.size();
    if (n < 32) byte(static_cast<std::uint8_t>(0xa0 | n));
    else if (n <= 0xff) { byte(0xd9); be(static_cast<std::uint8_t>(n)); }
    else if (n <= 0xffff) { byte(0xda); be(static_cast<std::uint16_t>(n)); }
    else { byte(0xdb); be(static_cast<std::uint32_t>(n)); }
    out_.append(s.data(), n);
  }
  void bin(const void* data, std::size_t n) {
    if (n <= 0xff) { byte(0xc4); be(static_cast<std::uint8_t>(n)); }
    else if (n <= 0xffff) { byte(0xc5); be(static_cast<std::uint16_t>(n)); }
    else { byte(0xc6); be(static_cast<std::uint32_t>(n)); }
    out_.append(static_cast<const char*>(data), n);
  }
  void array(std::size_t n) {
    if (n < 16) byte(static_cast<std::uint8_t>(0x90 | n));
    else if (n <= 0xffff) { byte(0xdc); be(static_cast<std::uint16_t>(n)); }
    else { byte(0xdd); be(static_cast<std::uint32_t>(n)); }
  }
  std::string& out() { return out_; }

 private:
  void byte(std::uint8_t b) { out_.push_back(static_cast<char>(b)); }
  template <class U>
  void be(U v) {
    char buf[sizeof(U)];
    for (std::size_t i = 0; i < sizeof(U); ++i) buf[i] = static_cast<char>(v >> (8 * (sizeof(U) - 1 - i)));
    out_.append(buf, sizeof(U));
  }
  std::string& out_;
};

// Reads what Writer wrote (and any well-formed MessagePack of the same shapes); every malformed
// or truncated input throws std::runtime_error, which the wire codec turns into an error value.
class Reader {
 public:
  Reader(const std::uint8_t* p, const std::uint8_t* end) : p_(p), end_(end) {}
  bool at_end() const { return p_ == end_; }
  const std::uint8_t* pos() const { return p_; }

  std::uint64_t uinteger() {
    std::int64_t s = 0;
    std::uint64_t u = 0;
    if (read_int(u, s)) return u;
    if (s < 0) fail("negative value where an unsigned one was expected");
    return static_cast<std::uint64_t>(s);
  }
  std::int64_t integer() {
    std::int64_t s = 0;
    std::uint64_t u = 0;
    if (read_int(u, s)) {
      if (u > static_cast<std::uint64_t>(INT64_MAX)) fail("integer out of range");
      return static_cast<std::int64_t>(u);
    }
    return s;
  }
  bool boolean() {
    auto b = next();
    if (b == 0xc2) return false;
    if (b == 0xc3) return true;
    fail("expected a boolean");
  }
  double dbl() {
    auto b = next();
    if (b == 0xcb) {
      auto bits = be<std::uint64_t>();
      double d;
      std::memcpy(&d, &bits, sizeof d);
      return d;
    }
    if (b == 0xca) {
      auto bits = be<std::uint32_t>();
      float f;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    }
    --p_;
    return static_cast<double>(integer());
  }
  std::string str() {
    auto b = next();
    std::size_t n;
    if ((b & 0xe0) == 0xa0) n = b & 0x1f;
    else if (b == 0xd9) n = be<std::uint8_t>();
    else if (b == 0xda) n = be<std::uint16_t>();
    else if (b == 0xdb) n = be<std::uint32_t>();
    else fail("expected a string");
    return take(n);
  }
  std::string bin() {
    auto b = next();
    std::size_t n;
    if (b == 0xc4) n = be<std::uint8_t>();
    else if (b == 0xc5) n = be<std::uint16_t>();
    else if (b == 0xc6) n = be<std::uint32_t>();
    else fail("expected binary data");
    return take(n);
  }
  // The element count, checked against the bytes left (each element takes at least one), so a
  // header claiming 2^32 elements fails here instead of sizing anything.
  std::size_t array() {
    auto b = next();
    std::size_t n;
    if ((b & 0xf0) == 0x90) return b & 0x0f;
    if (b == 0xdc) n = be<std::uint16_t>();
    else if (b == 0xdd) n = be<std::uint32_t>();
    else fail("expected an array");
    if (n > left()) fail("count larger than the message");
    return n;
  }
  // Deepest nesting skip() accepts: far beyond any message dtask sends (an extra field from a newer
  // revision, an InfoReply's JSON), and shallow enough that nlohmann's recursive from_msgpack may
  // safely parse what skip() accepted (wire.hpp does that only after skip()).
  static constexpr int kMaxDepth = 64;

  // Skips one complete value of any type. Iterative (a count of values still to skip per level),
  // so hostile nesting (1,000,000 x 0x91) is an error, not a stack overflow; every count is
  // checked against the bytes left, so a huge claimed count fails at once.
  void skip() {
    std::uint64_t todo[kMaxDepth + 1];
    int depth = 0;
    todo[0] = 1;
    for (;;) {
      while (todo[depth] == 0) {
        if (depth == 0) return;
        --depth;
      }
      --todo[depth];
      std::uint64_t children = skip_head();
      if (children == 0) continue;
      if (children > left()) fail("count larger than the message");
      if (depth == kMaxDepth) fail("nested too deeply");
      todo[++depth] = children;
    }
  }

  [[noreturn]] static void fail(const char* why) { throw std::runtime_error(std::string("malformed message: ") + why); }

 private:
  // true: unsigned result in u; false: signed result in s
  bool read_int(std::uint64_t& u, std::int64_t& s) {
    auto b = next();
    if (b <= 0x7f) { u = b; return true; }
    if (b >= 0xe0) { s = static_cast<std::int8_t>(b); return false; }
    switch (b) {
      case 0xcc: u = be<std::uint8_t>(); return true;
      case 0xcd: u = be<std::uint16_t>(); return true;
      case 0xce: u = be<std::uint32_t>(); return true;
      case 0xcf: u = be<std::uint64_t>(); return true;
      case 0xd0: s = static_cast<std::int8_t>(be<std::uint8_t>()); return false;
      case 0xd1: s = static_cast<std::int16_t>(be<std::uint16_t>()); return false;
      case 0xd2: s = static_cast<std::int32_t>(be<std::uint32_t>()); return false;
      case 0xd3: s = static_cast<std::int64_t>(be<std::uint64_t>()); return false;
      default: fail("expected an integer");
    }
  }
  std::uint8_t next() {
    if (p_ >= end_) fail("truncated");
    return *p_++;
  }
  template <class U>
  U be() {
    if (static_cast<std::size_t>(end_ - p_) < sizeof(U)) fail("truncated");
    U v = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) v = static_cast<U>((v << 8) | p_[i]);
    p_ += sizeof(U);
    return v;
  }
  void advance(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) fail("truncated");
    p_ += n;
  }
  std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }
  // Reads one value's head and skips a scalar's body; returns how many values a container holds
  // (a map's keys and values both), 0 for a scalar.
  std::uint64_t skip_head() {
    auto b = next();
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return 0;
    if ((b & 0xf0) == 0x80) return 2 * static_cast<std::uint64_t>(b & 0x0f);
    if ((b & 0xf0) == 0x90) return b & 0x0f;
    if ((b & 0xe0) == 0xa0) return advance(b & 0x1f), 0;
    switch (b) {
      case 0xcc: case 0xd0: advance(1); return 0;
      case 0xcd: case 0xd1: advance(2); return 0;
      case 0xce: case 0xd2: case 0xca: advance(4); return 0;
      case 0xcf: case 0xd3: case 0xcb: advance(8); return 0;
      case 0xd9: case 0xc4: advance(be<std::uint8_t>()); return 0;
      case 0xda: case 0xc5: advance(be<std::uint16_t>()); return 0;
      case 0xdb: case 0xc6: advance(be<std::uint32_t>()); return 0;
      case 0xdc: return be<std::uint16_t>();
      case 0xdd: return be<std::uint32_t>();
      case 0xde: return 2 * static_cast<std::uint64_t>(be<std::uint16_t>());
      case 0xdf: return 2 * static_cast<std::uint64_t>(be<std::uint32_t>());
      case 0xd4: advance(2); return 0;
      case 0xd5: advance(3); return 0;
      case 0xd6: advance(5); return 0;
      case 0xd7: advance(9); return 0;
      case 0xd8: advance(17); return 0;
      case 0xc7: advance(1 + static_cast<std::size_t>(be<std::uint8_t>())); return 0;
      case 0xc8: advance(1 + static_cast<std::size_t>(be<std::uint16_t>())); return 0;
      case 0xc9: advance(1 + static_cast<std::size_t>(be<std::uint32_t>())); return 0;
      default: fail("unknown MessagePack type");
    }
  }
  std::string take(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) fail("truncated");
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

}  // namespace dtask::protocol::msgpack
