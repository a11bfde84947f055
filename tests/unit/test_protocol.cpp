// Every message round-trips through the wire codec; bad envelopes become errors, not crashes.
#include <doctest/doctest.h>

#include <cstring>

#include "protocol/wire.hpp"

using namespace dtask;
using namespace dtask::protocol;

namespace {

Payload sample_payload(bool with_frame) {
  Payload p = Codec<int>::encode(42);
  if (with_frame) p = Codec<std::vector<double>>::encode(std::vector<double>{1.5, 2.5, 3.5});
  return p;
}

// Encodes one message, decodes it, encodes the result again: both encodings must be identical,
// field for field and frame for frame.
template <class V>
void check_round_trip(const V& msg) {
  Frames a = encode_batch(std::vector<V>{msg, msg});
  auto d = decode_batch<V>(a.head.data(), a.head.size(), a.bulk);
  REQUIRE_MESSAGE(d.ok(), d.error);
  REQUIRE(d.messages.size() == 2);
  CHECK(d.messages[0].index() == msg.index());
  Frames b = encode_batch(d.messages);
  CHECK(a.head == b.head);
  REQUIRE(a.bulk.size() == b.bulk.size());
  for (std::size_t i = 0; i < a.bulk.size(); ++i) {
    REQUIRE(a.bulk[i].size() == b.bulk[i].size());
    CHECK(std::memcmp(a.bulk[i].data(), b.bulk[i].data(), a.bulk[i].size()) == 0);
  }
}

TaskArg task_arg(std::uint8_t kind) {
  TaskArg a;
  a.kind = kind;
  if (kind == TaskArg::value) a.data = sample_payload(true);
  else a.refs = {make_task_id(3, 1), make_task_id(4, 0)};
  return a;
}

}  // namespace

TEST_CASE("Protocol.RoundTrip.ClientToScheduler") {
  TaskSpec spec;
  spec.key = "inc-1";
  spec.func = "inc";
  ClientArg v;
  v.kind = ClientArg::value;
  v.data = sample_payload(true);
  ClientArg d;
  d.kind = ClientArg::dep_list;
  d.refs = {"a", "b"};
  spec.args = {v, d};
  spec.priority = -3;
  spec.retries = 2;
  spec.workers = {"1", "node2"};
  spec.allow_other_workers = true;
  spec.resources = {{"GPU", 2.0}};
  spec.wanted = false;
  spec.push_result = true;
  check_round_trip<ClientToScheduler>(RegisterClient{kProtocolVersion, "me", "client-0badc0de"});
  check_round_trip<ClientToScheduler>(SubmitTasks{{spec, spec}});
  check_round_trip<ClientToScheduler>(ReleaseKeys{{"a", "b"}});
  check_round_trip<ClientToScheduler>(CancelKeys{{"c"}});
  check_round_trip<ClientToScheduler>(InfoRequest{77});
  check_round_trip<ClientToScheduler>(Heartbeat{123456});
  check_round_trip<ClientToScheduler>(ShutdownCluster{3});
  check_round_trip<ClientToScheduler>(ClientGoodbye{1});
  check_round_trip<ClientToScheduler>(
      ResultsReceived{{PushReceipt{make_task_id(7, 1), WorkerId{2}, 12, {}}, PushReceipt{make_task_id(9, 3), WorkerId{0}, 0, "k"}}});
}

TEST_CASE("Protocol.RoundTrip.SchedulerToClient") {
  check_round_trip<SchedulerToClient>(ClientWelcome{kProtocolVersion, ClientId{5}});
  check_round_trip<SchedulerToClient>(Rejected{"nope"});
  check_round_trip<SchedulerToClient>(KeyDone{"k", make_task_id(7, 2), {"tcp://10.0.0.1:5000"}, 99, false, {}});
  check_round_trip<SchedulerToClient>(KeyDone{"k", make_task_id(7, 2), {}, 3, true, sample_payload(false)});
  check_round_trip<SchedulerToClient>(KeyErred{"k", "inc", "boom"});
  check_round_trip<SchedulerToClient>(KeyCancelled{"k", "cancelled"});
  check_round_trip<SchedulerToClient>(KeyLost{"k"});
  check_round_trip<SchedulerToClient>(InfoReply{9, nlohmann::json{{"workers", nlohmann::json::array()}}});
  check_round_trip<SchedulerToClient>(Heartbeat{1});
  check_round_trip<SchedulerToClient>(ClusterClosing{3, "done"});
}

