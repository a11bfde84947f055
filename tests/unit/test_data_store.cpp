// The worker's result store (DataStore): LRU order, spilling states and tags, byte counts.
#include <doctest/doctest.h>

#include "worker/data_store.hpp"

using namespace dtask;
using namespace dtask::worker;

namespace {
std::shared_ptr<const Payload> bytes(std::size_t n) {
  Payload p;
  p.frames.push_back(Buffer::adopt(std::vector<char>(n, 'x')));
  return std::make_shared<const Payload>(std::move(p));
}
}  // namespace

TEST_CASE("DataStore.pick_to_spill takes the least recently used first, a get touches") {
  DataStore s;
  s.put(1, bytes(100));
  s.put(2, bytes(100));
  s.put(3, bytes(100));
  CHECK(s.memory_bytes() == 300);
  REQUIRE(s.get(1) != nullptr);  // 1 is now the most recent
  auto picked = s.pick_to_spill(150);
  CHECK(picked == std::vector<std::uint64_t>{2, 3});
  CHECK(s.memory_bytes() == 100);
  CHECK(s.writing_bytes() == 200);
  CHECK(s.held_bytes() == 300);
  CHECK(s.find(2)->where == DataStore::Where::writing);
}

TEST_CASE("DataStore.pick_to_spill skips a result a job holds") {
  DataStore s;
  s.put(1, bytes(100));
  s.put(2, bytes(100));
  auto held = *s.get(1);  // a job's keep
  s.get(2);
  CHECK(s.pick_to_spill(100) == std::vector<std::uint64_t>{2});
  held.reset();
  CHECK(s.pick_to_spill(100) == std::vector<std::uint64_t>{1});
}

TEST_CASE("DataStore.write then read back, with byte counts") {
  DataStore s;
  s.put(7, bytes(1000));
  REQUIRE(s.start_write(7));
  const auto tag = s.find(7)->tag;
  CHECK(s.get(7) != nullptr);  // still in memory while written
  CHECK(s.written(7, tag, 400) == std::optional<std::uint64_t>(1000));
  CHECK(s.get(7) == nullptr);
  CHECK(s.contains(7));
  CHECK(s.memory_bytes() == 0);
  CHECK(s.disk_bytes() == 400);
  CHECK(s.disk_count() == 1);
  const auto rtag = s.start_read(7);
  REQUIRE(rtag != 0);
  CHECK(s.start_read(7) == 0);  // one read at a time
  CHECK(s.read_back(7, rtag, bytes(1000)));
  CHECK(s.memory_bytes() == 1000);
  CHECK(s.disk_bytes() == 0);
  CHECK(s.disk_count() == 0);
  CHECK(s.get(7) != nullptr);
}

TEST_CASE("DataStore.a stale completion changes nothing") {
  DataStore s;
  s.put(7, bytes(10));
  s.start_write(7);
  const auto old = s.find(7)->tag;
  auto gone = s.erase(7);
  REQUIRE(gone);
  CHECK(gone->where == DataStore::Where::writing);
  s.put(7, bytes(20));  // computed again
  CHECK_FALSE(s.written(7, old, 5));
  CHECK(s.find(7)->where == DataStore::Where::memory);
  CHECK(s.memory_bytes() == 20);
  CHECK(s.writing_bytes() == 0);
}

TEST_CASE("DataStore.a failed write is back in memory, first in line") {
  DataStore s;
  s.put(1, bytes(10));
  s.put(2, bytes(10));
  s.start_write(2);
  CHECK(s.write_failed(2, s.find(2)->tag));
  CHECK(s.memory_bytes() == 20);
  CHECK(s.writing_bytes() == 0);
  CHECK(s.pick_to_spill(1) == std::vector<std::uint64_t>{2});
}

TEST_CASE("DataStore.a failed read loses the result; erase of a spilled one counts down") {
  DataStore s;
  s.put(1, bytes(10));
  s.put(2, bytes(10));
  s.start_write(1);
  s.start_write(2);
  s.written(1, s.find(1)->tag, 8);
  s.written(2, s.find(2)->tag, 9);
  CHECK(s.disk_bytes() == 17);
  const auto tag = s.start_read(1);
  CHECK(s.read_failed(1, tag));
  CHECK_FALSE(s.contains(1));
  auto gone = s.erase(2);
  REQUIRE(gone);
  CHECK(gone->where == DataStore::Where::disk);
  CHECK(s.disk_bytes() == 0);
  CHECK(s.disk_count() == 0);
  CHECK(s.size() == 0);
}
