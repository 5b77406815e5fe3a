"""The ``sora-nb`` command: the same engine as the notebooks, headless."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ._run import Run

EXAMPLES = """\
examples:
  sora-nb demo                                   # a few videos on the built-in simulator, no key needed
  sora-nb generate "a corgi surfing at sunset" --size 1280x720 --seconds 4
  sora-nb generate "a cat skiing" --profile openai-compatible --base-url http://localhost:4000/v1
  sora-nb generate "a cat skiing" --profile xai --simulator   # xAI's API, answered by the simulator
  sora-nb sweep grid.yaml --max-concurrency 4 --budget-usd 20
  sora-nb resume sora_runs/20261121-101500-ab12
  sora-nb audit sora_runs/20261121-101500-ab12    # did I pay twice? the run vs the server's own list
  sora-nb ls
  sora-nb app                                    # the no-code app (Voila) in your browser
  sora-nb measure sora_runs/20261121-101500-ab12   # video metrics for every finished video
  sora-nb simulator --port 8000 --time-scale 0.05
"""

VOILA_FILE_ALLOWLIST = r".*\.(png|jpe?g|gif|svg|mp4|webp)"
"""The files Voila may serve: its default (png, jpg, gif, svg) plus the videos and their WebP posters. The
same pattern is in ``voila.json`` (read by a plain ``voila`` started from the repository's root) and in
``binder/postBuild``."""

DEMO_RUN_ROOT = "sora_demo"

SWEEP_FILE_EXAMPLE = """\
a sweep file (YAML or JSON): each axis is a value or a list; every combination is one job
  # grid.yaml: 2 prompts x 2 models x 1 size x 2 durations x 2 repeats = 16 jobs
  prompt: [a corgi surfing, a cat skiing]
  model: [sora-2, sora-2-pro]
  size: 1280x720
  seconds: [4, 8]
  repeats: 2
  max_concurrency: 4        # optional, as the flags below
  budget_usd: 25
  run_dir: sora_runs/corgi-grid
or explicit jobs: {"rows": [{"prompt": "a corgi surfing", "model": "sora-2-pro"}, ...]}
"""

DEMO_PROMPTS = (
    "a corgi surfing a wave at sunset",
    "a paper boat drifting down a rainy street",
    "a hot air balloon over snowy mountains",
)


class TerminalProgress:
    """A one-line progress display for a run in a terminal (plain lines when not a TTY)."""

    def __init__(self, run: Run, stream: TextIO | None = None, *, min_interval: float = 0.2) -> None:
        self.run = run
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.min_interval = min_interval
        self._last = 0.0
        self._finished: set[str] = set()

    def update(self, final: bool = False) -> None:
        jobs = list(self.run)
        for job in jobs:
            if job.done and job.id not in self._finished:
                self._finished.add(job.id)
                if not self.tty:
                    extra = f" {job.error.code}" if job.error and job.status != "completed" else ""
                    self.stream.write(f"  {job.id} {job.status}{extra}: {job.prompt[:50]}\n")
        now = time.monotonic()
        if not final and now - self._last < self.min_interval:
            return
        self._last = now
        total, done = len(jobs), sum(job.done for job in jobs)
        counts = self.run.counts()
        width = 24
        filled = int(width * done / total) if total else width
        detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        line = f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total} done ({detail})"
        if self.tty:
            self.stream.write("\r" + line.ljust(100)[:100] + ("\n" if final else ""))
        elif final:
            self.stream.write(line + "\n")
        self.stream.flush()


def _wait_with_progress(run: Run, timeout: float, quiet: bool = False) -> None:
    progress = None if quiet else TerminalProgress(run)
    deadline = time.monotonic() + timeout
    while not run.done:
        if time.monotonic() > deadline:
            raise TimeoutError
        if progress:
            progress.update()
        time.sleep(0.1)
    if progress:
        progress.update(final=True)


def print_table(run: Run, stream: TextIO | None = None) -> None:
    """The results table, without needing pandas."""
    stream = stream or sys.stdout
    rows = [("job", "status", "model", "size", "sec", "gen s", "cost $", "video")]
    for job in run:
        record = job._record
        gen = f"{record.completed_at - record.submitted_at:.1f}" if record.completed_at and record.submitted_at else ""
        cost = "" if record.estimated_cost_usd is None else f"{record.estimated_cost_usd:.2f}"
        video = os.path.relpath(job.video_path) if job.video_path else (job.error.code or "") if job.error else ""
        rows.append((job.id, job.status, job.model, job.size, job.seconds, gen, cost, str(video)))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        stream.write("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
        if n == 0:
            stream.write("  ".join("-" * w for w in widths) + "\n")


def _finish(run: Run, args: argparse.Namespace) -> int:
    try:
        _wait_with_progress(run, args.timeout, quiet=args.quiet)
    except TimeoutError:
        print(f"timed out after {args.timeout} s; resume with: sora-nb resume {run.run_dir}", file=sys.stderr)
        return 3
    print_table(run)
    print(f"\nrun directory: {run.run_dir}  (sora-nb resume {run.run_dir} carries on after a crash)")
    failed = run.failed
    ambiguous = sum(job.status == "ambiguous" for job in failed)
    if ambiguous:
        print(f"{ambiguous} job(s) are ambiguous: their create may have made a video the server could not be "
              f"searched for, so they were not sent again. Fix: sora-nb resume {run.run_dir} looks again once "
              f"the server can list jobs; sora-nb audit {run.run_dir} shows what it holds.", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(run)} jobs did not complete:", file=sys.stderr)
        for job in failed:
            print(f"  {job.id} {job.status}: {failure_reason(job)}", file=sys.stderr)
        lost = [job for job in failed if job.error and job.error.code == "storage_error"]
        if lost:  # the disk's fault, not the jobs': say how to carry on
            print(f"{len(lost)} of them because the disk refused their files: {lost[0]._record.error_message}",
                  file=sys.stderr)
        return 1
    return 0


def failure_reason(job: Any) -> str:
    """Why a job did not complete, in the server's words, with the CLI's fix where there is one."""
    error = job.error
    if error is None:
        return f"{job.status} (no reason recorded)"
    reason = f"{error.code}: {error.message}" if error.code and error.message else error.code or error.message
    return as_flags(reason)


_FLAG_FIELDS = ("model", "size", "seconds", "style", "input_reference", "max_concurrency", "budget_usd", "run_dir")


def as_flags(message: str) -> str:
    """A message's Python-style hints (``seconds='4'``) in the command line's syntax (``--seconds 4``).

    >>> as_flags("seconds='5' is not allowed. Fix: pass one of them, e.g. seconds='4'.")
    '--seconds 5 is not allowed. Fix: pass one of them, e.g. --seconds 4.'
    """
    import re

    pattern = r"\b(" + "|".join(_FLAG_FIELDS) + r")=(?:'([^']*)'|\"([^\"]*)\"|([\w.]+))"

    def flag(match: re.Match[str]) -> str:
        value = next(v for v in match.groups()[1:] if v is not None)
        return f"--{match.group(1).replace('_', '-')} {value}"

    return re.sub(pattern, flag, message)


def _check_model(client: Any, model: str | None, flag: str = "--model") -> None:
    """Refuse a model the profile does not offer before anything is sent (where the profile knows its models:
    the simulator and the hosted services; a gateway may route any name)."""
    import difflib

    caps = client.profile.capabilities
    known = caps.model_names()
    if model is None or caps.open_models or caps.spec(model) is not None:
        return
    close = difflib.get_close_matches(model, known, n=1, cutoff=0.5)
    raise ValueError(f"{flag} {model} is not a model of {client.profile.name}. Allowed: {', '.join(known)}. "
                     f"Fix: {flag} {close[0] if close else known[0]}.")


def _connect(args: argparse.Namespace, **extra: Any) -> Any:
    import sora_nb

    options: dict[str, Any] = {"run_root": args.run_root, **extra}
    if getattr(args, "max_concurrency", None):
        options["max_concurrency"] = args.max_concurrency
    if args.profile in (None, "simulator") and not args.base_url:
        options.update(seed=args.seed, time_scale=args.time_scale)
        return sora_nb.connect("simulator", **options)
    if getattr(args, "simulator", False):
        # The profile's own wire format, answered by the built-in simulator: no key, no network.
        options.update(seed=args.seed, time_scale=args.time_scale)
        return sora_nb.connect(args.profile, simulator=True, **options)
    return sora_nb.connect(args.profile, base_url=args.base_url, **options)


def cmd_demo(args: argparse.Namespace) -> int:
    import sora_nb

    started = time.monotonic()
    with sora_nb.connect("simulator", seed=args.seed, time_scale=args.time_scale, run_root=args.run_root) as client:
        print(f"Generating {len(DEMO_PROMPTS) * 2} videos on the built-in simulator (no key, no network)...")
        jobs = []
        for prompt in DEMO_PROMPTS:
            jobs.append(client.generate(prompt, model="sora-2", size="1280x720", seconds="4"))
            jobs.append(client.generate(prompt, model="sora-2-pro", size="720x1280", seconds="4", style="cinematic"))
        code = _finish(client.session, args)
    print(f"demo finished in {time.monotonic() - started:.1f} s")
    return code


def cmd_generate(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        _check_model(client, args.model)
        try:
            client.generate(
                args.prompt,
                model=args.model,
                size=args.size,
                seconds=args.seconds,
                input_reference=args.input_reference,
                style=args.style,
            )
        except ValueError as exc:  # the engine's hint names Python arguments; here they are flags
            raise ValueError(as_flags(str(exc))) from exc
        return _finish(client.session, args)


def cmd_sweep(args: argparse.Namespace) -> int:
    from ._sweepfile import load_sweep_file

    spec = load_sweep_file(args.file)
    options = dict(spec.get("run") or {})
    axes = {k: v for k, v in spec.items() if k != "run"}
    if args.profile is None:
        args.profile = options.get("profile")
    if args.base_url is None:
        args.base_url = options.get("base_url")
    with _connect(args) as client:
        try:
            sweep = client.sweep(**axes)
        except TypeError as exc:  # a key or value of the file's wrong type: the user's to fix, not a traceback
            raise ValueError(f"{args.file}: {exc}") from exc
        unserved = [combo.axes["model"] for combo in sweep.plan.invalid
                    if combo.field == "model" and isinstance(combo.axes["model"], str)]
        for model in dict.fromkeys([*unserved, *(job.model for job in sweep.jobs)]):
            _check_model(client, model, flag=f"{args.file}: model:")
        print(sweep.estimate())
        run = sweep.start(
            max_concurrency=args.max_concurrency or options.get("max_concurrency"),
            budget_usd=args.budget_usd if args.budget_usd is not None else options.get("budget_usd"),
            run_dir=args.run_dir or options.get("run_dir"),
        )
        return _finish(run, args)


def cmd_resume(args: argparse.Namespace) -> int:
    import sora_nb

    run = sora_nb.resume(args.run_dir)
    try:
        return _finish(run, args)
    finally:
        run.close()


def cmd_audit(args: argparse.Namespace) -> int:
    from ._connect import read_run

    # Deleting drives the run: a live driver's create on the wire would look like an orphan.
    client, run = read_run(args.run_dir, claim=args.delete_orphans)
    try:
        report = run.audit(timeout=args.timeout)
        print(report)
        if args.delete_orphans and report.orphans:
            deleted = report.delete_orphans(timeout=args.timeout)
            print(f"deleted {len(deleted)} orphan(s) on the server: {', '.join(deleted)}")
        return 0 if report.ok else 1
    finally:
        client.close()


def cmd_ls(args: argparse.Namespace) -> int:
    from ._runs import list_runs

    if args.run_dir or args.run_root:
        roots = [Path(args.run_dir or args.run_root)]
    else:  # where generate and sweep write by default, and where the demo writes
        roots = [Path("sora_runs"), Path(DEMO_RUN_ROOT)]
    runs = [summary for root in roots for summary in list_runs(root)]
    if not runs:
        print(f"no runs under {' or '.join(f'{root}/' for root in roots)}")
        return 0
    for summary in runs:
        print(summary)
    return 0


def _app_notebook(given: str | None) -> Path:
    """The app notebook: the one given, else ``notebooks/app.ipynb`` here, else the checkout's."""
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise ValueError(f"{given}: no such notebook. Fix: give the path of app.ipynb (notebooks/app.ipynb in "
                             "a clone of sora_nb), or leave it out.")
        return path
    for path in (Path("notebooks") / "app.ipynb", Path(__file__).resolve().parents[1] / "notebooks" / "app.ipynb"):
        if path.is_file():
            return path
    raise ValueError("no notebooks/app.ipynb here or in sora_nb's checkout. Fix: run sora-nb app from a clone of "
                     "sora_nb, or give the notebook's path: sora-nb app path/to/app.ipynb.")


def cmd_app(args: argparse.Namespace) -> int:
    import importlib.util

    notebook = _app_notebook(args.notebook)
    if importlib.util.find_spec("voila") is None:
        raise ImportError('sora-nb app needs Voila (the lab extra). Fix: pip install -e ".[lab]" in the clone, or '
                          'pip install "sora-nb[lab]".')
    command = [
        sys.executable, "-m", "voila", str(notebook), f"--port={args.port}", f"--Voila.ip={args.host}",
        # Voila serves only png/jpg/gif/svg by default: without mp4 and webp, players are black.
        f"--VoilaConfiguration.file_allowlist=['{VOILA_FILE_ALLOWLIST}']",
    ]
    if args.no_browser:
        command.append("--no-browser")
    print(f"The sora_nb app ({notebook}) on the built-in simulator unless SORA_NB_BASE_URL is set:\n"
          f"  http://{args.host}:{args.port}/\nCtrl+C stops it.", flush=True)
    # Voila takes this process's place, so that stopping `sora-nb app` (Ctrl+C, a kill) stops Voila itself
    # rather than leaving it serving, orphaned.
    os.execv(sys.executable, command)
    return 0  # not reached


def cmd_simulator(args: argparse.Namespace) -> int:
    from . import simulator

    return simulator.run(args)


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total}"


