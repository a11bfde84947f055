// Binary encoding of task arguments and results: MessagePack headers plus zero-copy side frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
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
inline nlohmann::json from_msgpack(const std::string& header) {
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
  static T decode(const Payload& p) { return detail::from_msgpack(p.header).template get<T>(); }
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
    const auto* first = bulk_data(p, h);
    // A bulk vector may also arrive as an ordinary MessagePack array (e.g. built by another type).
    if (!first) return h.template get<T>();
    std::size_t count = p.frames[0].size() / sizeof(Elem);
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
  // The bulk frame's bytes, or nullptr when `h` is not a bulk header; a bulk header of another
  // element type or size is an error, not garbage.
  static const std::byte* bulk_data(const Payload& p, const nlohmann::json& h) {
    if (!h.is_array() || h.size() != 3 || h[0] != "__bulk") return nullptr;
    auto elem_size = h[1].get<std::size_t>();
    auto count = h[2].get<std::size_t>();
    if (elem_size != sizeof(Elem) || p.frames.size() != 1 || p.frames[0].size() != elem_size * count) {
      throw std::runtime_error("bulk vector payload does not match the expected element type");
    }
    return p.frames[0].data();
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
    if (const std::byte* data = VectorCodec::bulk_data(p, h)) {
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
