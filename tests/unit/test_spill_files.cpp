// Spill files on real temporary files: round trips, compression only when it pays, errors for missing or corrupt files.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "worker/spill_files.hpp"

using namespace dtask;
using namespace dtask::worker;

namespace {
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/dtask-spill-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

Payload frames_of(std::vector<std::vector<char>> frames, std::string header = "hdr") {
  Payload p;
  p.header = std::move(header);
  for (auto& f : frames) p.frames.push_back(Buffer::adopt(std::move(f)));
  return p;
}
std::vector<char> random_bytes(std::size_t n, unsigned seed = 1) {
  std::mt19937 g(seed);
  std::vector<char> v(n);
  for (auto& c : v) c = static_cast<char>(g());
  return v;
}
void check_same(const Payload& a, const Payload& b) {
  REQUIRE(a.header == b.header);
  REQUIRE(a.frames.size() == b.frames.size());
  for (std::size_t i = 0; i < a.frames.size(); ++i) {
    REQUIRE(a.frames[i].size() == b.frames[i].size());
    if (a.frames[i].size() != 0) CHECK(std::memcmp(a.frames[i].data(), b.frames[i].data(), a.frames[i].size()) == 0);
  }
}
Payload round_trip(const Payload& p, bool compress, SpillWrite* w = nullptr) {
  TempDir d;
  const std::string f = d.path + "/1.spill";
  auto wr = write_spill_file(f, p, compress);
  REQUIRE_MESSAGE(wr.ok, wr.error);
  if (w) *w = wr;
  CHECK(wr.stored == std::filesystem::file_size(f));
  auto r = read_spill_file(f);
  REQUIRE_MESSAGE(r.ok, r.error);
  return std::move(r.payload);
}
}  // namespace

TEST_CASE("SpillFiles.round trip of empty, small, large and multi-frame payloads") {
  for (bool compress : {false, true}) {
    check_same(round_trip(Payload{}, compress), Payload{});
    const Payload small = frames_of({}, "a small header");
    check_same(round_trip(small, compress), small);
    const Payload empty_frame = frames_of({{}});
    check_same(round_trip(empty_frame, compress), empty_frame);
    const Payload large = frames_of({random_bytes(3 * kSpillBlock + 17)});
    check_same(round_trip(large, compress), large);
    const Payload multi = frames_of({random_bytes(100), std::vector<char>(2 * kSpillBlock + 5, 'z'), {}, random_bytes(9, 2)},
                                    std::string(70000, 'h'));
    auto back = round_trip(multi, compress);
    check_same(back, multi);
    // Every frame lives in one buffer, 64-byte aligned.
    for (const auto& f : back.frames) {
      if (f.size() == 0) continue;
      CHECK(f.owner() == back.frames[0].owner());
      CHECK(reinterpret_cast<std::uintptr_t>(f.data()) % 16 == 0);
    }
  }
}

TEST_CASE("SpillFiles.compression on compressible data, off on random data and when switched off") {
  SpillWrite w;
  const Payload zeros = frames_of({std::vector<char>(4 * kSpillBlock, 0)});
  round_trip(zeros, true, &w);
  CHECK(w.compressed == spill_compression_available());
  if (spill_compression_available()) CHECK(w.stored < zeros.nbytes() / 10);
  round_trip(zeros, false, &w);
  CHECK_FALSE(w.compressed);
  CHECK(w.stored > zeros.nbytes());
  const Payload noise = frames_of({random_bytes(kSpillBlock)});
  round_trip(noise, true, &w);
  CHECK_FALSE(w.compressed);
}

TEST_CASE("SpillFiles.a missing or corrupt file is an error, not a crash") {
  TempDir d;
  auto missing = read_spill_file(d.path + "/nope.spill");
  CHECK_FALSE(missing.ok);
  CHECK(missing.error.find("nope.spill") != std::string::npos);
  const std::string f = d.path + "/2.spill";
  for (bool compress : {false, true}) {
    const Payload p = frames_of({std::vector<char>(kSpillBlock, 'a'), random_bytes(5000)});
    REQUIRE(write_spill_file(f, p, compress).ok);
    const auto size = std::filesystem::file_size(f);
    // Cut short.
    std::filesystem::resize_file(f, size - 10);
    CHECK_FALSE(read_spill_file(f).ok);
    // Garbage over the data (sizes kept): a compressed block fails to decode, a raw one is just data.
    REQUIRE(write_spill_file(f, p, compress).ok);
    {
      std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
      io.seekp(static_cast<std::streamoff>(size - 6000));
      const auto junk = random_bytes(3000, 9);
      io.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    (void)read_spill_file(f);  // must not crash either way
    // Garbage index.
    {
      std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
      io.seekp(16);
      const auto junk = random_bytes(48, 3);
      io.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    CHECK_FALSE(read_spill_file(f).ok);
  }
  // Not a spill file.
  {
    std::ofstream o(f, std::ios::trunc);
    o << "hello";
  }
  CHECK_FALSE(read_spill_file(f).ok);
}

TEST_CASE("SpillFiles.the I/O thread writes, reads back, removes and reports errors") {
  TempDir d;
  std::atomic<int> wakeups{0};
  SpillFiles files(d.path, true, [&] { ++wakeups; });
  auto p = std::make_shared<const Payload>(frames_of({random_bytes(100000)}));
  auto wait_for = [&](std::size_t n) {
    std::vector<SpillDone> got;
    for (int i = 0; i < 2000 && got.size() < n; ++i) {
      for (auto& x : files.take_completions()) got.push_back(std::move(x));
      if (got.size() < n) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    REQUIRE(got.size() == n);
    return got;
  };
  files.write(5, 11, p);
  auto w = wait_for(1);
  CHECK(w[0].kind == SpillDone::Kind::written);
  CHECK(w[0].ok);
  CHECK(w[0].tag == 11);
  CHECK(std::filesystem::exists(files.path_of(5)));
  files.read(5, 12);
  auto r = wait_for(1);
  REQUIRE(r[0].ok);
  check_same(*r[0].payload, *p);
  CHECK_FALSE(std::filesystem::exists(files.path_of(5)));  // read back: in memory again
  files.write(6, 13, p);
  files.remove(6);
  wait_for(1);
  CHECK_FALSE(std::filesystem::exists(files.path_of(6)));
  files.read(99, 14);  // never written
  auto bad = wait_for(1);
  CHECK_FALSE(bad[0].ok);
  CHECK_FALSE(bad[0].error.empty());
  CHECK(wakeups.load() >= 4);
}

TEST_CASE("SpillFiles.a write to an unwritable place is an error completion") {
  TempDir d;
  SpillFiles files(d.path + "/not-there", false, [] {});
  files.write(1, 1, std::make_shared<const Payload>(frames_of({random_bytes(10)})));
  std::vector<SpillDone> got;
  for (int i = 0; i < 2000 && got.empty(); ++i) {
    got = files.take_completions();
    if (got.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(got.size() == 1);
  CHECK_FALSE(got[0].ok);
  CHECK(got[0].error.find("cannot create spill file") != std::string::npos);
}
