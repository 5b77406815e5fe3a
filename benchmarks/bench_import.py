"""How long ``import sora_nb`` takes in a fresh interpreter, and what it pulls in.

Each sample is a fresh subprocess timing its own ``import sora_nb`` with ``time.perf_counter()``
(interpreter start-up excluded); the figure is the median of the samples. The baseline is
``import httpx`` alone, the one runtime dependency every sora_nb import needs. Then
``python -X importtime -c "import sora_nb"`` lists the heaviest modules (cumulative time, the
top-level ones first) and which heavy optional packages (numpy, av, PIL, pandas, starlette,
ipywidgets...) got imported.

Target: ``import sora_nb`` < 0.3 s.

    .venv/bin/python benchmarks/bench_import.py [--quick] [--check] [--samples 11]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, ROOT, base_parser, finish, fmt_s, machine_note, median, percentile, print_table

HEAVY = ("numpy", "av", "PIL", "pandas", "pyarrow", "starlette", "anyio", "ipywidgets", "IPython", "uvicorn",
         "openai", "sqlite3", "multipart", "yaml")

TIMER = """
import sys, time, json
t0 = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t0
print(json.dumps({{"s": elapsed, "modules": sorted(m for m in sys.modules)}}))
"""


def timed_import(module: str) -> dict[str, object]:
    out = subprocess.run([PYTHON, "-c", TIMER.format(module=module)], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def importtime(module: str) -> list[tuple[int, int, str]]:
    """``-X importtime`` rows as ``(self_us, cumulative_us, indented name)``, in import order."""
    out = subprocess.run([PYTHON, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, check=True)
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = line[len("import time:"):].split("|", 2)
        rows.append((int(self_us), int(cumulative), name.rstrip()))
    return rows


def main() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=None, help="fresh processes per module (default 11; 5 quick)")
    args = parser.parse_args()
    samples = args.samples or (5 if args.quick else 11)
    print(f"bench_import: median of {samples} fresh interpreters each; {PYTHON}")
    print("  " + machine_note())

    ours, base = [], []
    modules: list[str] = []
    for _ in range(samples):  # interleaved, so background load hits both alike
        result = timed_import("sora_nb")
        ours.append(float(result["s"]))  # type: ignore[arg-type]
        modules = list(result["modules"])  # type: ignore[call-overload]
        base.append(float(timed_import("httpx")["s"]))  # type: ignore[arg-type]

    rows = [
        ("import time, median", fmt_s(median(ours)), fmt_s(median(base)), f"{median(ours) / median(base):.2f}"),
        ("import time, min", fmt_s(min(ours)), fmt_s(min(base)), f"{min(ours) / min(base):.2f}"),
        ("import time, p90", fmt_s(percentile(ours, 90)), fmt_s(percentile(base, 90)), ""),
        ("sora_nb's own share (median difference)", fmt_s(median(ours) - median(base)), "", ""),
        ("modules in sys.modules after the import", len(modules), "", ""),
    ]
    print_table("results (ratio column: sora_nb / httpx)", rows, ("", "import sora_nb", "import httpx", "ratio"))

    rows_it = importtime("sora_nb")
    total = max(cum for _, cum, _ in rows_it)
    packages = [(cum, name.strip()) for _, cum, name in rows_it
                if "." not in name.strip() and name.strip() not in ("sora_nb", "site", "encodings")]
    print(f"\n  -X importtime: {total / 1000:.1f} ms in all. Heaviest packages (cumulative, with what they import):")
    for cum, name in sorted(packages, reverse=True)[:10]:
        print(f"    {cum / 1000:7.1f} ms  {name}")
    own = [(cum, name.strip()) for _, cum, name in rows_it if name.strip().startswith("sora_nb.")]
    print("  heaviest sora_nb modules (cumulative):")
    for cum, name in sorted(own, reverse=True)[:8]:
        print(f"    {cum / 1000:7.1f} ms  {name}")
    print("  heaviest single modules (self time):")
    for self_us, _, name in sorted(rows_it, reverse=True)[:10]:
        print(f"    {self_us / 1000:7.1f} ms  {name.strip()}")
    loaded = [name for name in HEAVY if name in modules]
    print(f"  heavy or optional packages imported by `import sora_nb`: {', '.join(loaded) or 'none'}")
    sora_modules = sorted(m for m in modules if m.startswith("sora_nb"))
    print(f"  sora_nb modules loaded ({len(sora_modules)}): {', '.join(sora_modules)}")
    return finish({f"import sora_nb median {fmt_s(median(ours))} < 0.3 s": median(ours) < 0.3}, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
