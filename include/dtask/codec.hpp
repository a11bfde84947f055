// Binary encoding of task arguments and results: MessagePack headers plus zero-copy side frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace dtask {

// An immutable byte range kept alive by `owner`. Results, arguments and ZeroMQ frames share
// these without copying: a worker's stored result goes out to a peer as the same memory.
class Buffer {
 public:
  Buffer() = default;
  Buffer(std::shared_ptr<const void> owner, const std::byte* data, std::size_t size)
      : owner_(std::move(owner)), data_(data), size_(size) {}

  // Takes ownership of a vector without copying its elements.
  template <class T>
  static Buffer adopt(std::vector<T>&& v) {
    auto holder = std::make_shared<std::vector<T>>(std::move(v));
    auto* bytes = reinterpret_cast<const std::byte*>(holder->data());
    std::size_t n = holder->size() * sizeof(T);
    return Buffer(std::move(holder), bytes, n);
  }
  static Buffer copy_of(const void* data, std::size_t size) {
    std::vector<std::byte> v(size);
    if (size != 0) std::memcpy(v.data(), data, size);
    return adopt(std::move(v));
  }

  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::shared_ptr<const void>& owner() const { return owner_; }

 private:
  std::shared_ptr<const void> owner_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// One encoded value: a small MessagePack header and, for bulk data, side frames.
struct Payload {
  std::string header;
  std::vector<Buffer> frames;

