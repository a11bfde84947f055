// Hostile input never crashes a decoder or a role's core: depth, counts, truncation, wrong types, bad arguments, retries.
// This file replaces the global operator new/delete (malloc/free underneath) to see the largest
// allocation a decode makes; GCC cannot tell the pair matches once it inlines them.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "common/drop_log.hpp"
#include "protocol/wire.hpp"
#include "test_scheduler_harness.hpp"
#include "transport/transport.hpp"
#include "worker/worker_state.hpp"

using namespace dtask;
using namespace dtask::protocol;

// ---- the largest single allocation, seen by replacing global operator new in this test binary ----
namespace {
std::atomic<std::size_t> g_largest_alloc{0};
void note_alloc(std::size_t n) {
  std::size_t cur = g_largest_alloc.load(std::memory_order_relaxed);
  while (n > cur && !g_largest_alloc.compare_exchange_weak(cur, n, std::memory_order_relaxed)) {
  }
}
}  // namespace
void* operator new(std::size_t n) {
  note_alloc(n);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

// An envelope of direction `dir` holding the messages `body` writes (`n` of them).
template <class Body>
std::string envelope(char dir, std::size_t n, Body body) {
  std::string out;
  msgpack::Writer w(out);
  w.array(4);
  w.str(kMagic);
  w.uinteger(kProtocolVersion);
  w.str(std::string_view(&dir, 1));
  w.array(n);
  body(w);
  return out;
}

template <class V>
Decoded<V> decode(const std::string& bytes, const std::vector<Buffer>& bulk = {}) {
  return decode_batch<V>(bytes.data(), bytes.size(), bulk);
}

// A Heartbeat (client -> scheduler) with one extra field: `extra` raw bytes.
std::string heartbeat_with_extra(const std::string& extra) {
  auto out = envelope('C', 1, [&](msgpack::Writer& w) {
    w.array(2);
    w.uinteger(5);  // Heartbeat's index in ClientToScheduler
    w.array(2);     // its fields: sent_ms, and one from a "newer revision"
    w.uinteger(7);
    w.out() += extra;
  });
  return out;
}

ClientArg value_arg(int v) {
  ClientArg a;
  a.kind = ClientArg::value;
  a.data = Codec<int>::encode(v);
  return a;
}

// A batch with a bit of everything a client sends.
std::string sample_client_batch() {
  TaskSpec t;
  t.key = "inc-1";
  t.func = "inc";
  t.args = {value_arg(41)};
  ClientArg d;
  d.kind = ClientArg::dep_list;
  d.refs = {"a", "bb"};
  t.args.push_back(d);
  t.retries = 2;
  t.workers = {"w0"};
  t.resources = {{"GPU", 1.0}};
  std::vector<ClientToScheduler> msgs{RegisterClient{kProtocolVersion, "me", "data-id"}, SubmitTasks{{t}},
                                      ReleaseKeys{{"x", "y"}}, Heartbeat{123456789},
                                      ResultsReceived{{PushReceipt{TaskId{5}, WorkerId{1}, 8, "k"}}}};
  return encode_batch(msgs).head;
}

}  // namespace

// ---- depth ----

