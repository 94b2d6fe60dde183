#!/usr/bin/env python3
"""Markdown tables for bench/checks.sh CSVs (and, optionally, nagios_bench.sh CSVs).

  bench/summarize_checks.py /tmp/cimaa-bench/results/checks_*.csv [nagios_bench_*.csv] > summary.md

Every cell: median and min–max over repetitions. Ratios are per repetition against the spawn ceiling
measured right before the agent in the same repetition (same command line, N and in-flight count),
then the median ratio is reported. The Nagios comparison divides each cimaa checks/s by the median
Nagios executed-checks/s (a different run: Nagios is scheduled at 5,000 checks/min, see BENCHMARKS.md).
"""
import csv, statistics, sys
from collections import defaultdict


def extra(row):
    return dict(kv.split("=", 1) for kv in (row.get("extra") or "").split(";") if "=" in kv)


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def clean(xs):
    return [x for x in xs if x == x]


def fmt(x, nd=0):
    if x != x:
        return "n/a"
    return f"{x:,.{nd}f}"


def cell(xs, nd=0):
    xs = clean(xs)
    if not xs:
        return "n/a"
    m = statistics.median(xs)
    if len(xs) == 1:
        return fmt(m, nd)
    return f"{fmt(m, nd)} ({fmt(min(xs), nd)}–{fmt(max(xs), nd)})"


rows = []
for path in sys.argv[1:]:
    with open(path) as f:
        rows += list(csv.DictReader(f))

T = defaultdict(list)  # (kind, n, c, label) -> rows
S = {}  # (variant, n, c, rep) -> row
I = []
B2 = []
for r in rows:
    w = r["workload"]
    if w == "T":
        label, kind = r["variant"].split(":", 1)
        T[(kind, int(r["n"]), int(r["level"]), label)].append(r)
    elif w == "S":
        S[(r["variant"], int(r["n"]), int(r["level"]), r["rep"])] = r
    elif w == "I":
        I.append(r)
    elif w == "B2":
        B2.append(r)

LABELS = list(dict.fromkeys(label for (_, _, _, label) in T))
nagios_rate = statistics.median([num(r["rate_per_s"]) for r in B2]) if B2 else float("nan")

