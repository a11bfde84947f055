#!/usr/bin/python3
"""Merge dtask_bench and dask_bench.py records into one table (dtask/Dask ratios, targets).

    merge.py --dir OUT [--small 0|1]

Reads OUT/dtask_W*.json, OUT/dtask_FP.json and OUT/dask.json, prints the table, and writes OUT/bench.json
(machine, records, comparisons, targets) and OUT/table.md (the same tables in Markdown, as
pasted into docs/performance.md). Standard library only.
"""

import argparse
import glob
import json
import os
import platform
import subprocess
import sys

# --------------------------------------------------------------------------------------------
# machine


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:  # never fail the merge for a description
        return ""


def machine(root):
    info = {"host": platform.node(), "kernel": platform.release()}
    for line in sh("lscpu").splitlines():
        k, _, v = line.partition(":")
        if k.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Hypervisor vendor", "L3 cache"):
            info[k.strip()] = v.strip()
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            info["MemTotal"] = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    info["compiler"] = sh("c++ --version | head -1")
    info["libzmq"] = sh("dpkg-query -W -f '${Version}' libzmq5")
    info["libsodium"] = sh("dpkg-query -W -f '${Version}' libsodium23")
    info["openmpi"] = sh("dpkg-query -W -f '${Version}' openmpi-bin")
    try:
        import distributed  # noqa: F401  (Debian's python3-distributed)
        info["distributed"] = distributed.__version__
    except Exception:
        info["distributed"] = None
    info["git_commit"] = sh("git -C %s rev-parse --short HEAD" % root)
    info["git_dirty_files"] = len([l for l in sh("git -C %s status --porcelain" % root).splitlines() if l.strip()])
    info["loadavg_at_merge"] = open("/proc/loadavg").read().split()[:3]
    return info


# --------------------------------------------------------------------------------------------
# records


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return []


def key(r):
    return (r["workload"], r["variant"], r["n"])


def fnum(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, float) and digits == 0 and abs(v) < 10:
        return "%.2f" % v
    return ("{:,.%df}" % digits).format(v)


