#!/usr/bin/python3
"""Dask distributed baseline for the dtask benchmark suite.

Runs workloads W1..W6 on a ``distributed.LocalCluster`` (processes, one thread
per worker, no dashboard) and prints one human line per measured record; with
``--json`` also writes the records as a JSON list.

    /usr/bin/python3 tests/bench/dask_bench.py --workers 2 --config default \
        --workloads W1,W2,W3,W4,W5,W6 [--small] [--json out.json] [--timeout 300]

Each workload case runs in its own child process (with its own cluster) under
a hard timeout; a case that exceeds it is killed together with its worker
processes and its unfinished records are reported with ok=false. See
README.dask.md next to this file for what exactly is measured.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

# Quieten Dask before it is imported, in this process and (through the
# environment) in the nanny/worker processes it spawns.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
os.environ.setdefault("DASK_DISTRIBUTED__ADMIN__LOG_LENGTH", "0")

MIB = 1 << 20
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6")
CONFIGS = ("default", "fast")


# --------------------------------------------------------------------------
# Plan: which records each workload produces (shared by parent and child so the
# parent can report the unfinished ones of a workload that timed out).
# --------------------------------------------------------------------------

def plan(workload, small):
    if workload == "W1":
        return [("chains", 256), ("cluster-start-stop", 2)]
    if workload == "W2":
        sizes = (1_000, 10_000) if small else (10_000, 100_000)
        return [(v, n) for v in ("map", "delayed") for n in sizes]
    if workload == "W3":
        return [("submit-result", 500 if small else 10_000)]
    if workload == "W4":
        return [("tree-reduce", 2 ** 10 if small else 2 ** 15)]
    if workload == "W5":
        k = 20 if small else 100
        m = 5_000 if small else 100_000
        return [("all-to-all", k), ("all-to-all-split", k),
                ("merge", m), ("merge-lowlevel", m)]
    if workload == "W6":
        return [("transfer", (8 if small else 64) * MIB)]
    raise ValueError(workload)


def record(workload, variant, n, config, wall_s=None, tasks_per_s=None,
           p50_us=None, p99_us=None, mb_per_s=None, ok=True, error=None,
           **extra):
    r = {"workload": workload, "variant": variant, "n": n, "config": config,
         "wall_s": wall_s, "tasks_per_s": tasks_per_s, "p50_us": p50_us,
         "p99_us": p99_us, "mb_per_s": mb_per_s, "ok": ok, "error": error}
    r.update(extra)
    return r


def human(r):
    parts = ["dask", r["workload"], r["variant"], "n=%d" % r["n"],
             "config=%s" % r["config"]]
    if r["wall_s"] is not None:
        parts.append("wall=%.3fs" % r["wall_s"])
    if r["tasks_per_s"] is not None:
        parts.append("tasks/s=%.0f" % r["tasks_per_s"])
    if r["p50_us"] is not None:
        parts.append("p50=%.0fus p99=%.0fus" % (r["p50_us"], r["p99_us"]))
    if r["mb_per_s"] is not None:
        parts.append("MB/s=%.1f" % r["mb_per_s"])
    for k in ("tasks", "edges", "submit_s", "start_s", "stop_s"):
        if r.get(k) is not None:
            v = r[k]
            parts.append("%s=%s" % (k, ("%.3fs" % v) if isinstance(v, float) else v))
    if not r["ok"]:
        parts.append("ok=false (%s)" % r["error"])
    return " ".join(parts)


# --------------------------------------------------------------------------
# Task functions (module level so cloudpickle ships them by value from
# __main__ to the workers).
# --------------------------------------------------------------------------

def inc(x):
    return x + 1


def dec(x):
    return x - 1


def add(x, y):
    return x + y


def noop(_):
    return None


def ident(x):
    return x


def produce(i, k):
    # one output per consumer, so the -split variant can slice it
    return [i * k + j for j in range(k)]


def consume(j, *parts):
    # all-to-all consumer: takes every producer's whole output
    return sum(p[j] for p in parts)


def take(part, j):
    return part[j]


def consume_split(*vals):
    return sum(vals)


def sum_all(*vals):
    return sum(vals)


def make_bytes(size):
    return os.urandom(size)


def nbytes(b):
    return len(b)


def _scheduler_task_count(dask_scheduler):
    return len(dask_scheduler.tasks)


HEARTBEAT_MSG = "Failed to communicate with scheduler during heartbeat"


def _quiet_logs():
    """Run in the child and (via client.run) in every worker process.

    Drops the one ERROR record Dask logs, with a traceback, when a worker's
    heartbeat finds the scheduler's stream closed. Dask treats that OSError as
    non-fatal (the worker just tries again at the next heartbeat). We saw it
    once, when a cluster shut down right after a 100k-task case."""
    import logging
    import warnings

    class _DropHeartbeat(logging.Filter):
        def filter(self, rec):
            return not str(rec.msg).startswith(HEARTBEAT_MSG)

    logging.getLogger("distributed.worker").addFilter(_DropHeartbeat())
    # W5 merge: the single task with 100k dependencies trips Dask's one-shot
    # "Large object of size 4.29 MiB detected in task graph" UserWarning
    # (worker.warn_dumps, run client-side while packing the graph).
    warnings.filterwarnings("ignore", message="Large object of size",
                            category=UserWarning)


# --------------------------------------------------------------------------
# Child: one cluster, one workload.
# --------------------------------------------------------------------------

class Child:
    def __init__(self, args, out):
        self.args = args
        self.config = args.config
        self.out = out
        self.client = None

    def emit(self, r):
        self.out.write(json.dumps(r) + "\n")
        self.out.flush()

    def idle(self, timeout=60.0):
        """Wait (untimed) until the scheduler has forgotten all tasks."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.client.run_on_scheduler(_scheduler_task_count) == 0:
                return
            time.sleep(0.05)

    def run_variant(self, workload, variant, n, fn):
        try:
            r = fn(n)
        except Exception as e:  # report, do not hang or crash the run
            r = record(workload, variant, n, self.config, ok=False,
                       error="%s: %s" % (type(e).__name__, e))
        self.emit(r)
        self.idle()

    # ---- W1 -------------------------------------------------------------
    def w1_chains(self, n):
        import dask
        c = self.client
        t0 = time.perf_counter()
        zs = []
        for i in range(n):
            x = dask.delayed(inc, pure=False)(i)
            y = dask.delayed(dec, pure=False)(x)
            zs.append(dask.delayed(add, pure=False)(x, y))
        futs = c.compute(zs)
        sub = time.perf_counter() - t0
        res = c.gather(futs)
        wall = time.perf_counter() - t0
        ok = res == [2 * i + 1 for i in range(n)]
        return record("W1", "chains", n, self.config, wall_s=wall,
                      tasks_per_s=3 * n / wall, ok=ok, tasks=3 * n, submit_s=sub,
                      error=None if ok else "wrong results")

    # ---- W2 -------------------------------------------------------------
    def w2_map(self, n):
        c = self.client
        t0 = time.perf_counter()
        futs = c.map(noop, range(n))
        sub = time.perf_counter() - t0
        res = c.gather(futs)
        wall = time.perf_counter() - t0
        ok = len(res) == n and all(v is None for v in res)
        del futs, res
        return record("W2", "map", n, self.config, wall_s=wall,
                      tasks_per_s=n / wall, ok=ok, submit_s=sub,
                      error=None if ok else "wrong count")

    def w2_delayed(self, n):
        import dask
        c = self.client
        t0 = time.perf_counter()
        ds = [dask.delayed(noop, pure=False)(i) for i in range(n)]
        futs = c.compute(ds)
        sub = time.perf_counter() - t0
        res = c.gather(futs)
        wall = time.perf_counter() - t0
        ok = len(res) == n and all(v is None for v in res)
        del futs, res, ds
        return record("W2", "delayed", n, self.config, wall_s=wall,
                      tasks_per_s=n / wall, ok=ok, submit_s=sub,
                      error=None if ok else "wrong count")

    # ---- W3 -------------------------------------------------------------
    def w3(self, n):
        c = self.client
        for i in range(20):  # warm-up, not timed
            c.submit(inc, i, pure=False).result()
        lat = []
        bad = 0
        t0 = time.perf_counter()
        for i in range(n):
            s = time.perf_counter()
            v = c.submit(inc, i, pure=False).result()
            lat.append(time.perf_counter() - s)
            if v != i + 1:
                bad += 1
        wall = time.perf_counter() - t0
        lat.sort()

        def pct(p):  # nearest-rank percentile
            k = max(0, min(len(lat) - 1, int(-(-p * len(lat) // 100)) - 1))
            return lat[k] * 1e6

        return record("W3", "submit-result", n, self.config, wall_s=wall,
                      tasks_per_s=n / wall, p50_us=pct(50), p99_us=pct(99),
                      ok=bad == 0, error=None if bad == 0 else "%d wrong" % bad)

    # ---- W4 -------------------------------------------------------------
    def w4(self, leaves):
        import dask
        c = self.client
        t0 = time.perf_counter()
        level = list(range(leaves))  # leaves are literals; every add is a task
        ntasks = 0
        while len(level) > 1:
            level = [dask.delayed(add, pure=False)(level[i], level[i + 1])
                     for i in range(0, len(level), 2)]
            ntasks += len(level)
        fut = c.compute(level[0])
        sub = time.perf_counter() - t0
        res = fut.result()
        wall = time.perf_counter() - t0
        ok = res == leaves * (leaves - 1) // 2
        return record("W4", "tree-reduce", leaves, self.config, wall_s=wall,
                      tasks_per_s=ntasks / wall, ok=ok, tasks=ntasks, submit_s=sub,
                      error=None if ok else "wrong sum %r" % res)

    # ---- W5 -------------------------------------------------------------
    def _a2a_expected(self, k):
        # consumer j sums producer i's j-th element (i*k + j) over i
        return [k * (k - 1) // 2 * k + k * j for j in range(k)]

    def w5_a2a(self, k):
        import dask
        c = self.client
        t0 = time.perf_counter()
        prods = [dask.delayed(produce, pure=False)(i, k) for i in range(k)]
        cons = [dask.delayed(consume, pure=False)(j, *prods) for j in range(k)]
        futs = c.compute(cons)
        sub = time.perf_counter() - t0
        res = c.gather(futs)
        wall = time.perf_counter() - t0
        ok = res == self._a2a_expected(k)
        return record("W5", "all-to-all", k, self.config, wall_s=wall,
                      tasks_per_s=2 * k / wall, ok=ok, tasks=2 * k, submit_s=sub,
                      edges=k * k, error=None if ok else "wrong results")

    def w5_a2a_split(self, k):
        import dask
        c = self.client
        t0 = time.perf_counter()
        prods = [dask.delayed(produce, pure=False)(i, k) for i in range(k)]
        cons = [dask.delayed(consume_split, pure=False)(
                    *[dask.delayed(take, pure=False)(p, j) for p in prods])
                for j in range(k)]
        futs = c.compute(cons)
        sub = time.perf_counter() - t0
        res = c.gather(futs)
        wall = time.perf_counter() - t0
        ok = res == self._a2a_expected(k)
        ntasks = k + k * k + k
        return record("W5", "all-to-all-split", k, self.config, wall_s=wall,
                      tasks_per_s=ntasks / wall, ok=ok, tasks=ntasks, submit_s=sub,
                      edges=2 * k * k, error=None if ok else "wrong results")

    def w5_merge(self, n):
        import dask
        c = self.client
        t0 = time.perf_counter()
        leaves = [dask.delayed(ident, pure=False)(i) for i in range(n)]
        total = dask.delayed(sum_all, pure=False)(*leaves)
        fut = c.compute(total)
        sub = time.perf_counter() - t0
        res = fut.result()
        wall = time.perf_counter() - t0
        ok = res == n * (n - 1) // 2
        return record("W5", "merge", n, self.config, wall_s=wall,
                      tasks_per_s=(n + 1) / wall, ok=ok, tasks=n + 1, submit_s=sub,
                      error=None if ok else "wrong sum %r" % res)

    def w5_merge_lowlevel(self, n):
        # Same graph as a plain dict (one materialized layer) through
        # client.get: avoids the per-Delayed HighLevelGraph layers whose
        # packing is quadratic in Dask 2022.12.
        import uuid
        c = self.client
        t0 = time.perf_counter()
        tag = uuid.uuid4().hex
        keys = [("leaf-" + tag, i) for i in range(n)]
        dsk = {k: (ident, i) for i, k in enumerate(keys)}
        dsk["total-" + tag] = (sum_all,) + tuple(keys)
        fut = c.get(dsk, "total-" + tag, sync=False)
        sub = time.perf_counter() - t0
        res = fut.result()
        wall = time.perf_counter() - t0
        ok = res == n * (n - 1) // 2
        return record("W5", "merge-lowlevel", n, self.config, wall_s=wall,
                      tasks_per_s=(n + 1) / wall, ok=ok, tasks=n + 1, submit_s=sub,
                      error=None if ok else "wrong sum %r" % res)

    # ---- W6 -------------------------------------------------------------
    def w6(self, size, reps=3):
        from distributed import wait as wait_for
        c = self.client
        workers = sorted(c.scheduler_info()["workers"])
        if len(workers) < 2:
            return record("W6", "transfer", size, self.config, ok=False,
                          error="needs >= 2 workers")
        a, b = workers[0], workers[1]
        times = []
        for _ in range(reps):
            src = c.submit(make_bytes, size, workers=[a], pure=False)
            wait_for(src)  # produced on A, untimed
            holders = list(c.who_has(src).get(src.key, ()))
            if holders != [a]:
                return record("W6", "transfer", size, self.config, ok=False,
                              error="source held by %r, not only A" % holders)
            t0 = time.perf_counter()
            got = c.submit(nbytes, src, workers=[b], pure=False).result()
            times.append(time.perf_counter() - t0)
            if got != size:
                return record("W6", "transfer", size, self.config, ok=False,
                              error="consumer saw %r bytes" % got)
            del src
            self.idle()
        times.sort()
        med = times[len(times) // 2]
        return record("W6", "transfer", size, self.config, wall_s=med,
                      mb_per_s=size / 1e6 / med, ok=True, reps=reps,
                      best_s=times[0])

    # ---- driver ----------------------------------------------------------
    def run(self, workload, cases):
        import logging
        import dask
        if self.config == "fast":
            dask.config.set({"distributed.scheduler.worker-saturation": float("inf")})
        from distributed import Client, LocalCluster
        _quiet_logs()

        t0 = time.perf_counter()
        # dashboard_address=None turns off the Bokeh dashboard, but the
        # 2022.12 Scheduler still starts its plain HTTP server (health and
        # metrics routes) on the default port 8787. When two clusters run at
        # once, that gives "UserWarning: Port 8787 is already in use". Put it
        # on a free loopback port instead.
        cluster = LocalCluster(n_workers=self.args.workers, threads_per_worker=1,
                               processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR,
                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        client = Client(cluster)
        client.wait_for_workers(self.args.workers)
        start_s = time.perf_counter() - t0
        self.client = client
        client.run(_quiet_logs)
        # Sanity: the setting reached the scheduler.
        sat = client.run_on_scheduler(
            lambda dask_scheduler: dask_scheduler.WORKER_SATURATION)
        want = float("inf") if self.config == "fast" else 1.1
        if sat != want:
            raise RuntimeError("worker-saturation is %r, expected %r" % (sat, want))
        client.submit(inc, 0, pure=False).result()  # warm-up, untimed

        fns = {
            ("W1", "chains"): self.w1_chains,
            ("W2", "map"): self.w2_map,
            ("W2", "delayed"): self.w2_delayed,
            ("W3", "submit-result"): self.w3,
            ("W4", "tree-reduce"): self.w4,
            ("W5", "all-to-all"): self.w5_a2a,
            ("W5", "all-to-all-split"): self.w5_a2a_split,
            ("W5", "merge"): self.w5_merge,
            ("W5", "merge-lowlevel"): self.w5_merge_lowlevel,
            ("W6", "transfer"): self.w6,
        }
        for variant, n in cases:
            if (workload, variant) in fns:
                self.run_variant(workload, variant, n, fns[(workload, variant)])

        t1 = time.perf_counter()
        client.close()
        cluster.close()
        stop_s = time.perf_counter() - t1
        if workload == "W1":
            self.emit(record("W1", "cluster-start-stop", self.args.workers,
                             self.config, wall_s=start_s + stop_s, ok=True,
                             start_s=start_s, stop_s=stop_s))


def units(workload, small):
    """Split a workload's plan into the units that each get a child process,
    a fresh cluster and their own --timeout. W1 is one unit (its cluster
    start/stop figure comes from the same cluster); the others run one
    variant/size per unit, so one slow case cannot starve the rest."""
    cases = plan(workload, small)
    if workload == "W1":
        return [cases]
    return [[c] for c in cases]


def child_main(args):
    workload = args.workloads[0]
    cases = units(workload, args.small)[args.unit]
    with open(args.child_out, "a") as out:
        Child(args, out).run(workload, cases)


# --------------------------------------------------------------------------
# Parent: one child per (config, workload), bounded by --timeout.
# --------------------------------------------------------------------------

def kill_group(proc):
    """SIGKILL the child's whole process group (child, nannies, workers and
    multiprocessing's resource tracker, which would ignore SIGTERM and then
    print leaked-semaphore warnings)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


def run_unit(args, config, workload, unit):
    fd, path = tempfile.mkstemp(prefix="dask_bench_", suffix=".jsonl")
    os.close(fd)
    cmd = [sys.executable, os.path.abspath(__file__), "--workers", str(args.workers),
           "--config", config, "--workloads", workload, "--unit", str(unit),
           "--child-out", path]
    if args.small:
        cmd.append("--small")
    # stdout of the child goes to our stderr, so nothing it prints can mix
    # with the result lines, yet any Dask noise stays visible.
    load1 = os.getloadavg()[0]  # other load on the machine skews results
    proc = subprocess.Popen(cmd, stdout=sys.stderr, stderr=sys.stderr,
                            start_new_session=True)
    reason = None
    try:
        rc = proc.wait(args.timeout)
        if rc != 0:
            reason = "child exited with status %d" % rc
    except subprocess.TimeoutExpired:
        kill_group(proc)
        reason = "timeout: exceeded %gs and was killed" % args.timeout
    except BaseException:
        kill_group(proc)
        raise
    finally:
        # the nannies are in the child's process group; make sure none linger
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    got = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                got.append(json.loads(line))
    os.unlink(path)
    done = {r["variant"] for r in got}
    for variant, n in units(workload, args.small)[unit]:
        if variant not in done:
            got.append(record(workload, variant, n, config, ok=False,
                              error=reason or "no result"))
    for r in got:
        r["load1_at_start"] = round(load1, 2)
    return got


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--config", default="default",
                   help="default | fast | default,fast")
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--small", action="store_true")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds allowed per workload case (its own cluster "
                        "start/stop included); W1 is one case, W2-W6 one "
                        "case per variant/size")
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    p.add_argument("--unit", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.workloads = [w.strip().upper() for w in a.workloads.split(",") if w.strip()]
    a.configs = [c.strip() for c in a.config.split(",") if c.strip()]
    for w in a.workloads:
        if w not in WORKLOADS:
            p.error("unknown workload %r" % w)
    for c in a.configs:
        if c not in CONFIGS:
            p.error("unknown config %r" % c)
    if a.workers < 1:
        p.error("--workers must be >= 1")
    return a


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child_out:
        child_main(args)
        return 0
    records = []
    t0 = time.perf_counter()
    for config in args.configs:
        for w in args.workloads:
            for u in range(len(units(w, args.small))):
                for r in run_unit(args, config, w, u):
                    print(human(r), flush=True)
                    records.append(r)
    total = time.perf_counter() - t0
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
            f.write("\n")
    nbad = sum(not r["ok"] for r in records)
    print("dask total wall=%.1fs records=%d failed=%d" % (total, len(records), nbad),
          flush=True)
    return 1 if nbad else 0


if __name__ == "__main__":
    sys.exit(main())