def cmd_measure(args: argparse.Namespace) -> int:
    """Fill in the video metrics of a run, offline: no server, no key."""
    from ._judging import measure_records
    from ._ledger import Ledger
    from ._results import load_run

    stream = sys.stderr
    tty = stream.isatty()

    def progress(done: int, total: int) -> None:
        if args.quiet:
            return
        line = f"{_bar(done, total)} videos measured"
        if tty:
            stream.write("\r" + line + ("\n" if done == total else ""))
        elif done == total or done == 0:
            stream.write(line + "\n")
        stream.flush()

    with Ledger.open(args.run_dir) as ledger:
        profile = ledger.meta().get("profile")
        measured = measure_records(ledger, ledger.jobs(), profile=profile, progress=progress, timeout=args.timeout)
    df = load_run(args.run_dir)
    flagged = df[df["metric_defects"].fillna("") != ""]
    print(f"{measured} video(s) measured; {int(df['metric_duration_s'].notna().sum())} of {len(df)} jobs have metrics.")
    for row in flagged.itertuples():
        print(f"  {row.job_id}  defects: {row.metric_defects}  ({str(row.prompt)[:50]})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sora-nb",
        description="AI video generation from notebooks and the command line.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, *, server: bool = True) -> None:
        p.add_argument("--run-root", default="sora_runs", help="where run directories go (default: sora_runs)")
        p.add_argument("--timeout", type=float, default=3600.0, help="give up waiting after this many seconds")
        p.add_argument("--quiet", action="store_true", help="no progress display")
        if server:
            p.add_argument("--profile", default=None, help="simulator (default), openai-compatible, litellm, ...")
            p.add_argument("--base-url", default=None, help="API root of an OpenAI-compatible server, e.g. .../v1")
            p.add_argument(
                "--simulator", action="store_true",
                help="run --profile on the built-in simulator's imitation of that service (no key, no network)",
            )
            p.add_argument("--seed", type=int, default=None, help="simulator seed")
            p.add_argument("--time-scale", type=float, default=0.02, help="simulator speed (0.02: 50x faster)")

    p = sub.add_parser(
        "demo", help="generate a few videos on the simulator and print the results table",
        description=f"Generate {len(DEMO_PROMPTS) * 2} videos on the built-in simulator (no key, no network) and "
                    "print the results table. Writes ./sora_demo/<run-id>/: videos/ (MP4), thumbnails/ (WebP "
                    "posters) and ledger.sqlite (the run; sora-nb ls lists it).",
    )
    common(p, server=False)
    p.add_argument("--seed", type=int, default=7, help="simulator seed (default: 7)")
    p.add_argument("--time-scale", type=float, default=0.02, help="simulator speed (0.02: 50x faster)")
    p.set_defaults(func=cmd_demo, run_root=DEMO_RUN_ROOT)

    p = sub.add_parser("generate", help="generate one video")
    p.add_argument("prompt")
    p.add_argument("--model", default=None, help="default: the profile's default model (sora-2 on the simulator)")
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT; default: the model's default on the profile (720x1280 "
                                                "on the simulator)")
    p.add_argument("--seconds", default=None, help="default: the model's default on the profile (4 on the simulator)")
    p.add_argument("--style", default=None)
    p.add_argument("--input-reference", default=None, help="a JPEG/PNG/WebP of exactly --size")
    common(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("sweep", help="run a parameter sweep from a YAML or JSON file",
                       epilog=SWEEP_FILE_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="a .yaml, .yml or .json sweep file (see below)")
    p.add_argument("--max-concurrency", type=int, default=None, help="jobs in flight at once")
    p.add_argument("--budget-usd", type=float, default=None, help="refuse to start a sweep estimated above this")
    p.add_argument("--run-dir", default=None, help="the run's directory (default: a new one under --run-root)")
    common(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("resume", help="carry on a run after a crash or restart (never pays twice)")
    p.add_argument("run_dir")
    common(p, server=False)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser(
        "audit",
        help="the run's ledger against the server's own list: orphans (paid, not recorded), missing, duplicates",
        description="Exit status: 0 all clear, 1 something to look at (or not everything could be checked).",
    )
    p.add_argument("run_dir")
    p.add_argument("--delete-orphans", action="store_true",
                   help="delete, on the server, the jobs that match the run's requests but that no job claims")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("ls", help="list runs and their status (under sora_runs/ and the demo's sora_demo/)")
    p.add_argument("run_dir", nargs="?", default=None)
    p.add_argument("--run-root", default=None)
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser(
        "app", help="serve the no-code app (prompt box, sweep builder, gallery) with Voila and print its URL",
        description="Serve notebooks/app.ipynb with Voila, allowed to serve the videos (mp4) and posters (webp), "
                    "and print the URL to open. Needs the lab extra: pip install -e \".[lab]\".",
    )
    p.add_argument("notebook", nargs="?", default=None, help="default: notebooks/app.ipynb")
    p.add_argument("--port", type=int, default=8866, help="default: 8866 (Voila's)")
    p.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine only)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.set_defaults(func=cmd_app)

    p = sub.add_parser("measure", help="measure the videos of a run (duration, defects, motion, sharpness...)")
    p.add_argument("run_dir")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (resumable)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("simulator", help="serve the simulator on a loopback port (OpenAI Videos API)")
    from . import simulator

    simulator.add_arguments(p)
    p.set_defaults(func=cmd_simulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ._errors import SoraError

    try:
        code: int = args.func(args)
    except SoraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError, ImportError) as exc:
        # The user's input is wrong (a missing or malformed sweep file, a path that is not a run): the
        # message says what and how to fix it; a traceback would only hide that.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; resume later with `sora-nb resume RUN_DIR`", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
