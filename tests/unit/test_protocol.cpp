// Every message round-trips through the wire codec; bad envelopes become errors, not crashes.
#include <doctest/doctest.h>

#include <cstring>
#include <set>
#include <tuple>
#include <utility>
#include <variant>

#include "protocol/wire.hpp"

using namespace dtask;
using namespace dtask::protocol;

namespace {

// ---- helpers ------------------------------------------------------------------------------

// How many members an aggregate has (the count of initialisers it accepts), so a test can see
// that every member of a message is in its DTASK_FIELDS list, including ones added later.
struct AnyField {
  template <class T>
  operator T&() const;
  template <class T>
  operator T&&() const;
};
template <class T, class... A>
constexpr std::size_t member_count() {
  if constexpr (requires { T{A{}..., AnyField{}}; }) return member_count<T, A..., AnyField>();
  else return sizeof...(A);
}
template <class T>
constexpr std::size_t field_count() {
  return std::tuple_size_v<decltype(std::declval<const T&>().tie())>;
}
// Every member of T is serialised (checked at compile time; the failure names the type).
template <class T>
constexpr bool all_members_are_fields() {
  static_assert(member_count<T>() == field_count<T>(), "a member is missing from DTASK_FIELDS");
  return true;
}

Payload sample_payload(bool with_frame) {
  Payload p = Codec<int>::encode(42);
  if (with_frame) p = Codec<std::vector<double>>::encode(std::vector<double>{1.5, 2.5, 3.5});
  return p;
}
// A payload with a header and two frames, none of it default.
Payload two_frames() {
  Payload p = Codec<std::string>::encode("two frames");
  p.frames.push_back(Buffer::copy_of("abc", 3));
  p.frames.push_back(Buffer::copy_of("defgh", 5));
  return p;
}

// Encodes a batch of one message (twice, so a second message is read after the first),
// decodes it and compares the whole struct with the original; then encodes the result again:
// both encodings must be identical, byte for byte and frame for frame.
template <class V>
void check_round_trip(const V& msg) {
  INFO("variant alternative " << msg.index());
  Frames a = encode_batch(std::vector<V>{msg, msg});
  auto d = decode_batch<V>(a.head.data(), a.head.size(), a.bulk);
  REQUIRE_MESSAGE(d.ok(), d.error);
  REQUIRE(d.messages.size() == 2);
  CHECK(d.messages[0].index() == msg.index());
  CHECK(d.messages[0] == msg);
  CHECK(d.messages[1] == msg);
  Frames b = encode_batch(d.messages);
  CHECK(a.head == b.head);
  REQUIRE(a.bulk.size() == b.bulk.size());
  for (std::size_t i = 0; i < a.bulk.size(); ++i) {
    REQUIRE(a.bulk[i].size() == b.bulk[i].size());
    CHECK(std::memcmp(a.bulk[i].data(), b.bulk[i].data(), a.bulk[i].size()) == 0);
  }
}

// Round-trips every sample and checks that together they cover every message of the direction
// and that every member of each is serialised.
template <class V>
void check_direction(const std::vector<V>& samples) {
  std::set<std::size_t> seen;
  for (const auto& m : samples) {
    check_round_trip(m);
    seen.insert(m.index());
  }
  CHECK(seen.size() == std::variant_size_v<V>);
  []<std::size_t... I>(std::index_sequence<I...>) {
    static_assert((all_members_are_fields<std::variant_alternative_t<I, V>>() && ...));
  }(std::make_index_sequence<std::variant_size_v<V>>{});
}

// The nested structs, checked the same way.
static_assert(all_members_are_fields<ClientArg>() && all_members_are_fields<TaskArg>() &&
              all_members_are_fields<TaskSpec>() && all_members_are_fields<PushReceipt>() &&
              all_members_are_fields<Peer>() && all_members_are_fields<DepLocation>() &&
              all_members_are_fields<DataItem>());

// ---- samples: EVERY field of EVERY message set to a value that is not its default, so a field
// the codec drops (or a member left out of DTASK_FIELDS) makes the round trip fail ----------

constexpr std::uint32_t kOtherVersion = kProtocolVersion + 7;

ClientArg client_arg() {
  ClientArg a;
  a.kind = ClientArg::dep_list;
  a.data = two_frames();
  a.refs = {"a", "b"};
  return a;
}
TaskArg task_arg() {
  TaskArg a;
  a.kind = TaskArg::dep;
  a.data = sample_payload(true);
  a.refs = {make_task_id(3, 1), make_task_id(4, 0)};
  return a;
}
// The old helper: a realistic argument of each kind (used by the envelope tests below).
TaskArg task_arg(std::uint8_t kind) {
  TaskArg a;
  a.kind = kind;
  if (kind == TaskArg::value) a.data = sample_payload(true);
  else a.refs = {make_task_id(3, 1), make_task_id(4, 0)};
  return a;
}

TaskSpec task_spec(const std::string& key) {
  TaskSpec spec;
  spec.key = key;
  spec.func = "inc";
  spec.args = {client_arg(), ClientArg{ClientArg::value, sample_payload(false), {}}};
  spec.priority = -3;
  spec.retries = 2;
  spec.workers = {"1", "node2"};
  spec.allow_other_workers = true;
  spec.resources = {{"GPU", 2.0}, {"MEM", 1e9}};
  spec.wanted = false;
  spec.push_result = true;
  spec.early_nonce = 0xfeedface12345ull;
  spec.early_on = WorkerId{6};
  return spec;
}

ComputeTask compute_task() {
  ComputeTask c;
  c.task = make_task_id(10, 3);
  c.key = "add-1";
  c.func = "add";
  c.args = {task_arg(), task_arg(TaskArg::value), task_arg(TaskArg::dep_list)};
  c.deps = {DepLocation{make_task_id(3, 1), {WorkerId{4}, WorkerId{2}}, {"tcp://a:1", "tcp://b:2"}}};
  c.resources = {{"GPU", 1}};
  c.priority = 5;
  c.push_to = {"client-1", "client-2"};
  c.dependents_waiting = true;
  c.early_nonce = 99;
  return c;
}

RegisterWorker register_worker() {
  RegisterWorker r;
  r.version = kOtherVersion;
  r.name = "2";
  r.host = "node1";
  r.address = "tcp://10.77.0.1:4000";
  r.nthreads = 4;
  r.rank = 2;
  r.memory_limit = 1ull << 33;
  r.resources = {{"GPU", 2}};
  r.pid = 1234;
  return r;
}

}  // namespace