TEST_CASE("Decoders.Depth.MillionNestedArraysAreAnErrorNotAStackOverflow") {
  // 1 MB of 0x91 (a one-element array holding the next) ending in nil, as an extra field: the
  // message that killed the scheduler and both workers with SIGSEGV. Runs on the default stack.
  std::string nested(1'000'000, static_cast<char>(0x91));
  nested += static_cast<char>(0xc0);
  auto d = decode<ClientToScheduler>(heartbeat_with_extra(nested));
  REQUIRE_FALSE(d.ok());
  CHECK(d.error.find("nested too deeply") != std::string::npos);
  // The same as maps (0x81: one key, one value) and through the reader directly.
  std::string maps;
  for (int i = 0; i < 500'000; ++i) maps += "\x81\xc0";
  maps += static_cast<char>(0xc0);
  CHECK_FALSE(decode<ClientToScheduler>(heartbeat_with_extra(maps)).ok());
  auto p = reinterpret_cast<const std::uint8_t*>(nested.data());
  msgpack::Reader r(p, p + nested.size());
  CHECK_THROWS_AS(r.skip(), std::runtime_error);
  // Nesting within the limit is still skipped as before.
  std::string fine(msgpack::Reader::kMaxDepth, static_cast<char>(0x91));
  fine += static_cast<char>(0xc0);
  auto ok = decode<ClientToScheduler>(heartbeat_with_extra(fine));
  REQUIRE_MESSAGE(ok.ok(), ok.error);
  CHECK(std::get<Heartbeat>(ok.messages.at(0)).sent_ms == 7);
}

TEST_CASE("Decoders.Depth.DeepJsonNeverReachesTheRecursiveParser") {
  // InfoReply carries JSON, parsed by nlohmann (recursive) after skip() bounded its depth.
  auto info_reply = [](const std::string& json_bytes) {
    return envelope('c', 1, [&](msgpack::Writer& w) {
      w.array(2);
      w.uinteger(6);  // InfoReply's index in SchedulerToClient
      w.array(2);
      w.uinteger(1);
      w.out() += json_bytes;
    });
  };
  std::string deep(1'000'000, static_cast<char>(0x91));
  deep += static_cast<char>(0xc0);
  CHECK_FALSE(decode<SchedulerToClient>(info_reply(deep)).ok());
  std::string shallow(10, static_cast<char>(0x91));
  shallow += static_cast<char>(0x2a);
  auto d = decode<SchedulerToClient>(info_reply(shallow));
  REQUIRE_MESSAGE(d.ok(), d.error);
  CHECK(std::get<InfoReply>(d.messages.at(0)).info.dump() == "[[[[[[[[[[42]]]]]]]]]]");
}

// ---- counts ----

TEST_CASE("Decoders.Counts.AHugeClaimedCountFailsWithoutAllocating") {
  auto huge_array = [](msgpack::Writer& w) { w.out() += std::string("\xdd\xff\xff\xff\xff", 5); };
  // The batch's message count.
  std::string batch;
  {
    msgpack::Writer w(batch);
    w.array(4);
    w.str(kMagic);
    w.uinteger(kProtocolVersion);
    w.str("C");
    huge_array(w);
    batch += std::string(64, '\0');
  }
  // A vector field (ReleaseKeys::keys), and an extra field holding a huge array and a huge map.
  auto release = envelope('C', 1, [&](msgpack::Writer& w) {
    w.array(2);
    w.uinteger(2);  // ReleaseKeys
    w.array(1);
    huge_array(w);
    w.out() += std::string(64, '\xc0');
  });
  auto extra_array = heartbeat_with_extra(std::string("\xdd\xff\xff\xff\xff\xc0\xc0", 7));
  auto extra_map = heartbeat_with_extra(std::string("\xdf\xff\xff\xff\xff\xc0\xc0", 7));
  for (const auto* bytes : {&batch, &release, &extra_array, &extra_map}) {
    g_largest_alloc = 0;
    auto d = decode<ClientToScheduler>(*bytes);
    const std::size_t largest = g_largest_alloc;
    REQUIRE_FALSE(d.ok());
    CHECK_MESSAGE(d.error.find("count larger than the message") != std::string::npos, d.error);
    CHECK_MESSAGE(largest < 64 * 1024, "largest allocation while decoding: " << largest);
  }
}

// ---- truncation ----

TEST_CASE("Decoders.Truncation.EveryPrefixOfAValidBatchIsAnError") {
  const std::string whole = sample_client_batch();
  REQUIRE(decode<ClientToScheduler>(whole).ok());
  for (std::size_t len = 0; len < whole.size(); ++len) {
    auto d = decode_batch<ClientToScheduler>(whole.data(), len, {});
    CHECK_MESSAGE(!d.ok(), "a prefix of " << len << " bytes decoded");
  }
  // A scheduler -> worker batch with a payload frame: prefixes too, and a missing frame.
  ComputeTask c;
  c.task = TaskId{9};
  c.key = "k";
  c.func = "f";
  TaskArg a;
  a.kind = TaskArg::value;
  a.data = Codec<std::vector<double>>::encode(std::vector<double>{1, 2, 3});
  c.args = {a};
  c.deps = {DepLocation{TaskId{3}, {WorkerId{1}}, {"tcp://x:1"}}};
  auto f = encode_one(SchedulerToWorker{c});
  REQUIRE(decode<SchedulerToWorker>(f.head, f.bulk).ok());
  for (std::size_t len = 0; len < f.head.size(); ++len) {
    CHECK_FALSE(decode_batch<SchedulerToWorker>(f.head.data(), len, f.bulk).ok());
  }
  CHECK_FALSE(decode<SchedulerToWorker>(f.head, {}).ok());
}

// ---- wrong types, unknown types ----

TEST_CASE("Decoders.Types.WrongFieldTypesAreErrors") {
  // Heartbeat::sent_ms as a string, a negative number, a double, nil, an array.
  for (std::string field : {std::string("\xa3" "abc"), std::string("\xff"), std::string("\xcb\x3f\xf0\0\0\0\0\0\0", 9),
                            std::string("\xc0"), std::string("\x91\x01")}) {
    auto bytes = envelope('C', 1, [&](msgpack::Writer& w) {
      w.array(2);
      w.uinteger(5);
      w.array(1);
      w.out() += field;
    });
    CHECK_FALSE(decode<ClientToScheduler>(bytes).ok());
  }
  // Every byte of a valid batch replaced by each of a few type codes: an error or a value, never
  // a crash (this runs under the sanitizers in CI).
  const std::string whole = sample_client_batch();
  int errors = 0;
  for (std::size_t i = 0; i < whole.size(); ++i) {
    for (unsigned char b : {0x00u, 0x7fu, 0x91u, 0x9fu, 0xa0u, 0xc0u, 0xc1u, 0xc4u, 0xcbu, 0xdcu, 0xddu, 0xdfu, 0xffu}) {
      std::string m = whole;
      m[i] = static_cast<char>(b);
      if (!decode<ClientToScheduler>(m).ok()) ++errors;
    }
  }
  CHECK(errors > 0);
}

TEST_CASE("Decoders.Types.UnknownMessageAndMessagePackTypesAreErrors") {
  auto unknown_message = envelope('C', 1, [](msgpack::Writer& w) {
    w.array(2);
    w.uinteger(99);
    w.array(0);
  });
  auto d = decode<ClientToScheduler>(unknown_message);
  REQUIRE_FALSE(d.ok());
  CHECK(d.error.find("unknown message type 99") != std::string::npos);
  CHECK_FALSE(decode<ClientToScheduler>(heartbeat_with_extra("\xc1")).ok());  // never used in MessagePack
  // Another role's direction, and a version from elsewhere.
  CHECK_FALSE(decode<WorkerToScheduler>(sample_client_batch()).ok());
  std::string other_version;
  {
    msgpack::Writer w(other_version);
    w.array(4);
    w.str(kMagic);
    w.uinteger(kProtocolVersion + 1);
    w.str("C");
    w.array(0);
  }
  auto v = decode<ClientToScheduler>(other_version);
  CHECK_FALSE(v.ok());
  CHECK(v.peer_version == kProtocolVersion + 1);
}

// ---- bad arguments ----

TEST_CASE("Decoders.Arguments.SchedulerRefusesADependencyWithoutAKeyOrOfUnknownKind") {
  test::Harness h;
  h.worker("0");
  auto no_key = test::Harness::spec("no-key", "inc");
  no_key.args[0].kind = ClientArg::dep;  // a dependency naming nothing
  no_key.args[0].data = {};
  auto unknown_kind = test::Harness::spec("odd-kind", "inc");
  unknown_kind.args[0].kind = 7;
  auto two_keys = test::Harness::spec("two", "inc");
  two_keys.args[0].kind = ClientArg::dep;
  two_keys.args[0].refs = {"a", "b"};
  h.submit({no_key, unknown_kind, two_keys, test::Harness::spec("fine", "inc")});
  auto errs = h.to_client<KeyErred>();
  REQUIRE(errs.size() == 3);
  CHECK(errs[0].key == "no-key");
  CHECK(errs[0].message.find("argument 0 is a dependency naming 0 keys") != std::string::npos);
  CHECK(errs[1].key == "odd-kind");
  CHECK(errs[1].message.find("unknown kind (7)") != std::string::npos);
  CHECK(errs[2].key == "two");
  auto cs = h.computes();
  REQUIRE(cs.size() == 1);  // only the good task reaches a worker
  CHECK(cs[0].second.key == "fine");
}

namespace {
const dtask_task_v1 kIncEntry{"inc", nullptr, 1, nullptr};
struct NoExecutor : worker::ExecutorPort {
  std::vector<worker::Job> ran;
  bool idle() const override { return true; }
  bool withdraw(TaskId) override { return false; }
  bool can_run_here() const override { return true; }
  std::optional<worker::Completion> run_here(worker::Job job) override {
    ran.push_back(job);
    return std::nullopt;
  }
};
}  // namespace

TEST_CASE("Decoders.Arguments.WorkerNeverCallsThePluginWithAMissingArgument") {
  for (FastPaths fp : {FastPaths::all(), FastPaths::none()}) {
    NoExecutor exec;
    worker::WorkerConfig cfg;
    cfg.fast_paths = fp;
    cfg.find_task = [](const std::string&) { return &kIncEntry; };
    worker::WorkerState s(cfg, exec);
    worker::WorkerOutbox out;
    s.started(1000);
    s.handle(WorkerWelcome{kProtocolVersion, WorkerId{1}, {}, 500}, 1000, out);
    std::uint64_t id = 1;
    for (std::uint8_t kind : {std::uint8_t{TaskArg::dep}, std::uint8_t{9}}) {
      ComputeTask c;
      c.task = TaskId{id++};
      c.key = "bad";
      c.func = "inc";
      TaskArg a;
      a.kind = kind;  // no refs
      c.args = {a};
      s.handle(SchedulerToWorker{c}, 1000, out);
      s.start_ready(out);
    }
    CHECK(exec.ran.empty());
    CHECK(out.to_executor.empty());
    int failed = 0;
    for (auto& m : out.to_scheduler) {
      if (auto* f = std::get_if<TaskFailed>(&m)) {
        ++failed;
        CHECK(f->message.find("argument 0 of task 'bad' is malformed") != std::string::npos);
      }
    }
    CHECK(failed == 2);
  }
}

// ---- references to what does not exist ----

TEST_CASE("Decoders.References.UnknownIdsAndKeysAreNoOpsOrClearErrors") {
  test::Harness h;
  auto w = h.worker("0");
  // A dependency on a key never submitted: the client hears why.
  h.submit({test::Harness::spec("y", "inc", {"never-submitted"})});
  auto errs = h.to_client<KeyErred>();
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].message.find("unknown key 'never-submitted'") != std::string::npos);
  // Releases and cancels of unknown keys: nothing happens.
  h.s.handle(h.client, ReleaseKeys{{"nope", ""}}, h.now, h.out);
  h.s.handle(h.client, CancelKeys{{"nope"}}, h.now, h.out);
  // Worker news about ids that never existed (out of the table, or a wrong generation).
  for (TaskId id : {TaskId{123456789}, TaskId{0xffffffffffffffffull}, make_task_id(0, 77)}) {
    h.s.handle(w, TaskDone{id, 8, false, {}}, h.now, h.out);
    h.s.handle(w, TaskFailed{id, "x"}, h.now, h.out);
    h.s.handle(w, ReplicasAdded{{id}}, h.now, h.out);
    h.s.handle(w, StealReply{id, true}, h.now, h.out);
    h.s.handle(w, FetchFailed{id, id}, h.now, h.out);
    h.s.handle(h.client, ResultsReceived{{PushReceipt{id, WorkerId{4000}, 8, ""}}}, h.now, h.out);
  }
  // Messages from peers that were never registered.
  h.s.handle(WorkerId{4000}, TaskDone{TaskId{1}, 8, false, {}}, h.now, h.out);
  h.s.handle(ClientId{4000}, SubmitTasks{{test::Harness::spec("z", "inc")}}, h.now, h.out);
  CHECK(h.s.stale_messages() >= 2);
  // The scheduler still works.
  h.submit({test::Harness::spec("ok", "inc")});
  auto [wo, c] = h.compute_of("ok");
  h.done(wo, c);
  CHECK(h.state_of("ok") == scheduler::TaskState::memory);

  // A worker asked for data it does not hold says so, item by item.
  NoExecutor exec;
  worker::WorkerConfig cfg;
  worker::WorkerState ws(cfg, exec);
  worker::WorkerOutbox out;
  ws.handle_request(GetData{7, {TaskId{1}, TaskId{0xffffffffffffffffull}}}, "peer", out);
  REQUIRE(out.replies.size() == 1);
  auto* reply = std::get_if<DataReply>(&out.replies[0].msg);
  REQUIRE(reply);
  REQUIRE(reply->items.size() == 2);
  CHECK_FALSE(reply->items[0].found);
  CHECK_FALSE(reply->items[1].found);
}

