// libFuzzer target: the wire decoder (protocol::decode_batch, what transport::decode runs) for every direction.
#include <cstdint>
#include <cstdlib>

#include "fuzz_input.hpp"
#include "protocol/wire.hpp"

namespace {

using namespace dtask::protocol;

// Decodes `in` as a batch of V; whatever decodes must encode again and decode to a batch that
// encodes to the same bytes (a decoder that accepts what it cannot reproduce has misread it).
template <class V>
void decode_as(const dtask::fuzz::Input& in) {
  auto d = decode_batch<V>(in.main.data(), in.main.size(), in.frames);
  if (!d.ok()) return;
  Frames once = encode_batch(d.messages);
  auto again = decode_batch<V>(once.head.data(), once.head.size(), once.bulk);
  if (!again.ok()) std::abort();
  Frames twice = encode_batch(again.messages);
  if (twice.head != once.head || twice.bulk.size() != once.bulk.size()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto in = dtask::fuzz::split(data, size);
  switch (in.selector % 6) {
    case 0: decode_as<ClientToScheduler>(in); break;
    case 1: decode_as<SchedulerToClient>(in); break;
    case 2: decode_as<WorkerToScheduler>(in); break;
    case 3: decode_as<SchedulerToWorker>(in); break;
    case 4: decode_as<PeerRequest>(in); break;
    default: decode_as<PeerReply>(in); break;
  }
  return 0;
}