TEST_CASE("Protocol.RoundTrip.WorkerToScheduler") {
  RegisterWorker r;
  r.name = "2";
  r.host = "node1";
  r.address = "tcp://10.77.0.1:4000";
  r.nthreads = 4;
  r.rank = 2;
  r.memory_limit = 1 << 30;
  r.resources = {{"GPU", 2}};
  r.pid = 1234;
  check_round_trip<WorkerToScheduler>(r);
  check_round_trip<WorkerToScheduler>(TaskDone{make_task_id(1, 1), 64, false, {}});
  check_round_trip<WorkerToScheduler>(TaskDone{make_task_id(1, 1), 64, true, sample_payload(true)});
  check_round_trip<WorkerToScheduler>(TaskFailed{make_task_id(1, 1), "boom"});
  check_round_trip<WorkerToScheduler>(ReplicasAdded{{make_task_id(1, 1), make_task_id(2, 0)}});
  check_round_trip<WorkerToScheduler>(StealReply{make_task_id(1, 0), true});
  check_round_trip<WorkerToScheduler>(FetchFailed{make_task_id(1, 0), make_task_id(2, 0)});
  check_round_trip<WorkerToScheduler>(Heartbeat{5});
  check_round_trip<WorkerToScheduler>(WorkerGoodbye{0});
}

TEST_CASE("Protocol.RoundTrip.SchedulerToWorker") {
  ComputeTask c;
  c.task = make_task_id(10, 3);
  c.key = "add-1";
  c.func = "add";
  c.args = {task_arg(TaskArg::value), task_arg(TaskArg::dep), task_arg(TaskArg::dep_list)};
  c.deps = {DepLocation{make_task_id(3, 1), {WorkerId{0}, WorkerId{2}}, {"tcp://a:1", "tcp://b:2"}}};
  c.resources = {{"GPU", 1}};
  c.priority = 5;
  c.push_to = {"client-1", "client-2"};
  c.dependents_waiting = true;
  check_round_trip<SchedulerToWorker>(WorkerWelcome{kProtocolVersion, WorkerId{1}, {Peer{WorkerId{0}, "tcp://a:1"}}, 250});
  check_round_trip<SchedulerToWorker>(Rejected{"duplicate"});
  check_round_trip<SchedulerToWorker>(PeersChanged{{Peer{WorkerId{3}, "tcp://b:2"}}, {WorkerId{1}}});
  check_round_trip<SchedulerToWorker>(c);
  check_round_trip<SchedulerToWorker>(ReleaseTasks{{make_task_id(1, 0)}});
  check_round_trip<SchedulerToWorker>(StealRequest{make_task_id(1, 0)});
  check_round_trip<SchedulerToWorker>(Heartbeat{9});
  check_round_trip<SchedulerToWorker>(WorkerShutdown{3});
}

TEST_CASE("Protocol.RoundTrip.PeerData") {
  check_round_trip<PeerRequest>(GetData{4, {make_task_id(1, 0), make_task_id(2, 0)}});
  DataItem found{make_task_id(1, 0), true, sample_payload(true)};
  DataItem missing{make_task_id(2, 0), false, {}};
  check_round_trip<PeerReply>(DataReply{4, {found, missing}});
  check_round_trip<PeerReply>(Rejected{"x"});
  check_round_trip<PeerReply>(ResultPushed{make_task_id(7, 1), "inc-7", sample_payload(false), WorkerId{2}});
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
