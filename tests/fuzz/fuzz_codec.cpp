// libFuzzer target: the payload codec (Codec<T>::decode) for the value types users send most.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <dtask/codec.hpp>

#include "fuzz_input.hpp"

namespace {

bool same_bytes(const dtask::Payload& a, const dtask::Payload& b) {
  if (a.header != b.header || a.frames.size() != b.frames.size()) return false;
  for (std::size_t i = 0; i < a.frames.size(); ++i) {
    if (a.frames[i].size() != b.frames[i].size()) return false;
    if (a.frames[i].size() && std::memcmp(a.frames[i].data(), b.frames[i].data(), a.frames[i].size())) return false;
  }
  return true;
}

// Decodes the payload as T. Errors are exceptions (the worker turns them into a task error);
// what decodes must survive a round trip byte for byte: encode, decode, encode again.
template <class T>
void decode_as(const dtask::Payload& p) {
  try {
    T v = dtask::Codec<T>::decode(p);
    dtask::Payload once = dtask::Codec<T>::encode(v);
    dtask::Payload twice = dtask::Codec<T>::encode(dtask::Codec<T>::decode(once));
    if (!same_bytes(once, twice)) std::abort();
  } catch (const std::exception&) {
  }
  dtask::detail::span_keepalive().clear();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto in = dtask::fuzz::split(data, size);
  dtask::Payload p{std::move(in.main), std::move(in.frames)};
  switch (in.selector % 12) {
    case 0: decode_as<std::vector<double>>(p); break;
    case 1: decode_as<std::vector<float>>(p); break;
    case 2: decode_as<std::vector<std::int32_t>>(p); break;
    case 3: decode_as<std::vector<std::uint8_t>>(p); break;
    case 4: decode_as<std::vector<std::uint64_t>>(p); break;
    case 5: decode_as<std::span<const double>>(p); break;
    case 6: decode_as<std::span<const std::uint8_t>>(p); break;
    case 7: decode_as<std::string>(p); break;
    case 8: decode_as<std::vector<std::vector<double>>>(p); break;
    case 9: decode_as<std::map<std::string, std::vector<long long>>>(p); break;
    case 10: decode_as<int>(p); break;
    default: decode_as<nlohmann::json>(p); break;
  }
  return 0;
}