  std::size_t nbytes() const {
    std::size_t n = header.size();
    for (const auto& f : frames) n += f.size();
    return n;
  }
};

namespace detail {
template <class T>
struct is_bulk_vector : std::false_type {};
// Numeric vectors travel as raw frames; vector<bool> is packed bits and is not one of them.
template <class T, class A>
struct is_bulk_vector<std::vector<T, A>>
    : std::bool_constant<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>> {};

inline std::string to_msgpack(const nlohmann::json& j) {
  std::string out;
  nlohmann::json::to_msgpack(j, out);
  return out;
}
// The deepest nesting a header may have. nlohmann's MessagePack parser recurses once per level,
// so a hostile header of a million nested one-element arrays (0x91...) would overflow the stack;
// values users send are a few levels deep.
inline constexpr std::size_t kMaxHeaderDepth = 256;

// Throws unless [p, end) starts with one complete MessagePack value nested at most `max_depth`
// deep whose every count fits in the bytes left. Iterative (an explicit stack of items still
// to read per open container), so it cannot itself overflow the stack.
inline void check_msgpack(const std::uint8_t* p, const std::uint8_t* end, std::size_t max_depth) {
  auto fail = [](const char* why) { throw std::runtime_error(std::string("malformed payload header: ") + why); };
  auto left = [&] { return static_cast<std::size_t>(end - p); };
  auto take = [&](std::size_t n) {
    if (left() < n) fail("truncated");
    const std::uint8_t* at = p;
    p += n;
    return at;
  };
  auto be = [&](std::size_t n) {  // an n-byte big-endian unsigned
    const std::uint8_t* at = take(n);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | at[i];
    return v;
  };
  std::vector<std::uint64_t> open{1};  // items still to read, per open container (outermost first)
  while (!open.empty()) {
    if (open.back() == 0) {
      open.pop_back();
      continue;
    }
    --open.back();
    std::uint8_t b = *take(1);
    std::uint64_t items = 0;  // elements of a container that starts here
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) continue;
    if ((b & 0xf0) == 0x80) items = 2u * (b & 0x0fu);
    else if ((b & 0xf0) == 0x90) items = b & 0x0fu;
    else if ((b & 0xe0) == 0xa0) take(b & 0x1fu);
    else switch (b) {
      case 0xc4: case 0xd9: take(be(1)); break;
      case 0xc5: case 0xda: take(be(2)); break;
      case 0xc6: case 0xdb: take(be(4)); break;
      case 0xc7: { auto n = be(1); take(1 + n); break; }
      case 0xc8: { auto n = be(2); take(1 + n); break; }
      case 0xc9: { auto n = be(4); take(1 + n); break; }
      case 0xcc: case 0xd0: take(1); break;
      case 0xcd: case 0xd1: take(2); break;
      case 0xca: case 0xce: case 0xd2: take(4); break;
      case 0xcb: case 0xcf: case 0xd3: take(8); break;
      case 0xd4: take(2); break;
      case 0xd5: take(3); break;
      case 0xd6: take(5); break;
      case 0xd7: take(9); break;
      case 0xd8: take(17); break;
      case 0xdc: items = be(2); break;
      case 0xdd: items = be(4); break;
      case 0xde: items = 2 * be(2); break;
      case 0xdf: items = 2 * be(4); break;
      default: fail("unknown type byte");
    }
    if (items == 0) continue;
    if (items > left()) fail("count exceeds the bytes left");  // every item takes a byte at least
    if (open.size() > max_depth) fail("nested too deep");
    open.push_back(items);
  }
}

// A number converted to T only when T can hold it: nlohmann's get<int>() of 1e30 (a float where
// an int was sent, which only a foreign or hostile encoder does) is undefined behaviour, and of
// 2^40 silently wraps. Found by tests/fuzz (corpus/codec/ub-float-to-int-out-of-range).
template <class T>
T checked_number(const nlohmann::json& j) {
  auto fail = [] { throw std::runtime_error("payload number does not fit the expected type"); };
  if (j.is_number_unsigned()) {
    auto v = j.get<std::uint64_t>();
    if constexpr (std::is_integral_v<T>) {
      if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) fail();
    }
    return static_cast<T>(v);
  }
  if (j.is_number_integer()) {
    auto v = j.get<std::int64_t>();
    if constexpr (std::is_integral_v<T>) {
      if (std::is_unsigned_v<T> ? v < 0 || static_cast<std::uint64_t>(v) > static_cast<std::uint64_t>(std::numeric_limits<T>::max())
                                : v < static_cast<std::int64_t>(std::numeric_limits<T>::lowest()) ||
                                      v > static_cast<std::int64_t>(std::numeric_limits<T>::max())) {
        fail();
      }
    }
    return static_cast<T>(v);
  }
  if (j.is_number_float()) {
    double v = j.get<double>();
    if constexpr (std::is_integral_v<T>) {
      // Exact integers inside T's range only (the bounds as doubles: -2^(n-1) and 2^n or 2^(n-1)).
      if (!(v >= static_cast<double>(std::numeric_limits<T>::lowest()) &&
            v < 2.0 * static_cast<double>(std::numeric_limits<T>::max() / 2 + 1)) ||
          v != static_cast<double>(static_cast<long double>(static_cast<T>(v)))) {
        fail();
      }
    } else if constexpr (sizeof(T) < sizeof(double)) {
      if (std::isfinite(v) && std::fabs(v) > static_cast<double>(std::numeric_limits<T>::max())) fail();
    }
    return static_cast<T>(v);
  }
  throw std::runtime_error("payload is not a number");
}

inline nlohmann::json from_msgpack(const std::string& header) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(header.data());
  check_msgpack(p, p + header.size(), kMaxHeaderDepth);
  return nlohmann::json::from_msgpack(header);
}
}  // namespace detail

// Codec<T> turns a T into a Payload and back. The default covers every type with nlohmann
// to_json/from_json; numeric vectors go out of band. Users may specialise it for their types.
template <class T, class Enable = void>
struct Codec {
  static Payload encode(const T& value) {
    Payload p;
    p.header = detail::to_msgpack(nlohmann::json(value));
    return p;
  }
  static T decode(const Payload& p) {
    auto h = detail::from_msgpack(p.header);
    if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) return detail::checked_number<T>(h);
    else return h.template get<T>();
  }
};

