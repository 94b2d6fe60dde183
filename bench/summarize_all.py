#!/usr/bin/env python3
"""One table of every cell that bench/all.sh ran (issue 15 item 4).

Reads the lib.sh-format CSVs of one results directory (http_peers, probes_ceiling, checks,
nagios_bench) and idle.txt (bench/idle_rss.sh's summary lines), and prints one Markdown table:
per workload, variant and level, the rate's median (min-max) over the repetitions, the ratio to
the same-run ceiling where the cell has one, the peak RSS, and the 1-minute load at the gates.

    python3 bench/summarize_all.py RESULTS_DIR
"""
import csv
import collections
import glob
import os
import statistics
import sys

NAMES = {
    ("A3", "wrk-keepalive"): "wrk, keep-alive (ceiling)",
    ("A3", "wrk-close"): "wrk, Connection: close",
    ("A2", "blackbox"): "blackbox_exporter via /probe",
    ("B2", "nagios4"): "Nagios Core 4 (checks/s of one minute)",
}


def spread(values, fmt="{:.0f}"):
    if not values:
        return "-"
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def extras(row):
    out = {}
    for part in (row.get("extra") or "").split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def main(results):
    cells = collections.OrderedDict()
    for path in sorted(glob.glob(os.path.join(results, "*.csv"))):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                key = (row["workload"], row["variant"], row["level"])
                cells.setdefault(key, []).append(row)
    print("| workload | level | per s, median (min-max) | ratio to the same-run ceiling | peak RSS MB | reps | load1 at gate |")
    print("|---|---|---|---|---|---|---|")
    for (workload, variant, level), rows in cells.items():
        name = NAMES.get((workload, variant), f"{workload} {variant}")
        rates = [v for v in (number(r["rate_per_s"]) for r in rows) if v is not None]
        ex = [extras(r) for r in rows]
        ratios = [v for v in (number(e.get("ratio")) for e in ex) if v is not None]
        rss = [v / 1024 for v in (number(e.get("client_maxrss_kb") or e.get("maxrss_kb")) for e in ex) if v]
        loads = [v for v in (number(r["load_gate"]) for r in rows) if v is not None]
        print(f"| {name} | {level} | {spread(rates)} | {spread(ratios, '{:.2f}') if ratios else '-'} "
              f"| {spread(rss, '{:.1f}') if rss else '-'} | {len(rows)} | {spread(loads, '{:.1f}')} |")
    idle = os.path.join(results, "idle.txt")
    if os.path.exists(idle):
        for line in open(idle):
            line = line.strip()
            if line:
                print(f"| cimaa idle RSS, {line} | | | | | | |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/cimaa-bench-all/results")
