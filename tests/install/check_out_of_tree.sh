#!/usr/bin/env bash
# The installed surface as a user meets it: dtask installed into a non-system prefix, user
# programs built from it with pkg-config alone, and the installed tools run from that prefix.
#
#   tests/install/check_out_of_tree.sh [BUILD_DIR]
#
# 1. A scratch build beside BUILD_DIR (same depth under the sources, so ccache serves its
#    objects) configured with --prefix=/var/tmp/dtask-oot-XXXXXX/prefix, installed for real
#    (not --destdir: the installed programs' RPATH must name the prefix they live in).
# 2. pkg-config: `dtask` needs only nlohmann_json (checked with a pkg-config path that holds
#    nothing else); `dtask_mpi` exists; the installed programs and libdtask_mpi carry an RPATH.
# 3. A plugin + LocalCluster client (threads, then worker processes: the installed dtask-worker,
#    found through the prefix), an embedded MPI runner (dtask::mpi::run under mpirun -n 3), the
#    installed dtask-run under mpirun, and the installed dtask-scheduler + dtask-worker with a
#    client that joins through the scheduler file. Outputs and exit codes are checked.
# Prints one line per check and "N passed, N failed"; exits 0 only when all passed.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)" || { echo "no build dir ${1:-$root/build}" >&2; exit 2; }
work="$(mktemp -d /var/tmp/dtask-oot-XXXXXX)"
prefix="$work/prefix"
scratch="$(mktemp -d "$build.install-check-XXXXXX")"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$work" "$scratch"
}
trap cleanup EXIT
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { # bad NAME [FILES...]
  failed=$((failed + 1))
  echo "FAIL $1"
  local f
  shift
  for f in "$@"; do [ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -15; done
  return 0
}
# run_checked NAME LOG COMMAND...: a step that must succeed before anything else makes sense
must() {
  local name="$1" log="$2"
  shift 2
  if "$@" >"$log" 2>&1; then ok "$name"; else bad "$name" "$log"; echo "$passed passed, $failed failed"; exit 1; fi
}

# ------------------------------------------------------------------ install into a real prefix
must "meson setup --prefix $prefix (scratch build)" "$work/setup.log" \
  meson setup "$scratch" "$root" --prefix "$prefix" -Dlibdir=lib
must "build the installed targets" "$work/build.log" \
  nice ninja -C "$scratch" -j2 src/cli/dtask-run src/cli/dtask-worker src/cli/dtask-scheduler src/cli/dtask-cluster
must "meson install" "$work/install.log" meson install -C "$scratch" --no-rebuild --quiet
rm -rf "$scratch"  # from here on only the prefix is used

libdir="$prefix/lib"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
unset DTASK_WORKER_EXE DTASK_SCHEDULER_EXE LD_LIBRARY_PATH

# ------------------------------------------------------------------ pkg-config and RPATH
# Only nlohmann_json's .pc beside ours: a user without libzmq/spdlog development files.
only_json="$work/only-json-pc"
mkdir -p "$only_json"
json_pc="$(pkg-config --variable=pcfiledir nlohmann_json 2>/dev/null)/nlohmann_json.pc"
[ -f "$json_pc" ] && cp "$json_pc" "$only_json/"
name="pkg-config --cflags --libs dtask needs nlohmann_json only, and carries no private flags"
if flags=$(PKG_CONFIG_LIBDIR="$libdir/pkgconfig:$only_json" PKG_CONFIG_PATH= pkg-config --cflags --libs dtask 2>"$work/pc.err") &&
  ! grep -qE 'pgm|SPDLOG|spdlog|zmq|libxml|krb5' <<<"$flags" && [ -z "$(pkg-config --print-requires-private dtask)" ]; then
  ok "$name ($flags)"
else
  echo "$flags" >"$work/pc.out"
  bad "$name" "$work/pc.out" "$work/pc.err"
fi
name="pkg-config dtask_mpi: -ldtask_mpi and dtask's flags"
if mflags=$(PKG_CONFIG_LIBDIR="$libdir/pkgconfig:$only_json" PKG_CONFIG_PATH= pkg-config --cflags --libs dtask_mpi 2>"$work/pc.err") &&
  grep -q -- '-ldtask_mpi' <<<"$mflags" && grep -q -- '-ldtask' <<<"${mflags/-ldtask_mpi/}"; then
  ok "$name ($mflags)"
else
  bad "$name" "$work/pc.err"
fi
rpath_of() { readelf -d "$1" 2>/dev/null | sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]/\2/p'; }
for f in bin/dtask-run bin/dtask-worker bin/dtask-scheduler bin/dtask-cluster lib/libdtask_mpi.so; do
  rp=$(rpath_of "$prefix/$f")
  name="installed $f has RPATH $libdir"
  if tr ':' '\n' <<<"$rp" | grep -qx "$libdir"; then ok "$name"; else bad "$name (it has '$rp')"; fi
done

# ------------------------------------------------------------------ the user's programs
cd "$work"
cat >mytasks.cpp <<'CPP'
// A user's plugin: tasks for LocalCluster workers and dtask-worker, and client code for dtask-run.
#include <cstdio>
#include <dtask/dtask.hpp>
int inc(int x) { return x + 1; }
int dec(int x) { return x - 1; }
int add(int x, int y) { return x + y; }
DTASK_TASKS(inc, dec, add);
int job_main(dtask::Client& client, int argc, char** argv) {
  int total = 0;
  for (int i = 0; i < 50; ++i) total += client.submit(add, client.submit(inc, i), client.submit(dec, i)).result();
  std::printf("dtask-run job: total=%d\n", total);
  return total == 2450 ? (argc > 1 ? std::atoi(argv[1]) : 0) : 1;
}
DTASK_MAIN(job_main);
CPP
cat >local.cpp <<'CPP'
// A user's program with a LocalCluster: workers as threads, then as dtask-worker processes.
#include <cstdio>
#include <dtask/dtask.hpp>
int inc(int); int dec(int); int add(int, int);
int run(bool processes) {
  dtask::LocalClusterOptions o;
  o.n_workers = 2;
  o.plugin = "./libmytasks.so";
  o.processes = processes;
  dtask::LocalCluster cluster(o);
  dtask::Client client(cluster);
  std::vector<dtask::Delayed<int>> zs;
  for (int i = 0; i < 256; ++i) {
    auto x = dtask::delayed(inc, i); auto y = dtask::delayed(dec, x); zs.push_back(dtask::delayed(add, x, y));
  }
  std::vector<int> result = client.compute(zs);
  for (int i = 0; i < 256; ++i) if (result[i] != 2 * i + 1) { std::printf("wrong\n"); return 1; }
  std::printf("LocalCluster(processes=%d): 256 chains OK\n", processes ? 1 : 0);
  return 0;
}
int main() { return run(false) + run(true); }
CPP
# The embedded runner: the mpirun suite's own program, built here as a user would.
cp "$root/tests/mpi/embedded_job.cpp" embedded.cpp
cat >join.cpp <<'CPP'
// A user's client joining a running scheduler through its scheduler file, then ending the cluster.
#include <cstdio>
#include <dtask/dtask.hpp>
int inc(int); int dec(int); int add(int, int);
int main(int, char** argv) {
  auto client = dtask::Client::from_scheduler_file(argv[1]);
  if (!client.wait_for_workers(2, std::chrono::seconds(30))) return 3;
  int total = 0;
  for (int i = 0; i < 50; ++i) total += client.submit(add, client.submit(inc, i), client.submit(dec, i)).result();
  std::printf("joined client: total=%d\n", total);
  client.shutdown_cluster(0);
  return total == 2450 ? 0 : 1;
}
CPP
# pkg-config only: nothing from the source tree or the build.
# shellcheck disable=SC2086
must "build the plugin with pkg-config dtask" "$work/cc1.log" \
  g++ -std=c++20 -Wall -Werror -shared -fPIC mytasks.cpp -o libmytasks.so $(pkg-config --cflags --libs dtask)
# shellcheck disable=SC2086
must "build a LocalCluster program with pkg-config dtask" "$work/cc2.log" \
  g++ -std=c++20 -Wall -Werror local.cpp -o local ./libmytasks.so $(pkg-config --cflags --libs dtask) -Wl,-rpath,"$libdir"
# shellcheck disable=SC2086
must "build a scheduler-file client with pkg-config dtask" "$work/cc3.log" \
  g++ -std=c++20 -Wall -Werror join.cpp -o join ./libmytasks.so $(pkg-config --cflags --libs dtask) -Wl,-rpath,"$libdir"
# shellcheck disable=SC2086
must "build an embedded MPI runner with pkg-config dtask_mpi" "$work/cc4.log" \
  g++ -std=c++20 -Wall -Werror embedded.cpp -o embedded $(pkg-config --cflags --libs dtask_mpi) -Wl,-rpath,"$libdir"

# ------------------------------------------------------------------ run them
timeout -k 5 120 ./local >local.out 2>local.err
rc=$?
name="LocalCluster client + plugin: threads and installed dtask-worker processes, exit 0"
if [ $rc -eq 0 ] && [ "$(grep -c '256 chains OK' local.out)" -eq 2 ]; then ok "$name"; else bad "$name (rc=$rc)" local.out local.err; fi

timeout -k 5 60 "${MPIRUN[@]}" -n 3 ./embedded 7 >emb.out 2>emb.err
rc=$?
name="embedded dtask::mpi::run under mpirun -n 3: result right, exit 7 (the client's)"
if [ $rc -eq 7 ] && grep -q "sum of squares = 328350" emb.out; then ok "$name"; else bad "$name (rc=$rc)" emb.out emb.err; fi

timeout -k 5 60 "${MPIRUN[@]}" -n 3 "$prefix/bin/dtask-run" ./libmytasks.so 5 >run.out 2>run.err
rc=$?
name="installed dtask-run under mpirun -n 3: result right, exit 5 (the client's)"
if [ $rc -eq 5 ] && grep -q "total=2450" run.out; then ok "$name"; else bad "$name (rc=$rc)" run.out run.err; fi

"$prefix/bin/dtask-scheduler" --scheduler-file "$work/sched.json" >sched.out 2>sched.err &
spid=$!
pids+=("$spid")
for _ in $(seq 100); do [ -s "$work/sched.json" ] && break; sleep 0.1; done
wpids=()
for i in 1 2; do
  "$prefix/bin/dtask-worker" --scheduler-file "$work/sched.json" --plugin ./libmytasks.so >"w$i.out" 2>"w$i.err" &
  wpids+=($!)
  pids+=($!)
done
timeout -k 5 60 ./join "$work/sched.json" >join.out 2>join.err
crc=$?
# shutdown_cluster(0): the scheduler and its workers leave on their own, with code 0.
srcs=0
timeout 20 tail --pid="$spid" -f /dev/null
wait "$spid"
src=$?
for p in "${wpids[@]}"; do
  timeout 20 tail --pid="$p" -f /dev/null
  wait "$p" || srcs=$((srcs + 1))
done
name="installed dtask-scheduler + 2 dtask-worker, client from the scheduler file: right, all exit 0"
if [ $crc -eq 0 ] && grep -q "total=2450" join.out && [ $src -eq 0 ] && [ $srcs -eq 0 ]; then ok "$name"; else
  bad "$name (client rc=$crc, scheduler rc=$src, $srcs workers non-zero)" join.out join.err sched.err w1.err w2.err
fi

# dtask-cluster (slurm::Cluster's cleanup tool) runs from the prefix: nothing recorded, nothing to do.
name="installed dtask-cluster list on an empty state directory: exit 0"
mkdir -p "$work/clusters"
if "$prefix/bin/dtask-cluster" --directory "$work/clusters" list >cl.out 2>cl.err; then ok "$name"; else
  bad "$name" cl.out cl.err
fi

echo "$passed passed, $failed failed"
((failed == 0))