template <class T>
struct Codec<T, std::enable_if_t<detail::is_bulk_vector<T>::value>> {
  using Elem = typename T::value_type;
  // The header records element size and count so a mismatched decode is an error, not garbage.
  static Payload encode(T&& v) {
    Payload p;
    p.header = header_for(v.size());
    p.frames.push_back(Buffer::adopt(std::move(v)));
    return p;
  }
  static Payload encode(const T& v) {
    Payload p;
    p.header = header_for(v.size());
    p.frames.push_back(Buffer::copy_of(v.data(), v.size() * sizeof(Elem)));
    return p;
  }
  static T decode(const Payload& p) {
    auto h = detail::from_msgpack(p.header);
    // A bulk vector may also arrive as an ordinary MessagePack array (e.g. built by another type).
    if (!is_bulk(p, h)) {
      if (!h.is_array()) throw std::runtime_error("payload is not a vector");
      T out;
      out.reserve(h.size());
      for (const auto& x : h) out.push_back(detail::checked_number<Elem>(x));
      return out;
    }
    const std::byte* first = p.frames[0].data();
    std::size_t count = p.frames[0].size() / sizeof(Elem);
    // An empty frame may have no memory at all (an empty vector's data() is null).
    if (count == 0) return T{};
    // One pass: constructing from the range copies without first zero-filling (which, for a
    // fresh multi-MiB vector, would touch every page twice).
    if (reinterpret_cast<std::uintptr_t>(first) % alignof(Elem) == 0) {
      const auto* elems = reinterpret_cast<const Elem*>(first);
      return T(elems, elems + count);
    }
    T out(count);
    if (count != 0) std::memcpy(out.data(), first, count * sizeof(Elem));
    return out;
  }
  // Whether `h` is a bulk header (then p.frames[0] holds the elements); a bulk header of another
  // element type or size is an error, not garbage. The answer must not be read off the frame's
  // data pointer: an empty vector's frame has none, and its header is not a plain array either.
  static bool is_bulk(const Payload& p, const nlohmann::json& h) {
    if (!h.is_array() || h.size() != 3 || h[0] != "__bulk") return false;
    if (!h[1].is_number_unsigned() || !h[2].is_number_unsigned()) {
      throw std::runtime_error("bulk vector header is malformed");
    }
    auto elem_size = h[1].get<std::uint64_t>();
    auto count = h[2].get<std::uint64_t>();
    if (elem_size != sizeof(Elem) || p.frames.size() != 1 || count != p.frames[0].size() / sizeof(Elem) ||
        p.frames[0].size() % sizeof(Elem) != 0) {
      throw std::runtime_error("bulk vector payload does not match the expected element type");
    }
    return true;
  }

 private:
  static std::string header_for(std::size_t count) {
    return detail::to_msgpack(nlohmann::json::array({"__bulk", sizeof(Elem), count}));
  }
};

namespace detail {
// Vectors that span arguments point into when their bytes could not be viewed in place (a frame
// not aligned for the element type, or a plain MessagePack array). One list per executor thread,
// cleared before each task runs: what a span points into lives exactly as long as the call.
inline std::vector<std::shared_ptr<const void>>& span_keepalive() {
  thread_local std::vector<std::shared_ptr<const void>> kept;
  return kept;
}
}  // namespace detail

// A task parameter `std::span<const T>` (T numeric) sees a bulk argument where it landed: no
// copy and no allocation on the worker, which matters for large arrays (64 MiB decoded into a
// std::vector costs a fresh allocation, a page fault per 4 KiB and a full copy). The span is
// valid for the duration of the call. As a value the client passes, it is encoded like a vector.
template <class T>
struct Codec<std::span<const T>, std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>>> {
  using VectorCodec = Codec<std::vector<T>>;
  static Payload encode(std::span<const T> v) { return VectorCodec::encode(std::vector<T>(v.begin(), v.end())); }
  static std::span<const T> decode(const Payload& p) {
    auto h = detail::from_msgpack(p.header);
    if (VectorCodec::is_bulk(p, h)) {
      const std::byte* data = p.frames[0].data();
      std::size_t count = p.frames[0].size() / sizeof(T);
      if (count == 0) return {};
      if (reinterpret_cast<std::uintptr_t>(data) % alignof(T) == 0) return {reinterpret_cast<const T*>(data), count};
    }
    // Not viewable in place: decoded as a vector that lives until the call ends.
    auto v = std::make_shared<const std::vector<T>>(VectorCodec::decode(p));
    detail::span_keepalive().push_back(v);
    return {v->data(), v->size()};
  }
};

template <class T>
Payload encode(T&& value) {
  return Codec<std::decay_t<T>>::encode(std::forward<T>(value));
}
template <class T>
T decode(const Payload& p) {
  return Codec<T>::decode(p);
}

}  // namespace dtask