TEST_CASE("Protocol.Equality.SeesEveryField") {
  // The comparison the round trips rely on must itself see a difference in any field.
  ComputeTask a = compute_task();
  CHECK(a == compute_task());
  ComputeTask b = a;
  b.early_nonce = 0;
  CHECK_FALSE(a == b);
  b = a;
  b.push_to.clear();
  CHECK_FALSE(a == b);
  b = a;
  b.args[0].data.frames[0] = Buffer::copy_of("x", 1);
  CHECK_FALSE(a == b);
  TaskSpec s = task_spec("k");
  TaskSpec t = s;
  t.early_on = WorkerId{0};
  CHECK_FALSE(s == t);
  // Payloads compare by bytes, not by who owns them.
  Payload p = two_frames();
  Payload q = p;
  q.frames[1] = Buffer::copy_of("defgh", 5);
  CHECK(p == q);
  q.frames[1] = Buffer::copy_of("defgX", 5);
  CHECK_FALSE(p == q);
}

TEST_CASE("Protocol.RoundTrip.ClientToScheduler") {
  check_direction<ClientToScheduler>({
      RegisterClient{kOtherVersion, "me", "client-0badc0de"},
      SubmitTasks{{task_spec("inc-1"), task_spec("inc-2")}},
      ReleaseKeys{{"a", "b"}},
      CancelKeys{{"c"}},
      InfoRequest{77, {}, 0},
      InfoRequest{78, "report", 1764540000000},
      Heartbeat{123456},
      ShutdownCluster{3},
      ClientGoodbye{-1},
      ResultsReceived{{PushReceipt{make_task_id(7, 1), WorkerId{2}, 12, "k1"},
                       PushReceipt{make_task_id(9, 3), WorkerId{5}, 70000, "k2"}}},
      RetireWorkers{{"w-0", "w-1"}},
  });
}

