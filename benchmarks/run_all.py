"""Run every benchmark script in this folder and print one table of their results.

Each ``benchmarks/*.py`` (except this file and ``_*.py`` helpers) runs in its own process, so one script's threads,
caches or crash never affect another.  A script reports by printing lines ``RESULT <name> <ratio>`` (ratio = kit /
baseline measured in the same run; > 1 means the kit is faster); every such line becomes a row.  A script that is
missing is skipped, one that fails or prints no ``RESULT`` line is listed with its status and last output line.

    python benchmarks/run_all.py --data-root ../shared/data            # full runs (minutes)
    python benchmarks/run_all.py --data-root ../shared/data --quick    # CI: each script's smoke mode (seconds)
    python benchmarks/run_all.py --only data_loading tsne --quick

Options other than ``--only``/``--timeout``/``--json`` are passed through to every script that accepts them
(a script accepts an option when its source mentions it, e.g. ``--data-root``); ``--quick`` goes to all.
Exit status: 0 when every script that ran succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: the order of the table (scripts found but not listed here follow alphabetically)
ORDER = ["train_throughput", "data_loading", "clip_text", "tsne"]
RESULT = re.compile(r"^RESULT\s+(\S+)\s+([-+0-9.eE]+|nan|inf)(?:\s.*)?$")  # extra words after the ratio are notes


def discover(only: list[str] | None = None) -> list[Path]:
    """Benchmark scripts in run order (``only`` restricts by stem; an unknown name is reported as missing)."""
    found = {p.stem: p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_")}
    names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    if only:
        names = [n for n in only if n in found]
    return [found[n] for n in names]


def passthrough_for(script: Path, extra: list[str]) -> list[str]:
    """The subset of ``extra`` options this script declares (an option and its value travel together)."""
    source = script.read_text(encoding="utf-8", errors="replace")
    out, i = [], 0
    while i < len(extra):
        opt = extra[i]
        takes_value = i + 1 < len(extra) and not extra[i + 1].startswith("--")
        name = opt.split("=")[0]
        if name.startswith("--") and f'"{name}"' in source:
            out.extend(extra[i:i + 1 + takes_value] if "=" not in opt else [opt])
        i += 1 + (takes_value and "=" not in opt)
    return out


def run_script(script: Path, args: list[str], timeout: float) -> dict:
    """Run one script; return its results, status, wall time and last output line."""
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                              cwd=HERE.parent)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        output = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        status = f"timeout {timeout:.0f}s"
        output = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    results = []
    for line in output.splitlines():
        m = RESULT.match(line.strip())
        if m:
            results.append((m.group(1), float(m.group(2))))
    if status == "ok" and not results:
        status = "no RESULT line"
    lines = [ln for ln in output.strip().splitlines() if ln.strip() and not RESULT.match(ln.strip())]
    return {"script": script.name, "status": status, "seconds": time.perf_counter() - start, "results": results,
            "last_line": lines[-1].strip() if lines else "", "output": output}


def format_rows(runs: list[dict]) -> str:
    """One table: benchmark, ratio (kit / baseline), script, status, seconds."""
    rows = []
    for run in runs:
        if run["results"]:
            rows += [(name, f"{ratio:.2f}x", run["script"], run["status"], f"{run['seconds']:.1f}")
                     for name, ratio in run["results"]]
        else:
            rows.append((run["script"][:-3], "-", run["script"], run["status"], f"{run['seconds']:.1f}"))
    head = ("benchmark", "kit/baseline", "script", "status", "seconds")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows]
    for run in runs:
        if run["status"] != "ok" and run["last_line"]:
            lines.append(f"{run['script']}: {run['last_line']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                epilog="other options (e.g. --data-root DIR) pass through to the scripts")
    p.add_argument("--quick", action="store_true", help="each script's smoke mode (CI)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these scripts (file stems)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per script (default 900, quick 300)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="print each script's full output")
    args, extra = p.parse_known_args(argv)
    timeout = args.timeout or (300.0 if args.quick else 900.0)
    scripts = discover(args.only)
    missing = [n for n in (args.only or []) if n not in {s.stem for s in scripts}]
    runs = []
    for script in scripts:
        opts = (["--quick"] if args.quick else []) + passthrough_for(script, extra)
        print(f"running {script.name} {' '.join(opts)}", flush=True)
        run = run_script(script, opts, timeout)
        if args.verbose:
            print(run["output"])
        runs.append(run)
    print()
    print(format_rows(runs) if runs else "no benchmark scripts found")
    for name in missing:
        print(f"skipped {name}: no benchmarks/{name}.py")
    if args.json:
        Path(args.json).write_text(json.dumps([{k: v for k, v in r.items() if k != "output"} for r in runs],
                                              indent=2))
    return 0 if all(r["status"] == "ok" for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
