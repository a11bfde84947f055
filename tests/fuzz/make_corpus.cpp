// Writes the fuzzers' seed corpus: valid encoded messages of every type, and the hostile inputs of issue 13.
// Usage: make_corpus <dir>   (writes <dir>/wire/* and <dir>/codec/*; tests/fuzz/run.sh --corpus)
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "fuzz_input.hpp"
#include "protocol/wire.hpp"

namespace fs = std::filesystem;
using namespace dtask;
using namespace dtask::protocol;

namespace {

fs::path out_dir;

void write(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(out_dir / target);
  std::ofstream(out_dir / target / name, std::ios::binary) << bytes;
}

template <class V>
std::uint8_t selector() {
  if constexpr (std::is_same_v<V, ClientToScheduler>) return 0;
  else if constexpr (std::is_same_v<V, SchedulerToClient>) return 1;
  else if constexpr (std::is_same_v<V, WorkerToScheduler>) return 2;
  else if constexpr (std::is_same_v<V, SchedulerToWorker>) return 3;
  else if constexpr (std::is_same_v<V, PeerRequest>) return 4;
  else return 5;
}

template <class V>
void wire(const std::string& name, const std::vector<V>& msgs) {
  Frames f = encode_batch(msgs);
  write("wire", name, fuzz::join(selector<V>(), f.head, f.bulk));
}

// One default-constructed message of every type of direction V, each its own file.
template <class V, std::size_t... I>
void every_type(const std::string& dir, std::index_sequence<I...>) {
  (wire<V>(dir + "-type" + std::to_string(I), {V(std::in_place_index<I>)}), ...);
}
template <class V>
void every_type(const std::string& dir) {
  every_type<V>(dir, std::make_index_sequence<std::variant_size_v<V>>{});
}

ClientArg value_arg(Payload p) {
  ClientArg a;
  a.kind = ClientArg::value;
  a.data = std::move(p);
  return a;
}

// An envelope holding one message of direction V, type `index`, whose fields are `fields` (raw
// MessagePack) followed by `extra` (a field from "a newer minor revision", which the decoder skips).
template <class V>
std::string raw_message(std::size_t index, std::size_t n_fields, const std::string& fields, const std::string& extra) {
  std::string head;
  msgpack::Writer w(head);
  w.array(4);
  w.str(kMagic);
  w.uinteger(kProtocolVersion);
  char dir = static_cast<char>(direction_of<V>::value);
  w.str(std::string_view(&dir, 1));
  w.array(1);
  w.array(2);
  w.uinteger(index);
  w.array(n_fields + 1);
  head += fields;
  head += extra;
  return fuzz::join(selector<V>(), head, {});
}

void codec(const std::string& name, std::uint8_t sel, const Payload& p) {
  write("codec", name, fuzz::join(sel, p.header, p.frames));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  out_dir = argv[1];

  // ---- wire: every message type of every direction, then a few with real contents
  every_type<ClientToScheduler>("c2s");
  every_type<SchedulerToClient>("s2c");
  every_type<WorkerToScheduler>("w2s");
  every_type<SchedulerToWorker>("s2w");
  every_type<PeerRequest>("peer-request");
  every_type<PeerReply>("peer-reply");

  TaskSpec t;
  t.key = "inc-1";
  t.func = "inc";
  t.args = {value_arg(encode(41)), value_arg(encode(std::vector<double>{1.5, 2.5})),
            value_arg(encode(std::vector<double>{}))};
  ClientArg dep;
  dep.kind = ClientArg::dep;
  dep.refs = {"other-key"};
  t.args.push_back(dep);
  t.workers = {"0"};
  t.resources = {{"GPU", 1.0}};
  wire<ClientToScheduler>("c2s-submit-with-args", {SubmitTasks{{t}}});
  wire<ClientToScheduler>("c2s-batch", {RegisterClient{kProtocolVersion, "client", "data-id"},
                                        SubmitTasks{{t, t}}, ReleaseKeys{{"inc-1", ""}}});
  InfoReply info;
  info.request_id = 7;
  info.info = nlohmann::json{{"workers", {{"0", {{"threads", 1}}}}}, {"n_tasks", 3}};
  wire<SchedulerToClient>("s2c-info-reply", {info});
  wire<PeerRequest>("peer-request-get-data", {GetData{9, {TaskId{1}, TaskId{2}}}});

  // ---- wire, hostile (issue 13): deep nesting where the decoder skips an unknown extra field.
  // ReleaseKeys (client -> scheduler, index 2) has one field, `keys`: an empty array.
  // 100,000 levels overflow nlohmann's parser under ASan; Reader::skip() uses 32 bytes a level
  // (an 8 MiB stack holds 262,144 of them), so the skipped field gets 300,000.
  const std::size_t kDeep = 100'000;
  const std::size_t kDeepSkip = 300'000;
  wire<ClientToScheduler>("c2s-release-keys", {ReleaseKeys{{"k"}}});
  write("wire", "hostile-deep-nesting-extra-field",
        raw_message<ClientToScheduler>(2, 1, "\x90", std::string(kDeepSkip, '\x91') + '\xc0'));
  // The same inside the one nlohmann::json field (InfoReply.info, scheduler -> client, index 6).
  {
    std::string fields = "\x07" + std::string(kDeep, '\x91') + '\xc0';
    std::string m = raw_message<SchedulerToClient>(6, 2, fields, "");
    // raw_message declared one more field than given; fix the count (0x93 -> 0x92).
    auto at = m.find('\x93');
    m[at] = '\x92';
    write("wire", "hostile-deep-nesting-json-field", m);
  }
  // A count far beyond the bytes that follow (array32 of 2^32-1 messages, then nothing).
  {
    std::string head;
    msgpack::Writer w(head);
    w.array(4);
    w.str(kMagic);
    w.uinteger(kProtocolVersion);
    w.str("c");
    head += "\xdd\xff\xff\xff\xff";
    write("wire", "hostile-huge-count", fuzz::join(0, head, {}));
  }

  // ---- codec: valid payloads of each decoded type (selectors as in fuzz_codec.cpp)
  codec("vector-double", 0, encode(std::vector<double>{0.5, -1.0, 1e300}));
  codec("vector-double-empty", 0, encode(std::vector<double>{}));  // issue 13's bug
  {
    Payload p = encode(std::vector<double>{});
    p.frames = {Buffer()};  // an empty frame with no memory: what a worker holds
    codec("vector-double-empty-null-frame", 0, p);
  }
  codec("vector-double-given-int64-bulk", 0, Codec<std::vector<long long>>::encode({1, 2}));
  {
    Payload plain;
    plain.header = dtask::detail::to_msgpack(nlohmann::json::array({1.0, 2.0}));
    codec("vector-double-as-msgpack-array", 0, plain);
  }
  codec("vector-float", 1, encode(std::vector<float>{1.f, 2.f}));
  codec("vector-int32", 2, encode(std::vector<std::int32_t>{-1, 0, 1}));
  codec("vector-uint8", 3, encode(std::vector<std::uint8_t>{1, 2, 3, 4, 5}));
  codec("vector-uint64", 4, encode(std::vector<std::uint64_t>{~0ull}));
  codec("span-double", 5, encode(std::vector<double>{3.0}));
  codec("span-uint8-empty", 6, encode(std::vector<std::uint8_t>{}));
  codec("string", 7, encode(std::string("hello")));
  codec("string-empty", 7, encode(std::string()));
  codec("nested", 8, encode(std::vector<std::vector<double>>{{}, {1.0}}));
  codec("map", 9, encode(std::map<std::string, std::vector<long long>>{{"a", {1}}, {"", {}}}));
  codec("int", 10, encode(42));
  codec("json", 11, encode(nlohmann::json{{"a", {1, "b", nullptr, true, 2.5}}}));
  // ---- codec, hostile: the deep nesting inside a payload header (decoded by nlohmann, recursive)
  {
    Payload deep;
    deep.header = std::string(kDeep, '\x91') + '\xc0';
    codec("hostile-deep-nesting-header", 11, deep);
    codec("hostile-deep-nesting-header-vector", 0, deep);
  }
  {
    Payload lie;  // a bulk header whose count does not match its frame
    lie.header = dtask::detail::to_msgpack(nlohmann::json::array({"__bulk", 8, 1u << 30}));
    lie.frames = {Buffer::copy_of("12345678", 8)};
    codec("hostile-bulk-count-lies", 0, lie);
  }
  return 0;
}