// ---- retries ----

TEST_CASE("Decoders.Retries.TheFinalErrorListsEachAttempt") {
  test::Harness h;
  h.worker("0");
  auto x = test::Harness::spec("x", "flaky");
  x.retries = 2;
  h.submit({x});
  for (const char* why : {"first failure", "second failure", "third failure"}) {
    auto [w, c] = h.compute_of("x");
    h.s.handle(w, TaskFailed{c.task, why}, h.now, h.out);
  }
  auto errs = h.to_client<KeyErred>();
  REQUIRE(errs.size() == 1);
  const std::string& m = errs[0].message;
  CHECK(m == "attempt 1 (worker '0'): first failure\nattempt 2 (worker '0'): second failure\n"
             "attempt 3 (worker '0'): third failure");
  // Bounded: a thousand retries with long messages.
  auto y = test::Harness::spec("y", "flaky");
  y.retries = 1000;
  h.submit({y});
  for (int i = 0; i <= 1000; ++i) {
    auto [w, c] = h.compute_of("y");
    h.s.handle(w, TaskFailed{c.task, std::string(5000, 'e')}, h.now, h.out);
  }
  errs = h.to_client<KeyErred>();
  REQUIRE(errs.size() == 2);
  CHECK(errs[1].message.size() < 24000);
  CHECK(errs[1].message.find("more attempts not listed") != std::string::npos);
  CHECK(errs[1].message.find("attempt 1001 ") != std::string::npos);
}

