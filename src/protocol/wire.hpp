// Wire codec: a batch of messages becomes one MessagePack envelope plus zero-copy bulk frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/messages.hpp"
#include "protocol/msgpack.hpp"

namespace dtask::protocol {

template <class M>
concept Tied = requires(const M& m) { m.tie(); };

inline constexpr const char* kMagic = "dtask";

// One encoded batch: the envelope and the bulk frames that follow it on the wire.
struct Frames {
  std::string head;
  std::vector<Buffer> bulk;
};

template <class V>
struct Decoded {
  std::vector<V> messages;
  std::string error;            // empty on success
  std::uint32_t peer_version = 0;
  bool ok() const { return error.empty(); }
};

namespace detail {
template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_pair : std::false_type {};
template <class A, class B>
struct is_pair<std::pair<A, B>> : std::true_type {};
template <class T>
struct is_strong_id : std::false_type {};
template <class Tag, class Rep>
struct is_strong_id<StrongId<Tag, Rep>> : std::true_type {};
template <class T>
struct is_variant : std::false_type {};
template <class... T>
struct is_variant<std::variant<T...>> : std::true_type {};
template <class>
inline constexpr bool dependent_false = false;
// A vector is sized up front for at most this many elements: a count is checked only against the
// bytes left (one byte each at least), and an element in memory may be far bigger than one byte,
// so a claimed count must not choose the allocation. Longer vectors grow as they are read.
inline constexpr std::size_t kMaxReserve = 1024;

// Messages are MessagePack arrays of their DTASK_FIELDS, in order. A Payload is
// [header bytes, first bulk frame index, bulk frame count]; its frames go to `bulk`.
template <class T>
void pack(msgpack::Writer& w, std::vector<Buffer>& bulk, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    w.boolean(v);
  } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    w.integer(v);
  } else if constexpr (std::is_integral_v<T>) {
    w.uinteger(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    w.dbl(v);
  } else if constexpr (std::is_same_v<T, std::string>) {
    w.str(v);
  } else if constexpr (is_strong_id<T>::value) {
    w.uinteger(v.value);
  } else if constexpr (std::is_same_v<T, Payload>) {
    w.array(3);
    w.bin(v.header.data(), v.header.size());
    w.uinteger(bulk.size());
    w.uinteger(v.frames.size());
    bulk.insert(bulk.end(), v.frames.begin(), v.frames.end());
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    nlohmann::json::to_msgpack(v, w.out());
  } else if constexpr (is_vector<T>::value) {
    w.array(v.size());
    for (const auto& x : v) pack(w, bulk, x);
  } else if constexpr (is_pair<T>::value) {
    w.array(2);
    pack(w, bulk, v.first);
    pack(w, bulk, v.second);
  } else if constexpr (is_variant<T>::value) {
    w.array(2);
    w.uinteger(v.index());
    std::visit([&](const auto& alt) { pack(w, bulk, alt); }, v);
  } else if constexpr (Tied<T>) {
    auto t = v.tie();
    w.array(std::tuple_size_v<decltype(t)>);
    std::apply([&](const auto&... f) { (pack(w, bulk, f), ...); }, t);
  } else {
    static_assert(dependent_false<T>, "no wire encoding for this type");
  }
}

template <class V, std::size_t... I>
void unpack_variant(msgpack::Reader& r, const std::vector<Buffer>& bulk, std::size_t idx, V& out,
                    std::index_sequence<I...>);

template <class T>
void unpack(msgpack::Reader& r, const std::vector<Buffer>& bulk, T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    v = r.boolean();
  } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    auto x = r.integer();
    if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max()) msgpack::Reader::fail("integer out of range");
    v = static_cast<T>(x);
  } else if constexpr (std::is_integral_v<T>) {
    auto x = r.uinteger();
    if (x > std::numeric_limits<T>::max()) msgpack::Reader::fail("integer out of range");
    v = static_cast<T>(x);
  } else if constexpr (std::is_floating_point_v<T>) {
    v = static_cast<T>(r.dbl());
  } else if constexpr (std::is_same_v<T, std::string>) {
    v = r.str();
  } else if constexpr (is_strong_id<T>::value) {
    unpack(r, bulk, v.value);
  } else if constexpr (std::is_same_v<T, Payload>) {
    if (r.array() != 3) msgpack::Reader::fail("payload");
    v.header = r.bin();
    auto first = r.uinteger();
    auto count = r.uinteger();
    v.frames.clear();
    if (count == 0) return;
    if (first + count > bulk.size() || first + count < first) throw std::runtime_error("payload refers to a missing frame");
    v.frames.assign(bulk.begin() + static_cast<std::ptrdiff_t>(first),
                    bulk.begin() + static_cast<std::ptrdiff_t>(first + count));
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    // nlohmann's parser recurses per nesting level: it sees only what skip() accepted, which
    // bounds the depth (msgpack::Reader::kMaxDepth) and checks every length first.
    const std::uint8_t* start = r.pos();
    r.skip();
    v = nlohmann::json::from_msgpack(start, r.pos());
  } else if constexpr (is_vector<T>::value) {
    auto n = r.array();  // at most the bytes left
    v.clear();
    v.reserve(std::min<std::size_t>(n, kMaxReserve));
    for (std::size_t i = 0; i < n; ++i) {
      v.emplace_back();
      unpack(r, bulk, v.back());
    }
  } else if constexpr (is_pair<T>::value) {
    if (r.array() != 2) msgpack::Reader::fail("pair");
    unpack(r, bulk, v.first);
    unpack(r, bulk, v.second);
  } else if constexpr (is_variant<T>::value) {
    if (r.array() != 2) msgpack::Reader::fail("message");
    auto idx = r.uinteger();
    unpack_variant(r, bulk, idx, v, std::make_index_sequence<std::variant_size_v<T>>{});
  } else if constexpr (Tied<T>) {
    auto t = v.tie();
    constexpr std::size_t n = std::tuple_size_v<decltype(t)>;
    auto have = r.array();
    if (have < n) msgpack::Reader::fail("message has too few fields");
    std::apply([&](auto&... f) { (unpack(r, bulk, f), ...); }, t);
    for (std::size_t i = n; i < have; ++i) r.skip();  // fields from a newer minor revision
  } else {
    static_assert(dependent_false<T>, "no wire decoding for this type");
  }
}

