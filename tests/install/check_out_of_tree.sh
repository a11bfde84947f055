#!/usr/bin/env bash
# Installs dtask into a scratch prefix and builds a user's plugin + program out of tree with pkg-config.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build}"
work="$(mktemp -d /var/tmp/dtask-oot-XXXXXX)"
trap 'rm -rf "$work"' EXIT
meson install -C "$build" --destdir "$work/dest" --quiet >/dev/null
pc="$(dirname "$(find "$work/dest" -name dtask.pc | head -1)")"
export PKG_CONFIG_PATH="$pc"
prefix="$(pkg-config --variable=prefix dtask)"
flags="$(pkg-config --define-variable=prefix="$work/dest$prefix" --cflags --libs dtask)"
libdir="$(pkg-config --define-variable=prefix="$work/dest$prefix" --variable=libdir dtask)"
cat > "$work/mytasks.cpp" <<'CPP'
#include <dtask/task.hpp>
int inc(int x) { return x + 1; }
int dec(int x) { return x - 1; }
int add(int x, int y) { return x + y; }
DTASK_TASKS(inc, dec, add);
CPP
cat > "$work/main.cpp" <<'CPP'
#include <cstdio>
#include <dtask/dtask.hpp>
int inc(int); int dec(int); int add(int, int);
int main() {
  dtask::LocalCluster cluster({.n_workers = 2, .threads_per_worker = 1, .plugin = "./libmytasks.so"});
  dtask::Client client(cluster);
  std::vector<dtask::Delayed<int>> zs;
  for (int i = 0; i < 256; ++i) {
    auto x = dtask::delayed(inc, i); auto y = dtask::delayed(dec, x); zs.push_back(dtask::delayed(add, x, y));
  }
  std::vector<int> result = client.compute(zs);
  for (int i = 0; i < 256; ++i) if (result[i] != 2 * i + 1) { std::printf("wrong\n"); return 1; }
  std::printf("out-of-tree plugin OK\n");
  return 0;
}
CPP
cd "$work"
# shellcheck disable=SC2086
g++ -std=c++20 -Wall -Werror -shared -fPIC mytasks.cpp -o libmytasks.so $flags
# shellcheck disable=SC2086
g++ -std=c++20 -Wall -Werror -Wno-missing-field-initializers main.cpp -o main ./libmytasks.so $flags -Wl,-rpath,"$libdir" -Wl,-rpath,"$work"
./main