// ---- logging and the frame cap ----

TEST_CASE("Decoders.DropLog.FirstOfEachPeerThenOneLinePerIntervalWithACount") {
  log::DropLimiter lim(10'000, 3);
  std::uint64_t unlogged = 99;
  CHECK(lim.admit("a", 1000, unlogged));
  CHECK(unlogged == 0);
  int logged = 0;
  for (int i = 0; i < 20'000; ++i) logged += lim.admit("a", 1000 + i / 4, unlogged);  // 5 s of bad requests
  CHECK(logged == 0);
  CHECK(lim.admit("b", 2000, unlogged));  // another peer's first is logged at once
  CHECK(lim.admit("a", 11'000, unlogged));
  CHECK(unlogged == 20'000);
  // The table is bounded: peers beyond the cap share one entry.
  for (int i = 0; i < 100; ++i) lim.admit("stranger" + std::to_string(i), 3000, unlogged);
  CHECK(lim.peers() <= 3);
}

TEST_CASE("Decoders.FrameCap.SizesParseAndTheDefaultFitsLargeResults") {
  CHECK(transport::parse_size("64M") == 64ll << 20);
  CHECK(transport::parse_size("8G") == 8ll << 30);
  CHECK(transport::parse_size("123") == 123);
  CHECK(transport::parse_size("0") == 0);
  CHECK(transport::parse_size("") == -1);
  CHECK(transport::parse_size("-5") == -1);
  CHECK(transport::parse_size("12Q") == -1);
  CHECK(transport::parse_size("99999999999T") == -1);
  CHECK(transport::kDefaultMaxFrameBytes >= (std::int64_t{4} << 30));
  if (!std::getenv("DTASK_MAX_FRAME_BYTES")) CHECK(transport::max_frame_bytes() == transport::kDefaultMaxFrameBytes);
}
