// Declarations of the test plugin's tasks, for the programs that submit them.
#pragma once

#include <cstdint>
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
