"""Run every benchmark (``./dev bench`` or ``python -m benchmarks [NAME ...]``).

Each ``benchmarks/bench_*.py`` module exposes ``run() -> list[dict]`` whose dicts carry ``name``,
``value``, ``unit``, ``reference``, ``goal``, ``met`` and ``detail``: figures are ratios against a
reference measured in the same run, never absolute timings. The figures are printed one per line
with the goal beside them and written to ``benchmarks/results.json``.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)])
                   if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    results: list[dict] = []
    failed = 0
    for name in names:
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            figures = importlib.import_module(f"benchmarks.{name}").run()
        except Exception:
            traceback.print_exc()
            failed += 1
            continue
        for f in figures:
            f = {"benchmark": name, **f}
            results.append(f)
            mark = "met" if f.get("met") else "NOT met"
            print(f"  {f['name']}: {f['value']:.4g} {f['unit']} (goal {f['goal']}; {mark}) "
                  f"— reference: {f['reference']}", flush=True)
            if f.get("detail"):
                print(f"      {f['detail']}", flush=True)
        print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    out = HERE / "results.json"
    if argv and out.exists():  # a partial run keeps the other benchmarks' figures
        ran = set(names)
        kept = [r for r in json.loads(out.read_text()) if r.get("benchmark") not in ran]
        results = kept + results
    out.write_text(json.dumps(results, indent=2, default=str))
    met = sum(bool(r.get("met")) for r in results)
    print(f"\n{len(results)} figures, {met} met their goal; written to {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
