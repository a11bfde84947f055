// Declarations of the test plugin's tasks, for the programs that submit them.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

int inc(int x);
int dec(int x);
int add(int x, int y);
int noop(int x);
long long add64(long long x, long long y);
long long sum_list(std::vector<long long> xs);
int fail_if_negative(int x);
int flaky(int times);
int slow_inc(int x, int ms);
std::string worker_name(int);
std::string hostname(int);
long long pid(int);
std::vector<std::uint8_t> make_bytes(long long n);
std::string check_bytes(std::vector<std::uint8_t> v);
std::vector<double> linspace(int n);
double sum_doubles(std::vector<double> v);
std::string check_bytes_view(std::span<const std::uint8_t> v);
double sum_doubles_view(std::span<const double> v);
std::string concat(std::string a, std::string b);
void nothing(int);
bool malloc_hugepage_advised(long long bytes);
int crash_until(std::string path, int n);  // SIGSEGV on the first n attempts (counted in the file at path)
int sigabrt_until(std::string path, int n);  // abort() on the first n attempts
int always_crash(int);                     // SIGSEGV, every time
// Memory (tests/integration/test_memory.cpp): a block of `mib` MiB of doubles whose values depend
// on i (block_sum(i, mib) is its exact sum); the process's peak resident memory; memory a task
// holds itself (not a result) until a file appears or for a while.
std::vector<double> block(int i, int mib);
double block_sum(int i, int mib);
long long peak_rss_kib(int);
long long rss_kib(int);
long long hold_memory(long long mib, std::string flag_path);
long long allocate_and_hold(long long mib, int seconds);

// Identity tasks for every value a user can send (tests/integration/test_values.cpp): echo_X takes
// the vector by value, view_X as a std::span and copies it out.
#define DTASK_TEST_VALUE_TASKS(X)  \
  X(i8, std::int8_t)               \
  X(u8, std::uint8_t)              \
  X(i16, std::int16_t)             \
  X(u16, std::uint16_t)            \
  X(i32, std::int32_t)             \
  X(u32, std::uint32_t)            \
  X(i64, std::int64_t)             \
  X(u64, std::uint64_t)            \
  X(f32, float)                    \
  X(f64, double)
#define DTASK_TEST_DECLARE_ECHO(name, T)          \
  std::vector<T> echo_##name(std::vector<T> v);   \
  std::vector<T> view_##name(std::span<const T> v);
DTASK_TEST_VALUE_TASKS(DTASK_TEST_DECLARE_ECHO)
std::string echo_string(std::string s);
std::vector<std::string> echo_strings(std::vector<std::string> v);
std::vector<std::vector<double>> echo_nested(std::vector<std::vector<double>> v);
std::map<std::string, std::vector<long long>> echo_map(std::map<std::string, std::vector<long long>> m);
