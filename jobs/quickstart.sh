#!/usr/bin/env bash
# Quick start: install what is missing, build, run the seed's 256-chain example on a LocalCluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/deps.sh
if [ ! -f build/build.ninja ]; then meson setup build >/dev/null; fi
ninja -C build >/dev/null
echo "== LocalCluster, 2 workers =="
(cd build/jobs && ./chains_local ./libchains_tasks.so)
if [ -x build/src/cli/dtask-run ]; then
  echo "== mpirun -n 4 dtask-run =="
  mpirun -n 4 --allow-run-as-root --oversubscribe build/src/cli/dtask-run build/jobs/libchains_tasks.so
fi