def human_n(n):
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return "%d MiB" % (n >> 20)
    if n >= 1000000 and n % 1000000 == 0:
        return "%dM" % (n // 1000000)
    if n >= 1000 and n % 1000 == 0:
        return "%dk" % (n // 1000)
    return str(n)


# How a row is read: "rate" (higher is better: tasks/s or MB/s), "time" (wall, lower is better),
# "latency" (p50/p99), "memory" (bytes per task).
def kind(r):
    w, v = r["workload"], r["variant"]
    if w == "FP":
        return "latency" if v == "submit-result" else "rate"
    if w == "W3":
        return "latency"
    if w == "W6" or (w == "W10" and v.startswith(("spill-", "dd-"))):
        return "bandwidth"
    if w == "W7" or v.startswith("cluster-start-stop"):
        return "time"
    if w == "W9":
        return "memory"
    return "rate"


def figure(r):
    """The row's headline figure as text."""
    if not r.get("ok", False):
        return "FAILED: %s" % (r.get("error") or "?")
    if r.get("skipped"):
        return "skipped (%s)" % r.get("note", "")
    k = kind(r)
    if k == "latency":
        return "p50 %s us, p99 %s us" % (fnum(r["p50_us"]), fnum(r["p99_us"]))
    if k == "bandwidth":
        s = "%s MB/s" % fnum(r["mb_per_s"])
        if r.get("pct_of_raw") is not None:
            s += " (%.0f%% of raw)" % r["pct_of_raw"]
        return s
    if k == "time":
        s = "%.3f s" % r["wall_s"]
        if r.get("start_s") is not None:
            s += " (start %.3f + stop %.3f)" % (r["start_s"], r["stop_s"])
        return s
    if k == "memory":
        if r["variant"] == "scheduler-state":
            return "%s B/task live heap, ingest %s tasks/s" % (fnum(r.get("sched_held_bytes_per_task")),
                                                                 fnum(r.get("tasks_per_s")))
        return "%s B/task held (peak %s), submit %.2f s" % (
            fnum(r.get("sched_held_bytes_per_task")), fnum(r.get("sched_bytes_per_task")), r["submit_s"])
    s = "%s tasks/s (%.3f s)" % (fnum(r["tasks_per_s"]), r["wall_s"])
    if r["workload"] == "W8":
        s += ", register %.3f s" % r["register_s"]
    return s


def dask_figure(r):
    if r is None:
        return "-"
    if not r.get("ok", False):
        return "FAILED: %s" % (r.get("error") or "?")[:60]
    k = kind(r)
    if k == "latency":
        return "p50 %s, p99 %s us" % (fnum(r["p50_us"]), fnum(r["p99_us"]))
    if k == "bandwidth":
        return "%s MB/s" % fnum(r["mb_per_s"])
    if k == "time":
        return "%.3f s" % r["wall_s"]
    return "%s tasks/s" % fnum(r["tasks_per_s"])


def speedup(d, k_rows):
    """How many times better dtask is than the best Dask row (>1: dtask is better).
    Rates: dtask/Dask; times and latencies: Dask/dtask."""
    best = None
    for r in k_rows:
        if r is None or not r.get("ok", False):
            continue
        k = kind(d)
        if k == "rate" and r.get("tasks_per_s"):
            val = d["tasks_per_s"] / r["tasks_per_s"]
        elif k == "bandwidth" and r.get("mb_per_s"):
            val = d["mb_per_s"] / r["mb_per_s"]
        elif k == "time" and r.get("wall_s"):
            val = r["wall_s"] / d["wall_s"]
        elif k == "latency" and r.get("p50_us"):
            val = r["p50_us"] / d["p50_us"]
        else:
            continue
        best = val if best is None else min(best, val)  # against the best Dask = smallest ratio
    return best


# --------------------------------------------------------------------------------------------
# targets (full sizes only: they are defined for them)


def targets(dt, dask_rows):
    def find(w, v, n, config=None):
        for r in dt:
            if r["workload"] == w and r["variant"] == v and r["n"] == n and (config is None or r["config"] == config):
                return r
        return None

    def ok(r):
        return r is not None and r.get("ok", False) and not r.get("skipped")

    out = []

    def add(name, r, measured, goal, met):
        if not ok(r):
            out.append({"target": name, "measured": "not measured" if r is None else figure(r), "goal": goal,
                        "met": False if r is not None else None})
        else:
            out.append({"target": name, "measured": measured, "goal": goal, "met": bool(met)})

    for v in ("map", "delayed"):
        r = find("W2", v, 1000000)
        add("W2 %s 1M no-op tasks/s" % v, r, r and fnum(r.get("tasks_per_s")), ">= 100,000",
            ok(r) and r["tasks_per_s"] >= 100000)
    for v in ("map", "delayed"):
        r = find("W2", v, 100000)
        drs = [x for x in dask_rows if key(x) == ("W2", v, 100000)]
        s = speedup(r, drs) if ok(r) else None
        add("W2 %s 100k vs Dask's best" % v, r if (s is not None or not ok(r)) else None,
            s is not None and "%.1fx" % s, ">= 50x", s is not None and s >= 50)
    r = find("W4", "tree-reduce", 1 << 15)
    add("W4 tree reduction 2^15 tasks/s", r, r and fnum(r.get("tasks_per_s")), ">= 50,000",
        ok(r) and r["tasks_per_s"] >= 50000)
    for v, n in (("all-to-all-split", 100), ("merge", 100000)):
        r = find("W5", v, n)
        add("W5 %s %s tasks/s" % (v, human_n(n)), r, r and fnum(r.get("tasks_per_s")), ">= 50,000",
            ok(r) and r["tasks_per_s"] >= 50000)
    r = find("W3", "submit-result", 10000)
    add("W3 p50", r, r and "%s us" % fnum(r.get("p50_us")), "<= 100 us", ok(r) and r["p50_us"] <= 100)
    add("W3 p99", r, r and "%s us" % fnum(r.get("p99_us")), "<= 500 us", ok(r) and r["p99_us"] <= 500)
    for cfg, raw in (("dtask", "CURVE"), ("dtask-insecure", "plain")):
        r = find("W6", "transfer", 64 << 20, cfg)
        add("W6 64 MiB transfer vs raw ZeroMQ (%s)" % raw, r,
            r and r.get("pct_of_raw") is not None and "%.0f%%" % r["pct_of_raw"], ">= 70%",
            ok(r) and (r.get("pct_of_raw") or 0) >= 70)
    r = find("W7", "dtask-run", 4)
    add("W7 mpirun -n 4 dtask-run vs MPI hello", r, r and r.get("vs_mpi_hello") and "%.2fx" % r["vs_mpi_hello"],
        "<= 1.5x", ok(r) and r.get("vs_mpi_hello") is not None and r["vs_mpi_hello"] <= 1.5)
    r = None
    for x in dt:
        if x["workload"] == "W8" and x.get("workers") == 1000:
            r = x
    add("W8 1000 workers vs 8 (throughput)", r, r and "%.0f%%" % (100 * (r.get("rel_to_8") or 0)), ">= 80%",
        ok(r) and (r.get("rel_to_8") or 0) >= 0.8)
    add("W8 1000 registrations", r, r and "%.2f s" % r.get("register_s", -1), "<= 2 s",
        ok(r) and 0 <= r.get("register_s", -1) <= 2)
    for n in (1000000, 10000000):
        r = find("W9", "graph", n)
        add("W9 %s-task graph: scheduler bytes/task (RSS held)" % human_n(n), r,
            r and "%s B" % fnum(r.get("sched_held_bytes_per_task")), "<= 300 B",
            ok(r) and r["sched_held_bytes_per_task"] <= 300)
    r = find("W9", "graph", 10000000)
    add("W9 10M tasks fit", r, r and ("yes" if ok(r) else "no"), "fits", ok(r))
    for v in ("spill-write", "spill-read"):
        r = find("W10", v, 64)
        add("W10 %s vs dd to the same directory" % v, r,
            r and r.get("pct_of_raw") is not None and "%.0f%%" % r["pct_of_raw"], ">= 70%",
            ok(r) and (r.get("pct_of_raw") or 0) >= 70)
    # W2's map with a memory_limit set but not reached against none: medians of the pairs.
    def median_rate(w, v):
        xs = sorted(x["tasks_per_s"] for x in dt if x["workload"] == w and x["variant"] == v and ok(x))
        return xs[len(xs) // 2] if xs else None
    on, off = median_rate("W10", "map-limit-unreached"), median_rate("W10", "map-no-limit")
    r = find("W10", "map-limit-unreached", 100000)
    add("W10 W2 map 100k with memory_limit unreached vs none", r if (on and off) or not ok(r) else None,
        on and off and "%.1f%%" % (100.0 * on / off), ">= 97%", bool(on and off and on >= 0.97 * off))
    # W2's map with a headless browser on the dashboard against no dashboard: medians of the pairs.
    on, off = median_rate("W11", "map-browser-on-dashboard"), median_rate("W11", "map-no-dashboard")
    r = find("W11", "map-browser-on-dashboard", 100000)
    add("W11 W2 map 100k with a browser on the dashboard vs none", r if (on and off) or not ok(r) else None,
        on and off and "%.1f%%" % (100.0 * on / off), ">= 95%", bool(on and off and on >= 0.95 * off))
    return out


# --------------------------------------------------------------------------------------------
# FP: one row per set of fast paths


def fast_path_rows(fp):
    by = {}
    order = []
    for r in fp:
        spec = r.get("fast_paths", "?")
        if spec not in by:
            order.append(spec)
        by.setdefault(spec, {})[r["variant"]] = r

    def good(r):
        return r is not None and r.get("ok", False) and not r.get("skipped")

    base = by.get("all", {})
    rows = []
    for spec in order:
        w3, w2 = by[spec].get("submit-result"), by[spec].get("map")
        b3, b2 = base.get("submit-result"), base.get("map")
        row = {"fast_paths": spec, "w3_p50": "-", "w3_p99": "-", "w3_vs_all": "-", "w2_rate": "-", "w2_vs_all": "-",
               "w3_n": w3 and w3["n"], "w2_n": w2 and w2["n"]}
        if w3 is not None and not good(w3):
            row["w3_p50"] = figure(w3)
        elif w3 is not None:
            row["w3_p50"], row["w3_p99"] = fnum(w3["p50_us"]), fnum(w3["p99_us"])
            if good(b3) and b3["p50_us"]:
                row["w3_vs_all"] = "%.2fx" % (w3["p50_us"] / b3["p50_us"])
        if w2 is not None and not good(w2):
            row["w2_rate"] = figure(w2)
        elif w2 is not None:
            row["w2_rate"] = "%s (%s)" % (fnum(w2["tasks_per_s"]), human_n(w2["n"]))
            if good(b2) and b2["tasks_per_s"]:
                row["w2_vs_all"] = "%.2fx" % (w2["tasks_per_s"] / b2["tasks_per_s"])
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--small", default="0")
    ap.add_argument("--started", default="")
    ap.add_argument("--dtask-seconds", type=float, default=None)
    ap.add_argument("--dask-seconds", type=float, default=None)
    a = ap.parse_args()
    small = a.small not in ("0", "", "false")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    dt = []
    for p in sorted(glob.glob(os.path.join(a.dir, "dtask_*.json"))):
        dt.extend(load(p))
    dk = load(os.path.join(a.dir, "dask.json"))
    order = {w: i for i, w in enumerate(["W%d" % i for i in range(1, 11)])}
    dt.sort(key=lambda r: order.get(r["workload"], 99))
    # FP (what each fast path is worth) gets a table of its own, not Dask comparisons.
    fp = [r for r in dt if r["workload"] == "FP"]
    dt = [r for r in dt if r["workload"] != "FP"]

    dask_by = {}
    for r in dk:
        dask_by.setdefault(key(r), {})[r["config"]] = r

    rows = []
    for r in dt:
        if r["workload"] == "W6" and r["variant"].startswith("raw"):
            dmatch = {}
        elif r["workload"] == "W6" and r["config"] != "dtask":
            dmatch = dask_by.get(("W6", "transfer", r["n"]), {})
        else:
            dmatch = dask_by.get(key(r), {})
        drs = list(dmatch.values())
        if r["workload"] == "W5" and r["variant"] == "merge":  # Dask's cheaper form of the same graph
            drs += list(dask_by.get(("W5", "merge-lowlevel", r["n"]), {}).values())
        s = speedup(r, drs) if r.get("ok") and not r.get("skipped") and drs else None
        note = ""
        if not drs and r["workload"] in ("W1", "W2", "W3", "W4", "W5", "W6") and not r["variant"].startswith("raw") \
                and r["variant"] not in ("cluster-start-stop-threads", "cluster-start-stop-cli"):
            note = "no Dask run at this size" if dk else "Dask not run"
        config = r["config"]
        if r.get("fast_paths", "all") != "all":
            config += " fast_paths=" + r["fast_paths"]
        rows.append({"workload": r["workload"], "variant": r["variant"], "n": r["n"], "config": config,
                     "dtask": figure(r), "dask_default": dask_figure(dmatch.get("default")),
                     "dask_fast": dask_figure(dmatch.get("fast")),
                     "speedup_vs_best_dask": s, "note": note})

    tg = [] if small else targets(dt, dk)

    # ---- print / markdown
    md = []
    md.append("| W | variant | n | config | dtask | Dask default | Dask saturation=inf | dtask vs best Dask |")
    md.append("|---|---|---|---|---|---|---|---|")
    for x in rows:
        sp = ("%.1fx" % x["speedup_vs_best_dask"]) if x["speedup_vs_best_dask"] is not None else (x["note"] or "")
        md.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            x["workload"], x["variant"], human_n(x["n"]), x["config"], x["dtask"], x["dask_default"], x["dask_fast"], sp))
    md.append("")
    md.append("Scheduler figures per dtask case (scheduler = the `dtask-scheduler` process; W8 runs in-process):")
    md.append("")
    md.append("| W | variant | n | sched peak RSS MB | sched B/task (peak) | sched CPU s | workers CPU s | client CPU s | load1 |")
    md.append("|---|---|---|---|---|---|---|---|---|")
    for r in dt:
        if not r.get("ok") or r.get("skipped"):
            continue
        if r.get("sched_peak_rss_mb") is None and r.get("sched_cpu_s") is None:
            continue
        md.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["workload"], r["variant"], human_n(r["n"]), fnum(r.get("sched_peak_rss_mb"), 0),
            fnum(r.get("sched_bytes_per_task"), 0), fnum(r.get("sched_cpu_s"), 2), fnum(r.get("workers_cpu_s"), 2),
            fnum(r.get("client_cpu_s"), 2), r.get("load1_at_start", "-")))
    fp_rows = fast_path_rows(fp)
    if fp_rows:
        md.append("")
        md.append("What each fast path is worth (FP: W3's round trip and W2's map with all of them, none, "
                  "and each one off; ratios against all):")
        md.append("")
        md.append("| fast paths | W3 p50 us | W3 p99 us | W3 p50 vs all | W2 map tasks/s | W2 map vs all |")
        md.append("|---|---|---|---|---|---|")
        for x in fp_rows:
            md.append("| %s | %s | %s | %s | %s | %s |" % (
                x["fast_paths"], x["w3_p50"], x["w3_p99"], x["w3_vs_all"], x["w2_rate"], x["w2_vs_all"]))
    if tg:
        md.append("")
        md.append("| target | measured | goal | met |")
        md.append("|---|---|---|---|")
        for t in tg:
            met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
            md.append("| %s | %s | %s | %s |" % (t["target"], t["measured"], t["goal"], met))
    elif small:
        md.append("")
        md.append("(--small: the targets are defined for the full sizes and are not evaluated.)")
    text = "\n".join(md) + "\n"
    print(text)

    nbad = sum(not r.get("ok", False) for r in dt + fp) + sum(not r.get("ok", False) for r in dk)
    info = machine(root)
    summary = {"started": a.started, "small": small, "machine": info,
               "dtask_seconds": a.dtask_seconds, "dask_seconds": a.dask_seconds,
               "dtask_records": dt + fp, "dask_records": dk, "rows": rows, "fast_path_rows": fp_rows,
               "targets": tg, "failed_records": nbad}
    with open(os.path.join(a.dir, "bench.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    with open(os.path.join(a.dir, "table.md"), "w") as f:
        f.write(text)
    met = sum(1 for t in tg if t["met"])
    print("records: dtask %d, Dask %d, failed %d; targets met %d of %d" % (len(dt) + len(fp), len(dk), nbad, met, len(tg)))
    return 1 if nbad else 0


if __name__ == "__main__":
    sys.exit(main())
