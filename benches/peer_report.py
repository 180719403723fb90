#!/usr/bin/env python3
"""Peer benchmark report: mlak against OpenBLAS (through numpy), PyTorch and
the entmax package, on the same inputs in one run, single-threaded and with
all threads, next to the machine's own ceilings.

Usage: python3 benches/peer_report.py [--quick] [--families a,b,...]

It installs what it lacks from PyPI (numpy, torch, entmax, matplotlib,
threadpoolctl), builds the release library, measures the ceilings with
`cargo bench --bench ceilings`, then times each kernel family. Every result
is checked against its peer's output first; a family whose outputs disagree
beyond the kernel's tolerance is reported as wrong, without a time.
It writes BENCHMARKS.md and PNG plots under benches/report/.
"""

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT_DIR = ROOT / "benches" / "report"
PACKAGES = {"numpy": "numpy", "torch": "torch", "entmax": "entmax", "matplotlib": "matplotlib",
            "threadpoolctl": "threadpoolctl"}


def ensure_packages():
    missing = [pip for module, pip in PACKAGES.items() if importlib.util.find_spec(module) is None]
    if missing:
        print(f"installing {' '.join(missing)}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)


def build():
    subprocess.run(["cargo", "build", "--release", "--lib", "--quiet"], cwd=ROOT, check=True)
    os.environ.setdefault("MLAK_LIBRARY", str(ROOT / "target" / "release" / "libmlak.so"))
    sys.path.insert(0, str(ROOT / "python"))


def ceilings():
    out = subprocess.run(["cargo", "bench", "--quiet", "--bench", "ceilings"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def best_time(fn, min_total=0.25, max_repeats=50):
    """Returns the best wall time of `fn` in seconds, after one warm-up
    call, over repeats that together last at least `min_total` seconds."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < 3 or time.perf_counter() - start < min_total):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


class Result:
    """One measured kernel and shape: mlak's and the peer's time, the work
    it represents (bytes or flops) and whether the outputs agreed."""

    def __init__(self, family, kernel, shape, unit, work, mlak_s, peer, peer_s, max_err, tol, threads,
                 ceiling=None, ceiling_name=None):
        self.family, self.kernel, self.shape, self.unit = family, kernel, shape, unit
        self.work, self.mlak_s, self.peer, self.peer_s = work, mlak_s, peer, peer_s
        self.max_err, self.tol, self.threads = max_err, tol, threads
        self.ceiling, self.ceiling_name = ceiling, ceiling_name

    @property
    def agrees(self):
        return self.max_err <= self.tol

    def rate(self, seconds):
        return self.work / seconds / 1e9

    def row(self):
        if not self.agrees:
            return (f"| {self.kernel} | {self.shape} | {self.threads} | WRONG: max error {self.max_err:.2e} "
                    f"> {self.tol:.0e} | | | |")
        mine, theirs = self.rate(self.mlak_s), self.rate(self.peer_s)
        vs_ceiling = f"{mine / self.ceiling:.0%} of {self.ceiling_name}" if self.ceiling else ""
        return (f"| {self.kernel} | {self.shape} | {self.threads} | {mine:.2f} {self.unit} | "
                f"{self.peer}: {theirs:.2f} {self.unit} | **{self.peer_s / self.mlak_s:.2f}x** | {vs_ceiling} |")


def max_rel_err(got, want, floor):
    import numpy as np
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(got - want) / (np.abs(want) + floor))) if got.size else 0.0


# ---------------------------------------------------------------- families

def bench_softmax(ctx):
    """Row softmax and log-softmax against torch.softmax/log_softmax, in GB/s
    of input read, at n = 64, 1024 and 32768 with 4 MiB inputs."""
    import numpy as np
    import torch
    import mlak

    results = []
    for n in (64, 1024, 32768):
        rows = (1 << 20) // n
        x = np.random.default_rng(n).normal(scale=4.0, size=(rows, n)).astype(np.float32)
        tx = torch.from_numpy(x)
        y = np.empty_like(x)
        for kernel, ours, theirs in (("softmax", mlak.softmax, torch.softmax),
                                     ("log_softmax", mlak.log_softmax, torch.log_softmax)):
            got = ours(x, out=y).copy()
            want = theirs(tx, dim=-1).numpy()
            floor = 1e-30 if kernel == "softmax" else 1.0
            err = max_rel_err(got, want, floor)
            t_mlak = best_time(lambda: ours(x, out=y))
            t_peer = best_time(lambda: theirs(tx, dim=-1))
            results.append(Result("softmax", kernel, f"{rows}x{n}", "GB/s", x.nbytes, t_mlak, "torch", t_peer,
                                  err, 1e-4, ctx["threads"], ctx["read_gbs"], "read bandwidth"))
    return results


FAMILIES = {"softmax": bench_softmax}

# Targets from the kernel specifications: (family, kernel, description,
# function of the results returning the measured ratio, required ratio).
TARGETS = [
    ("softmax", "softmax", "softmax >= 3x torch.softmax, single thread",
     lambda rs: min(r.peer_s / r.mlak_s for r in rs if r.kernel == "softmax"), 3.0),
]


# ---------------------------------------------------------------- report

def set_threads(n):
    import torch
    import mlak
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(n)
    mlak.set_num_threads(n)
    return threadpool_limits(limits=n)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_family = {}
    for r in results:
        if r.agrees and r.threads == 1:
            by_family.setdefault((r.family, r.kernel), []).append(r)
    if not by_family:
        return []
    written = []
    for (family, kernel), rs in sorted(by_family.items()):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        labels = [r.shape for r in rs]
        ax.plot(labels, [r.rate(r.mlak_s) for r in rs], marker="o", label="mlak")
        ax.plot(labels, [r.rate(r.peer_s) for r in rs], marker="s", label=rs[0].peer)
        ax.set_ylabel(rs[0].unit)
        ax.set_title(f"{kernel}, 1 thread")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out = path / f"{family}_{kernel}.png"
        fig.savefig(out, dpi=100)
        plt.close(fig)
        written.append(out)
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated families to run")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"), help="report path")
    args = parser.parse_args()

    ensure_packages()
    build()
    ceil = ceilings()
    print(f"ceilings: {ceil}", flush=True)
    import numpy as np
    import torch
    import mlak

    all_threads = os.cpu_count() or 1
    results = []
    for threads in sorted({1, all_threads}):
        with set_threads(threads):
            ctx = {"threads": threads, "ceil": ceil,
                   "read_gbs": ceil.get("read_gbs_1t" if threads == 1 else "read_gbs_all"),
                   "fma_gflops": ceil.get("f32_fma_gflops_1t" if threads == 1 else "f32_fma_gflops_all")}
            for name in args.families.split(","):
                print(f"{name}, {threads} thread(s)", flush=True)
                for r in FAMILIES[name](ctx):
                    print("  " + r.row(), flush=True)
                    results.append(r)

    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    plots = plot(results, REPORT_DIR)
    write_report(Path(args.output), results, ceil, plots, np, torch, mlak)


def write_report(path, results, ceil, plots, np, torch, mlak):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python3 benches/peer_report.py`, which times mlak and each peer on the same inputs",
        "in one run and checks that their outputs agree before reporting a time. The machine is shared",
        "and noisy, so compare the ratios, not the absolute rates.",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}",
        f"- mlak {mlak.version()} (best level {mlak.isa()}), numpy {np.__version__}, torch {torch.__version__}",
        "",
        "## Ceilings measured in the same run",
        "",
        "| ceiling | 1 thread | all threads |",
        "| --- | --- | --- |",
        f"| f32 FMA peak ({ceil.get('f32_fma_isa', '?')}), GFLOP/s | {ceil.get('f32_fma_gflops_1t', '-')} "
        f"| {ceil.get('f32_fma_gflops_all', '-')} |",
        f"| bf16 dot-product peak (vdpbf16ps), GFLOP/s | {ceil.get('bf16_dot_gflops_1t', '-')} | |",
        f"| streaming read, GB/s | {ceil.get('read_gbs_1t', '-')} | {ceil.get('read_gbs_all', '-')} |",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
    ]
    for family, kernel, text, measure, need in TARGETS:
        rs = [r for r in results if r.family == family and r.threads == 1 and r.agrees]
        if not rs:
            lines.append(f"| {text} | not measured | no |")
            continue
        ratio = measure(rs)
        lines.append(f"| {text} | {ratio:.2f}x | {'yes' if ratio >= need else 'no'} |")
    for family in dict.fromkeys(r.family for r in results):
        lines += ["", f"## {family}", "", "| kernel | shape | threads | mlak | peer | speedup | of ceiling |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [r.row() for r in results if r.family == family]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}]({os.path.relpath(p, path.parent)})" for p in plots]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