TEST_CASE("Protocol.RoundTrip.SchedulerToClient") {
  check_direction<SchedulerToClient>({
      ClientWelcome{kOtherVersion, ClientId{5}, {}},
      ClientWelcome{kOtherVersion, ClientId{6}, "http://n1:8787/status?token=ab"},
      Rejected{"nope"},
      KeyDone{"k", make_task_id(7, 2), {"tcp://10.0.0.1:5000", "tcp://10.0.0.2:5000"}, 99, true, two_frames()},
      KeyDone{"k", make_task_id(7, 2), {}, 3, true, sample_payload(false)},
      KeyErred{"k", "inc", "boom"},
      KeyCancelled{"k", "cancelled"},
      KeyLost{"k"},
      InfoReply{9, nlohmann::json{{"workers", nlohmann::json::array({1, "two"})}}},
      Heartbeat{1},
      ClusterClosing{3, "done"},
  });
}

TEST_CASE("Protocol.RoundTrip.WorkerToScheduler") {
  check_direction<WorkerToScheduler>({
      register_worker(),
      TaskDone{make_task_id(1, 1), 64, true, two_frames()},
      TaskDone{make_task_id(1, 1), 64, false, {}},
      TaskFailed{make_task_id(1, 1), "boom"},
      ReplicasAdded{{make_task_id(1, 1), make_task_id(2, 0)}},
      StealReply{make_task_id(1, 2), true},
      FetchFailed{make_task_id(1, 2), make_task_id(2, 3)},
      Heartbeat{5},
      WorkerGoodbye{4},
      RetireWorker{{make_task_id(1, 1), make_task_id(2, 0)}, true},
      MemoryReport{100 << 20, 300 << 20, 7, 180 << 20, 256 << 20, true},
      Telemetry{{TaskRun{make_task_id(1, 1), "inc", 1764540000000000, 1764540000000100, 1, false},
                 TaskRun{make_task_id(2, 1), "fail", 1764540000000200, 1764540000000300, 0, true}},
                5,
                {FuncTotals{"inc", 6, 0, 600, 120}, FuncTotals{"fail", 1, 1, 100, 100}},
                {TransferTotals{"tcp://10.0.0.2:4000", 3, 4096, 250}},
                {LogLine{1764540000000000, "info", "worker w0 started"}, LogLine{1764540000000001, "warning", "a \"quoted\" line"}},
                700},
      Telemetry{},
  });
}

TEST_CASE("Protocol.RoundTrip.SchedulerToWorker") {
  check_direction<SchedulerToWorker>({
      WorkerWelcome{kOtherVersion, WorkerId{1}, {Peer{WorkerId{3}, "tcp://a:1"}}, 250},
      Rejected{"duplicate"},
      PeersChanged{{Peer{WorkerId{3}, "tcp://b:2"}}, {WorkerId{1}}},
      compute_task(),
      ReleaseTasks{{make_task_id(1, 2)}},
      StealRequest{make_task_id(1, 2)},
      Heartbeat{9},
      WorkerShutdown{3},
      FetchReplicas{WorkerId{2}, "tcp://c:3", {make_task_id(1, 2)}},
      WorkerMayLeave{7},
      PleaseRetire{"asked by client 2"},
  });
}