print("### One `agent --once` tick vs. the spawn ceiling (same repetition)\n")
print("median (min–max) over repetitions; ceiling = spawnbench, `/bin/sh -c PLUGIN`, same N and in-flight count C\n")
print("| plugin | N | C | build | cimaa checks/s | tick wall s | process wall s | CPU s (user+sys, incl. children) | CPU ms/check | peak RSS MB | ceiling spawns/s | cimaa / ceiling | ceiling, check_dummy without sh |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (kind, n, c, label), rs in sorted(T.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], LABELS.index(kv[0][3]))):
    rate = [num(r["rate_per_s"]) for r in rs]
    took = [num(r["elapsed_s"]) for r in rs]
    wall = [num(extra(r).get("process_wall_s")) for r in rs]
    cpu = [num(extra(r).get("cpu_s")) for r in rs]
    cpc = [1000 * num(extra(r).get("cpu_s")) / n for r in rs]
    rss = [num(extra(r).get("max_rss_kb")) / 1024 for r in rs]
    ceil, ratio, direct = [], [], []
    for r in rs:
        s = S.get((f"sh-c:{kind}", n, c, r["rep"]))
        if s:
            ceil.append(num(s["rate_per_s"]))
            ratio.append(num(r["rate_per_s"]) / num(s["rate_per_s"]))
        d = S.get(("direct:dummy", n, c, r["rep"])) if kind == "dummy" else None
        if d:
            direct.append(num(d["rate_per_s"]))
    bad = sum(1 for r in rs if r["ok"] != str(n) or r["fail"] != "0")
    note = f" ⚠ {bad} rep(s) with ran≠N or faults" if bad else ""
    print(f"| {kind} | {n:,} | {c} | {label} | {cell(rate)} | {cell(took, 2)} | {cell(wall, 2)} | {cell(cpu, 2)} | {cell(cpc, 2)} | "
          f"{cell(rss, 1)} | {cell(ceil)} | {cell(ratio, 2)} | {cell(direct) if direct else '–'}{note} |")

ceil_rows = defaultdict(list)
for (variant, n, c, rep), s in S.items():
    ceil_rows[(variant, n, c)].append(s)
print("\n### Spawn ceiling alone (spawnbench)\n")
print("| command | N | C | spawns/s | wall s | CPU s (parent + children) |")
print("|---|---|---|---|---|---|")
for (variant, n, c), rs in sorted(ceil_rows.items()):
    print(f"| {variant} | {n:,} | {c} | {cell([num(r['rate_per_s']) for r in rs])} | {cell([num(r['elapsed_s']) for r in rs], 2)} | "
          f"{cell([num(extra(r).get('cpu_s')) for r in rs], 2)} |")

if I:
    print("\n### Idle `cimaa agent` (forever mode), 100 checks, 10 s after its first tick\n")
    print("| build | VmRSS MB | VmHWM MB | PSS MB | threads | CPU % of one core |")
    print("|---|---|---|---|---|---|")
    for label in LABELS or [r["variant"].split(":")[0] for r in I]:
        e = [extra(r) for r in I if r["variant"] == f"{label}:idle"]
        if e:
            print(f"| {label} | {cell([num(x['rss_kb']) / 1024 for x in e], 1)} | {cell([num(x['hwm_kb']) / 1024 for x in e], 1)} | "
                  f"{cell([num(x['pss_kb']) / 1024 for x in e], 1)} | {cell([num(x['threads']) for x in e])} | "
                  f"{cell([num(x['cpu_pct_of_one_core']) for x in e], 2)} |")

if B2:
    print("\n### Nagios Core 4 (nagios_bench.sh), 5,000 check_dummy services at a 1-minute interval\n")
    print("| executed checks/min | checks/s | avg latency ms | max latency ms | CPU % of one core | tree PSS MB | main RSS MB |")
    print("|---|---|---|---|---|---|---|")
    e = [extra(r) for r in B2]
    print(f"| {cell([num(r['n']) for r in B2])} | {cell([num(r['rate_per_s']) for r in B2], 1)} | "
          f"{cell([num(x.get('lat_avg_ms')) for x in e])} | {cell([num(x.get('lat_max_ms')) for x in e])} | "
          f"{cell([num(x.get('cpu_pct_of_one_core')) for x in e], 1)} | {cell([num(x.get('tree_pss_kb')) / 1024 for x in e], 1)} | "
          f"{cell([num(x.get('main_rss_kb')) / 1024 for x in e], 1)} |")
    nagios_cpu_ms = statistics.median(
        [10 * num(extra(r).get("cpu_pct_of_one_core")) / num(r["rate_per_s"]) for r in B2])
    print(f"\nNagios CPU per executed check (tree incl. plugins): {nagios_cpu_ms:.2f} ms. Nagios runs what it is scheduled"
          " to run (5,000/min here), so its checks/s is a schedule, not a ceiling; CPU per check is the comparable figure.\n")
    print("| cimaa plugin, N, C, build | cimaa checks/s | ÷ Nagios executed checks/s | cimaa CPU ms/check | ÷ Nagios CPU ms/check |")
    print("|---|---|---|---|---|")
    for (kind, n, c, label), rs in sorted(T.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], LABELS.index(kv[0][3]))):
        if kind == "dummy":
            m = statistics.median(clean([num(r["rate_per_s"]) for r in rs]))
            cpc = statistics.median(clean([1000 * num(extra(r).get("cpu_s")) / n for r in rs]))
            print(f"| {kind}, {n:,}, {c}, {label} | {fmt(m)} | {m / nagios_rate:.1f}x | {cpc:.2f} | {cpc / nagios_cpu_ms:.2f}x |")