template <class V, std::size_t... I>
void unpack_variant(msgpack::Reader& r, const std::vector<Buffer>& bulk, std::size_t idx, V& out,
                    std::index_sequence<I...>) {
  bool found = false;
  ((idx == I ? (out.template emplace<I>(), unpack(r, bulk, std::get<I>(out)), found = true) : false), ...);
  if (!found) throw std::runtime_error("unknown message type " + std::to_string(idx));
}
}  // namespace detail

template <class V>
Frames encode_batch(const std::vector<V>& msgs) {
  Frames f;
  msgpack::Writer w(f.head);
  w.array(4);
  w.str(kMagic);
  w.uinteger(kProtocolVersion);
  char dir = static_cast<char>(direction_of<V>::value);
  w.str(std::string_view(&dir, 1));
  w.array(msgs.size());
  for (const auto& m : msgs) detail::pack(w, f.bulk, m);
  return f;
}

template <class V>
Frames encode_one(V msg) {
  return encode_batch(std::vector<V>{std::move(msg)});
}

// Never throws: a malformed or foreign envelope comes back as an error string to log and drop.
template <class V>
Decoded<V> decode_batch(const void* head, std::size_t len, const std::vector<Buffer>& bulk) {
  Decoded<V> d;
  try {
    auto p = static_cast<const std::uint8_t*>(head);
    msgpack::Reader r(p, p + len);
    if (r.array() != 4 || r.str() != kMagic) throw std::runtime_error("not a dtask message");
    d.peer_version = static_cast<std::uint32_t>(r.uinteger());
    if (d.peer_version != kProtocolVersion) {
      throw std::runtime_error("protocol version mismatch: peer speaks version " + std::to_string(d.peer_version) +
                               ", this build speaks version " + std::to_string(kProtocolVersion));
    }
    auto dir = r.str();
    if (dir.size() != 1 || dir[0] != static_cast<char>(direction_of<V>::value)) {
      throw std::runtime_error("message for another role (direction '" + dir + "')");
    }
    auto n = r.array();
    d.messages.reserve(std::min<std::size_t>(n, detail::kMaxReserve));
    for (std::size_t i = 0; i < n; ++i) {
      d.messages.emplace_back();
      detail::unpack(r, bulk, d.messages.back());
    }
    if (!r.at_end()) throw std::runtime_error("trailing bytes after the messages");
  } catch (const std::exception& e) {
    d.messages.clear();
    d.error = e.what();
  }
  return d;
}

}  // namespace dtask::protocol

