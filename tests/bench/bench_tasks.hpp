// The benchmark plugin's tasks, for the bench program that names them by function pointer.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

long long inc(long long x);
long long dec(long long x);
long long add(long long x, long long y);
void noop(long long);
long long ident(long long x);
long long sum_all(std::vector<long long> xs);
std::vector<long long> produce(long long i, long long k);
long long consume(long long j, std::vector<std::vector<long long>> parts);
long long take(std::vector<long long> part, long long j);
std::vector<std::uint8_t> make_bytes(long long n);
long long len(std::vector<std::uint8_t> v);
long long len_view(std::span<const std::uint8_t> v);
