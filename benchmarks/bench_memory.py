"""Peak memory while downloading many large videos: sora_nb's streamed downloads vs reading whole bodies.

The simulator renders small clips (even at ``max_side=1920, fps=60`` a 4 s clip is ~0.3 MB and takes
~25 s to render), so a tiny Starlette app served by uvicorn on loopback serves one 20 MB file of random
bytes as ``video/mp4`` instead. Each measurement runs in a fresh child process: it imports what it
needs, makes its client, records its idle RSS, resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``), downloads N files with C at a time (each file written to disk, then
removed), and reports its peak RSS (``VmHWM``, cross-checked with a 5 ms ``VmRSS`` sampler).

* sora_nb: ``ContractClient.download_url(url, dest)`` (streams 64 KB chunks to a temp file, fsync,
  atomic rename).
* baseline: the naive way, ``(await httpx.AsyncClient().get(url)).content`` then ``write_bytes``.

Target: sora_nb's peak within 60 MB of its idle RSS.

    .venv/bin/python benchmarks/bench_memory.py [--quick] [--check] [--files 50] [--size-mb 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    LoopbackServer,
    base_parser,
    finish,
    machine_note,
    popen,
    print_table,
    stop,
    temp_dir,
)

MB = 1024 * 1024


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def child(args: argparse.Namespace) -> None:
    """One measurement, in its own process; prints a JSON line."""
    import httpx

    if args.child == "sora_nb":
        import sora_nb  # noqa: F401  (the idle figure includes the package, as a user has it)
        from sora_nb import ContractClient

    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    urls = [f"{args.origin}/videos/clip{i:03d}.mp4" for i in range(args.n)]

    async def main() -> dict[str, Any]:
        if args.child == "sora_nb":
            api = ContractClient(base_url=f"{args.origin}/v1", api_key="sk-bench")

            async def fetch(url: str, dest: Path) -> int:
                await api.download_url(url, dest)
                return dest.stat().st_size

            close = api.aclose
        else:
            http = httpx.AsyncClient()

            async def fetch(url: str, dest: Path) -> int:
                response = await http.get(url)
                response.raise_for_status()
                data = response.content
                dest.write_bytes(data)
                return len(data)

            close = http.aclose
        slots = asyncio.Semaphore(args.concurrency)

        async def one(i: int, url: str) -> int:
            async with slots:
                dest = out / f"clip{i:03d}.mp4"
                size = await fetch(url, dest)
                dest.unlink()  # keep the disk use bounded; the bytes were written
                return size

        await asyncio.sleep(0)
        idle_kb = _status_kb("VmRSS")
        reset = _reset_peak()
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(_status_kb("VmRSS"))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        try:
            sizes = await asyncio.gather(*(one(i, url) for i, url in enumerate(urls)))
        finally:
            elapsed = time.perf_counter() - t0
            done.set()
            sampler.join()
            await close()
        return {
            "idle_kb": idle_kb, "peak_kb": _status_kb("VmHWM") if reset else 0,
            "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "sampled_max_kb": max(samples, default=0), "reset": reset,
            "bytes": sum(sizes), "seconds": elapsed,
        }

    result = asyncio.run(main())
    if not result["reset"]:
        result["peak_kb"] = result["ru_maxrss_kb"]
    print(json.dumps(result), flush=True)


def measure(mode: str, origin: str, directory: Path, n: int, concurrency: int) -> dict[str, Any]:
    proc = popen([PYTHON, __file__, "--child", mode, "--origin", origin, "--n", str(n),
                  "--concurrency", str(concurrency), "--dir", str(directory)],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        stop(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({proc.returncode}): {err[-2000:]}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=None, help="downloads (default 50; 12 with --quick)")
    parser.add_argument("--size-mb", type=int, default=20)
    parser.add_argument("--concurrency", type=int, action="append", default=None,
                        help="downloads at once; repeat for several (default: 1 and 8; 8 with --quick)")
    parser.add_argument("--child", choices=("sora_nb", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--origin", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.concurrency = args.concurrency[0]
        child(args)
        return 0
    n = args.files or (12 if args.quick else 50)
    levels = args.concurrency or ([8] if args.quick else [1, 8])
    print(f"bench_memory: {n} downloads of {args.size_mb} MB over loopback, at {' and '.join(map(str, levels))} "
          "at a time; each side in a fresh child process; peak = VmHWM after a reset at idle")
    print("  " + machine_note())

    checks: dict[str, bool] = {}
    rows = []
    with temp_dir() as tmp, LoopbackServer.files(size_mb=args.size_mb, directory=tmp) as server:
        for level in levels:
            ours = measure("sora_nb", server.origin, tmp / "a", n, level)
            base = measure("naive", server.origin, tmp / "b", n, level)
            for result in (ours, base):
                if result["bytes"] != n * args.size_mb * MB:
                    raise RuntimeError(f"downloaded {result['bytes']} bytes, expected {n * args.size_mb * MB}")
            grow_ours = (ours["peak_kb"] - ours["idle_kb"]) / 1024
            grow_base = (base["peak_kb"] - base["idle_kb"]) / 1024
            rows += [
                (f"[{level} at a time] idle RSS (after imports, client made)", f"{ours['idle_kb'] / 1024:.1f} MB",
                 f"{base['idle_kb'] / 1024:.1f} MB", ""),
                (f"[{level} at a time] peak RSS while downloading", f"{ours['peak_kb'] / 1024:.1f} MB",
                 f"{base['peak_kb'] / 1024:.1f} MB", f"{ours['peak_kb'] / base['peak_kb']:.3f}"),
                (f"[{level} at a time] peak - idle", f"{grow_ours:.1f} MB", f"{grow_base:.1f} MB",
                 f"{grow_ours / grow_base:.3f}" if grow_base > 0 else ""),
                (f"[{level} at a time] sampled max VmRSS (5 ms)", f"{ours['sampled_max_kb'] / 1024:.1f} MB",
                 f"{base['sampled_max_kb'] / 1024:.1f} MB", ""),
                (f"[{level} at a time] throughput", f"{ours['bytes'] / MB / ours['seconds']:.0f} MB/s",
                 f"{base['bytes'] / MB / base['seconds']:.0f} MB/s",
                 f"{base['seconds'] / ours['seconds']:.2f}"),
            ]
            checks[f"{level} at a time: sora_nb peak {grow_ours:.1f} MB above idle (<= 60 MB)"] = grow_ours <= 60
    print_table("results (ratio column: sora_nb / baseline; for throughput, speed ratio)", rows,
                ("", "sora_nb", "naive", "ratio"))
    print("  sora_nb writes each file to a temp file with fsync and renames it; the naive side does not fsync.")
    return finish(checks, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
