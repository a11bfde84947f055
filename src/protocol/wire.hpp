// Wire codec: a batch of messages becomes one MessagePack envelope plus zero-copy bulk frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/messages.hpp"

namespace dtask::protocol {

// Payloads inside messages keep their bulk frames out of the MessagePack envelope. While one
// batch is encoded or decoded, this thread-local points at the frame list being built or read;
// the Payload serializer below appends to it or indexes into it.
struct FrameContext {
  std::vector<Buffer>* out = nullptr;
  const std::vector<Buffer>* in = nullptr;
};
inline thread_local FrameContext tls_frames;

}  // namespace dtask::protocol

namespace nlohmann {
// Payload on the wire: [header bytes, first bulk frame index, bulk frame count].
template <>
struct adl_serializer<dtask::Payload> {
  static void to_json(json& j, const dtask::Payload& p) {
    auto* out = dtask::protocol::tls_frames.out;
    std::size_t first = out ? out->size() : 0;
    if (out) out->insert(out->end(), p.frames.begin(), p.frames.end());
    j = json::array({json::binary(std::vector<std::uint8_t>(p.header.begin(), p.header.end())), first,
                     out ? p.frames.size() : 0});
  }
  static void from_json(const json& j, dtask::Payload& p) {
    const auto& bin = j.at(0).get_binary();
    p.header.assign(bin.begin(), bin.end());
    auto first = j.at(1).get<std::size_t>();
    auto count = j.at(2).get<std::size_t>();
    p.frames.clear();
    if (count == 0) return;
    auto* in = dtask::protocol::tls_frames.in;
    if (!in || first + count > in->size()) throw std::runtime_error("payload refers to a missing frame");
    p.frames.assign(in->begin() + static_cast<std::ptrdiff_t>(first),
                    in->begin() + static_cast<std::ptrdiff_t>(first + count));
  }
};
}  // namespace nlohmann

namespace dtask::protocol {

template <class M>
concept Tied = requires(const M& m) { m.tie(); };

template <Tied M>
void to_json(nlohmann::json& j, const M& m) {
  j = nlohmann::json::array();
  std::apply([&](const auto&... f) { (j.push_back(nlohmann::json(f)), ...); }, m.tie());
}
template <Tied M>
void from_json(const nlohmann::json& j, M& m) {
  auto t = m.tie();
  constexpr std::size_t n = std::tuple_size_v<decltype(t)>;
  if (!j.is_array() || j.size() < n) throw std::runtime_error("message has too few fields");
  std::size_t i = 0;
  std::apply([&](auto&... f) { ((j[i++].get_to(f)), ...); }, t);
}
template <class Tag, class Rep>
void to_json(nlohmann::json& j, const StrongId<Tag, Rep>& id) {
  j = id.value;
}
template <class Tag, class Rep>
void from_json(const nlohmann::json& j, StrongId<Tag, Rep>& id) {
  j.get_to(id.value);
}

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

template <class V>
Frames encode_batch(const std::vector<V>& msgs) {
  Frames f;
  FrameContext saved = tls_frames;
  tls_frames = FrameContext{&f.bulk, nullptr};
  nlohmann::json body = nlohmann::json::array();
  for (const auto& m : msgs) {
    body.push_back(std::visit(
        [&](const auto& alt) { return nlohmann::json::array({m.index(), nlohmann::json(alt)}); }, m));
  }
  tls_frames = saved;
  nlohmann::json env = nlohmann::json::array(
      {kMagic, kProtocolVersion, std::string(1, static_cast<char>(direction_of<V>::value)), std::move(body)});
  nlohmann::json::to_msgpack(env, f.head);
  return f;
}

template <class V>
Frames encode_one(V msg) {
  return encode_batch(std::vector<V>{std::move(msg)});
}

namespace detail {
template <class V, std::size_t... I>
V variant_from_index(std::size_t idx, const nlohmann::json& fields, std::index_sequence<I...>) {
  V out;
  bool found = false;
  ((idx == I ? (out = fields.get<std::variant_alternative_t<I, V>>(), found = true) : false), ...);
  if (!found) throw std::runtime_error("unknown message type " + std::to_string(idx));
  return out;
}
}  // namespace detail

// Never throws: a malformed or foreign envelope comes back as an error string to log and drop.
template <class V>
Decoded<V> decode_batch(const void* head, std::size_t len, const std::vector<Buffer>& bulk) {
  Decoded<V> d;
  FrameContext saved = tls_frames;
  tls_frames = FrameContext{nullptr, &bulk};
  try {
    auto p = static_cast<const std::uint8_t*>(head);
    auto env = nlohmann::json::from_msgpack(p, p + len);
    if (!env.is_array() || env.size() != 4 || !env[0].is_string() || env[0] != kMagic) {
      throw std::runtime_error("not a dtask message");
    }
    d.peer_version = env[1].get<std::uint32_t>();
    if (d.peer_version != kProtocolVersion) {
      throw std::runtime_error("protocol version mismatch: peer speaks version " + std::to_string(d.peer_version) +
                               ", this build speaks version " + std::to_string(kProtocolVersion));
    }
    auto dir = env[2].get<std::string>();
    if (dir.size() != 1 || dir[0] != static_cast<char>(direction_of<V>::value)) {
      throw std::runtime_error("message for another role (direction '" + dir + "')");
    }
    const auto& body = env[3];
    d.messages.reserve(body.size());
    for (const auto& m : body) {
      if (!m.is_array() || m.size() != 2) throw std::runtime_error("malformed message");
      d.messages.push_back(detail::variant_from_index<V>(m[0].get<std::size_t>(), m[1],
                                                         std::make_index_sequence<std::variant_size_v<V>>{}));
    }
  } catch (const std::exception& e) {
    d.messages.clear();
    d.error = e.what();
  }
  tls_frames = saved;
  return d;
}

}  // namespace dtask::protocol