TEST_CASE("Protocol.RoundTrip.PeerRequest") {
  check_direction<PeerRequest>({
      GetData{4, {make_task_id(1, 2), make_task_id(2, 3)}},
      StartTask{0xabcdef0123ull, "inc-7", "inc", {sample_payload(false), two_frames()}, "client-0badc0de"},
  });
}

TEST_CASE("Protocol.RoundTrip.PeerReply") {
  DataItem found{make_task_id(1, 2), true, two_frames()};
  DataItem second{make_task_id(2, 3), true, sample_payload(true)};
  check_direction<PeerReply>({
      DataReply{4, {found, second}},
      Rejected{"x"},
      ResultPushed{make_task_id(7, 1), "inc-7", two_frames(), WorkerId{2}, true},
      NotStarted{"inc-8"},
  });
}

TEST_CASE("Protocol.Payload.BulkFramesAreNotCopiedIntoTheEnvelope") {
  std::vector<double> big(1 << 16, 1.25);
  ComputeTask c;
  TaskArg a;
  a.data = Codec<std::vector<double>>::encode(std::move(big));
  c.args = {a};
  Frames f = encode_batch(std::vector<SchedulerToWorker>{c});
  REQUIRE(f.bulk.size() == 1);
  CHECK(f.bulk[0].size() == (1u << 16) * sizeof(double));
  CHECK(f.head.size() < 512);  // the 512 KiB went out of band
  auto d = decode_batch<SchedulerToWorker>(f.head.data(), f.head.size(), f.bulk);
  REQUIRE(d.ok());
  auto back = Codec<std::vector<double>>::decode(std::get<ComputeTask>(d.messages[0]).args[0].data);
  CHECK(back.size() == (1u << 16));
  CHECK(back[12345] == 1.25);
}

TEST_CASE("Protocol.Envelope.RejectsGarbageAndForeignVersions") {
  std::string junk = "this is not msgpack";
  auto d = decode_batch<WorkerToScheduler>(junk.data(), junk.size(), {});
  CHECK_FALSE(d.ok());

  nlohmann::json env = nlohmann::json::array({"dtask", kProtocolVersion + 1, "W", nlohmann::json::array()});
  std::string head;
  nlohmann::json::to_msgpack(env, head);
  auto v = decode_batch<WorkerToScheduler>(head.data(), head.size(), {});
  CHECK_FALSE(v.ok());
  CHECK(v.peer_version == kProtocolVersion + 1);
  CHECK(v.error.find("protocol version mismatch") != std::string::npos);

  // A client's batch is not a worker's.
  Frames f = encode_batch(std::vector<ClientToScheduler>{Heartbeat{1}});
  auto w = decode_batch<WorkerToScheduler>(f.head.data(), f.head.size(), f.bulk);
  CHECK_FALSE(w.ok());

  // A payload pointing at a frame that is not there.
  Frames g = encode_batch(std::vector<SchedulerToWorker>{ComputeTask{make_task_id(1, 0), "k", "f", {task_arg(TaskArg::value)}, {}, {}, 0, {}, false}});
  auto missing = decode_batch<SchedulerToWorker>(g.head.data(), g.head.size(), {});
  CHECK_FALSE(missing.ok());
}

TEST_CASE("Codec.Values") {
  CHECK(decode<int>(encode(7)) == 7);
  CHECK(decode<std::string>(encode(std::string("hé"))) == "hé");
  std::vector<long long> xs{1, 2, 3};
  CHECK(decode<std::vector<long long>>(encode(xs)) == xs);
  std::vector<std::uint8_t> bytes(1000, 7);
  auto p = encode(bytes);
  CHECK(p.frames.size() == 1);
  CHECK(decode<std::vector<std::uint8_t>>(p) == bytes);
  // A bulk vector of the wrong element type is an error, not garbage.
  CHECK_THROWS(decode<std::vector<float>>(encode(std::vector<double>{1.0})));
  std::map<std::string, int> m{{"a", 1}};
  CHECK(decode<std::map<std::string, int>>(encode(m)) == m);
}
