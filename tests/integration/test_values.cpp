// Every value a user can send arrives as sent, on every path: client argument, worker-local input, peer fetch, result.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include <dtask/dtask.hpp>

#include "test_tasks.hpp"

using namespace std::chrono_literals;

namespace {

// A fresh cluster of two single-threaded workers, "0" and "1", and a client.
struct Fixture {
  dtask::LocalCluster cluster;
  dtask::Client client;
  Fixture()
      : cluster([] {
          dtask::LocalClusterOptions o;
          o.n_workers = 2;
          o.plugin = TEST_PLUGIN_PATH;
          return o;
        }()),
        client(cluster) {
    REQUIRE(client.wait_for_workers(2, 10s));
  }
};

dtask::SubmitOptions on_worker(const std::string& name) {
  dtask::SubmitOptions o;
  o.workers = {name};
  return o;
}

// Equal as sent: numeric vectors byte for byte (so NaN, -0.0 and denormals count), the rest by ==.
template <class T>
bool same(const T& a, const T& b) {
  if constexpr (requires { typename T::value_type; } && !std::is_same_v<T, std::string>) {
    if constexpr (std::is_arithmetic_v<typename T::value_type>) {
      return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0);
    }
  }
  return a == b;
}

// `n` values of T that reach both ends of its range (and, for floats, the awkward ones).
template <class T>
std::vector<T> sample(std::size_t n) {
  std::vector<T> v(n);
  using L = std::numeric_limits<T>;
  for (std::size_t i = 0; i < n; ++i) {
    switch (i % 5) {
      case 0: v[i] = L::lowest(); break;
      case 1: v[i] = L::max(); break;
      case 2: v[i] = static_cast<T>(i % 97); break;
      case 3: v[i] = std::is_floating_point_v<T> ? static_cast<T>(-0.0) : static_cast<T>(L::max() / 3); break;
      default:
        if constexpr (std::is_floating_point_v<T>) {
          v[i] = (i / 5) % 3 == 0 ? L::quiet_NaN() : (i / 5) % 3 == 1 ? L::denorm_min() : L::infinity();
        } else {
          v[i] = static_cast<T>(L::lowest() + static_cast<T>(1));
        }
    }
  }
  return v;
}

// Sends `v` through `echo` (and `view`, a std::span parameter, when given) on every path and
// checks that each copy arrives as sent: as a client argument, as a worker-local input (the
// dependent pinned to the worker that holds it), as a peer fetch (pinned to the other worker),
// and back to the client by result() and by gather().
template <class T, class Echo, class View = std::nullptr_t>
void check_every_path(dtask::Client& c, Echo echo, const T& v, View view = nullptr) {
  std::vector<dtask::Future<T>> fs;
  auto a = c.submit(on_worker("0"), echo, v);  // client argument
  auto local = c.submit(on_worker("0"), echo, a);  // worker-local input
  auto peer = c.submit(on_worker("1"), echo, local);  // peer fetch
  auto back = c.submit(on_worker("0"), echo, peer);  // peer fetch the other way
  fs = {a, local, peer, back};
  if constexpr (!std::is_null_pointer_v<View>) {
    fs.push_back(c.submit(on_worker("1"), view, v));  // client argument into a span
    fs.push_back(c.submit(on_worker("0"), view, a));  // worker-local input into a span
    fs.push_back(c.submit(on_worker("1"), view, a));  // peer fetch into a span
  }
  for (std::size_t i = 0; i < fs.size(); ++i) {
    INFO("path " << i);
    CHECK(same(fs[i].result(10s), v));
  }
  auto all = c.gather(fs);
  REQUIRE(all.size() == fs.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    INFO("gathered path " << i);
    CHECK(same(all[i], v));
  }
}

template <class T>
void check_numeric(dtask::Client& c, std::vector<T> (*echo)(std::vector<T>), std::vector<T> (*view)(std::span<const T>),
                   const char* name) {
  // 0 and 1 elements, a small odd count, and a big one (several MiB of bulk frames).
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, (std::size_t{3} << 20) / sizeof(T) + 3}) {
    INFO(name << " × " << n);
    check_every_path(c, echo, sample<T>(n), view);
  }
}

}  // namespace

// The case: an empty vector held by a worker, used by a task on the same worker.
TEST_CASE("Values.EmptyVectorOnTheWorkerThatHoldsIt") {
  Fixture f;
  auto empty = f.client.submit(on_worker("0"), linspace, 0);
  CHECK(f.client.submit(on_worker("0"), sum_doubles, empty).result(10s) == 0.0);
  CHECK(f.client.submit(on_worker("0"), sum_doubles_view, empty).result(10s) == 0.0);
  CHECK(f.client.submit(on_worker("1"), sum_doubles, empty).result(10s) == 0.0);
  CHECK(f.client.submit(on_worker("1"), sum_doubles_view, empty).result(10s) == 0.0);
  CHECK(empty.result(10s).empty());
}

TEST_CASE("Values.NumericVectors") {
  Fixture f;
  auto& c = f.client;
  check_numeric(c, echo_i8, view_i8, "int8");
  check_numeric(c, echo_u8, view_u8, "uint8");
  check_numeric(c, echo_i16, view_i16, "int16");
  check_numeric(c, echo_u16, view_u16, "uint16");
  check_numeric(c, echo_i32, view_i32, "int32");
  check_numeric(c, echo_u32, view_u32, "uint32");
  check_numeric(c, echo_i64, view_i64, "int64");
  check_numeric(c, echo_u64, view_u64, "uint64");
  check_numeric(c, echo_f32, view_f32, "float");
  check_numeric(c, echo_f64, view_f64, "double");
}

TEST_CASE("Values.Strings") {
  Fixture f;
  for (const std::string& s : {std::string(), std::string("a"), std::string("nul\0inside", 10),
                               std::string("\xff\xfe not UTF-8"), std::string(3 << 20, 'x')}) {
    INFO("string of " << s.size() << " bytes");
    check_every_path(f.client, echo_string, s);
  }
  for (const auto& v : {std::vector<std::string>{}, std::vector<std::string>{""}, std::vector<std::string>{"", "x", ""}}) {
    INFO("vector of " << v.size() << " strings");
    check_every_path(f.client, echo_strings, v);
  }
}

TEST_CASE("Values.NestedContainers") {
  Fixture f;
  using Nested = std::vector<std::vector<double>>;
  Nested big(300, std::vector<double>(1000, 0.25));
  for (const Nested& v : {Nested{}, Nested{{}}, Nested{{}, {1.5, -2.0}, {}}, big}) {
    INFO("nested of " << v.size());
    check_every_path(f.client, echo_nested, v);
  }
  using Map = std::map<std::string, std::vector<long long>>;
  for (const Map& m : {Map{}, Map{{"", {}}}, Map{{"a", {1, -2, std::numeric_limits<long long>::min()}}, {"b", {}}}}) {
    INFO("map of " << m.size());
    check_every_path(f.client, echo_map, m);
  }
}
