"""A run as a pandas DataFrame: one row per job, in submission order, read from the ledger.

The leading columns are the sweep's axes, in the sweep's order, then whichever of ``prompt``, ``model``,
``size``, ``seconds`` and ``style`` are not axes, so that every row says what its video was. Axes whose
values are strings are categoricals with their categories in sweep order (``"4"`` before ``"12"``, and a
``compare`` grid keeps the order the sweep was written in); ``repeat`` is ``int64``; other axes keep
their own type. An axis named like one of the columns below is renamed ``axis_<name>``, except ``backend``
(a pool's sweep across its backends), whose one column then stands with the axes.

Then, always, these columns (:data:`COLUMNS`):

==================  ===================  =========================================================
column              dtype                meaning
==================  ===================  =========================================================
job_id              object               local id, unique in the run (``j0001-3f9a``)
remote_id           object               the server's id, None until the create was acknowledged
backend             object               the pool backend it was sent to (``sora_nb.pool``), else None
kind                category             create, remix, extend, edit, or stitch (a storyboard's joined file)
parent_id           object               remote id of the source video (remix, extend, edit)
storyboard_id       object               the storyboard the job is a shot (or the joined file) of, else None
shot                Int64                the shot's number in its storyboard, from 1; <NA> for the joined
                                         file and other jobs
status              category             pending_submit, queued, in_progress, completed, failed, ...
progress            Int64                percent, <NA> when the server never said
error_code          object               why it failed, machine-readable (``moderation_blocked``)
error_message       object               why it failed, for people
submitted_at        datetime64[ns, UTC]  when the create request was sent
created_at          datetime64[ns, UTC]  the server's creation time
started_at          datetime64[ns, UTC]  first seen in_progress
completed_at        datetime64[ns, UTC]  first seen terminal (completed, failed, cancelled, expired)
downloaded_at       datetime64[ns, UTC]  video file written
queue_s             float64              started - submitted (completed - submitted if never seen running)
generation_s        float64              completed - started
total_s             float64              completed - submitted
seconds_generated   float64              seconds of video made: the request's if completed, 0 if it
                                         failed, NaN while it is still going
estimated_cost_usd  float64              estimated before sending; NaN when unknown (0 only for a joined
                                         storyboard file, made here)
reported_cost_usd   float64              as the server reported it; NaN when it did not
video_path          object               absolute path of the video file, None when not on disk
thumbnail_path      object               absolute path of the poster, None when not on disk
checksum            object               ``sha256:<hex>`` of the video file
attempts            int64                create requests sent (1 unless something went wrong)
polls               int64                status requests made
stars_mean          float64              mean of the stars people gave it (``run.rate``), NaN if none
ratings             int64                how many ratings it has (withdrawn ones not counted)
tags                object               the tags people gave it, comma-separated, ``""`` if none
characters          object               names of the characters (cameos) the create sent,
                                         comma-separated, ``""`` if none (ids: ``job.spec.characters``)
==================  ===================  =========================================================

Then what :func:`sora_nb.measure_video` measured of the video (the keys it returns, prefixed; the
thresholds of the flags are in ``sora_nb._metrics``); <NA>, NaN or None until the video is measured:

==========================  =======  ===============================================
column                      dtype    meaning
==========================  =======  ===============================================
metric_duration_s           float64  delivered duration in seconds
metric_fps                  float64  frames per second
metric_frames               Int64    frames decoded
metric_width                Int64    delivered width in pixels
metric_height               Int64    delivered height in pixels
metric_codec                object   the video codec (h264)
metric_audio                boolean  the file has an audio stream
metric_bitrate_bps          float64  bits per second of the file
metric_file_bytes           Int64    size of the file
metric_black_share          float64  share of black frames
metric_frozen_share         float64  share of frame pairs that do not change
metric_motion               float64  mean |frame difference| / 255
metric_temporal_flickering  float64  VBench's score, 1.0 = steady
metric_flicker              float64  brightness jumping back and forth, luma levels
metric_sharpness            float64  variance of the Laplacian
metric_colourfulness        float64  Hasler-Süsstrunk colourfulness
metric_scene_cuts           Int64    cuts between consecutive frames
metric_flag_duration        boolean  duration off the request by more than a frame
metric_flag_size            boolean  resolution differs from the request
metric_flag_aspect          boolean  aspect ratio off the request by > 1 %
metric_flag_audio           boolean  audio asked for, none delivered
metric_flag_black           boolean  black frames (>= 5 % of them)
metric_flag_frozen          boolean  frozen frames (>= 15 % of pairs)
metric_flag_flicker         boolean  flicker (>= 4 luma levels)
metric_defects              object   raised flags, comma-separated ('' for none)
==========================  =======  ===============================================

A metric you registered with :func:`sora_nb.register_metric` adds a ``metric_<name>`` column at the end,
once a value of it is stored.

Text columns hold ``str`` or ``None`` (object dtype, under pandas 2 and 3 alike), so that
``if row.video_path:`` means "there is a file". ``df.attrs`` holds ``run_dir`` and ``run_id``.

pandas is imported inside the functions: ``import sora_nb`` must stay fast and work without it.

>>> import sora_nb
>>> with sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path")) as client:
...     run = client.sweep(prompt="a corgi surfing", model=["sora-2", "sora-2-pro"], repeats=2).start()
...     run_dir = run.wait(timeout=60).run_dir
>>> df = load_run(run_dir)
>>> df.groupby("model", observed=True)["generation_s"].median().index.tolist()
['sora-2', 'sora-2-pro']
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._judging import Scores, read_scores
from ._ledger import JOB_STATUSES, JobRecord, Ledger
from ._metrics import METRIC_COLUMNS
from ._types import TERMINAL_STATUSES, JobKind, JobSpec

if TYPE_CHECKING:
    import pandas

__all__ = ["COLUMNS", "REQUEST_COLUMNS", "export", "load_run", "records_to_dataframe"]

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("job_id", "object", "local id, unique in the run (j0001-3f9a)"),
    ("remote_id", "object", "the server's id, None until the create was acknowledged"),
    ("backend", "object", "the pool backend it was sent to (sora_nb.pool), None for a client of one server"),
    ("kind", "category", "create, remix, extend, edit, or stitch (a storyboard's joined file)"),
    ("parent_id", "object", "remote id of the source video (remix, extend, edit)"),
    ("storyboard_id", "object", "the storyboard the job is a shot (or the joined file) of, else None"),
    ("shot", "Int64", "the shot's number in its storyboard, from 1; <NA> for the joined file and other jobs"),
    ("status", "category",
     "pending_submit, queued, in_progress, completed, failed, cancelled, expired, unknown, ambiguous"),
    ("progress", "Int64", "percent, <NA> when the server never said"),
    ("error_code", "object", "why it failed, machine-readable (moderation_blocked)"),
    ("error_message", "object", "why it failed, for people"),
    ("submitted_at", "datetime64[ns, UTC]", "when the create request was sent"),
    ("created_at", "datetime64[ns, UTC]", "the server's creation time"),
    ("started_at", "datetime64[ns, UTC]", "first seen in_progress"),
    ("completed_at", "datetime64[ns, UTC]", "first seen terminal (completed, failed, cancelled, expired)"),
    ("downloaded_at", "datetime64[ns, UTC]", "video file written"),
    ("queue_s", "float64", "started - submitted (completed - submitted if never seen running)"),
    ("generation_s", "float64", "completed - started"),
    ("total_s", "float64", "completed - submitted"),
    ("seconds_generated", "float64", "video seconds made: the request's if completed, 0 if failed, NaN while running"),
    ("estimated_cost_usd", "float64", "estimated before sending; NaN when unknown (0 only for a storyboard's file)"),
    ("reported_cost_usd", "float64", "as the server reported it; NaN when it did not"),
    ("video_path", "object", "absolute path of the video file, None when not on disk"),
    ("thumbnail_path", "object", "absolute path of the poster, None when not on disk"),
    ("checksum", "object", "sha256:<hex> of the video file"),
    ("attempts", "int64", "create requests sent (1 unless something went wrong)"),
    ("polls", "int64", "status requests made"),
    ("stars_mean", "float64", "mean of the stars people gave it (run.rate), NaN if none"),
    ("ratings", "int64", "how many ratings it has (withdrawn ones not counted)"),
    ("tags", "object", "the tags people gave it, comma-separated, '' if none"),
    ("characters", "object", "names of the characters (cameos) the create sent, comma-separated, '' if none"),
    *METRIC_COLUMNS,
)  # fmt: skip
"""The fixed columns after the axes, as ``(name, dtype, description)``; see the module docstring."""

REQUEST_COLUMNS: tuple[str, ...] = ("prompt", "model", "size", "seconds", "style")
"""Spec fields that are always leading columns, after the sweep axes that are not among them."""

_KINDS: tuple[JobKind, ...] = ("create", "remix", "extend", "edit", "stitch")
_FIXED = frozenset(name for name, _, _ in COLUMNS)
_ALSO_AXES = frozenset({"backend"})
"""Fixed columns a sweep may also have as an axis (a pool's ``backend=[...]``): the axis pins the value, so the
one column stands where the axis is, instead of an ``axis_`` copy of it."""
_SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(JobSpec)) - {"axes"}


def records_to_dataframe(
    records: Sequence[JobRecord],
    *,
    run_dir: str | Path,
    axes: Sequence[str],
    run_id: str | None = None,
    scores: Scores | None = None,
) -> pandas.DataFrame:
    """The jobs as a DataFrame with the schema of the module docstring (one row per job, by ``seq``).

    Args:
        records: the jobs, e.g. ``Ledger.jobs()``.
        run_dir: the run directory that ``video_path``/``thumbnail_path`` are relative to.
        axes: the sweep's axis names, in order: they become the leading columns.
        run_id: stored in ``df.attrs["run_id"]``.
        scores: the run's stored metrics (``read_scores(ledger)``); without them the metric columns are empty.

    >>> from sora_nb._types import JobSpec
    >>> spec = JobSpec("a corgi", "sora-2", "1280x720", "4", axes={"model": "sora-2"})
    >>> df = records_to_dataframe([JobRecord("j0001-3f9a", 1, spec)], run_dir=".", axes=["model"])
    >>> list(df.columns[:6]), str(df["status"].iloc[0]), bool(df["estimated_cost_usd"].isna().all())
    (['model', 'prompt', 'size', 'seconds', 'style', 'job_id'], 'pending_submit', True)
    """
    import pandas as pd

    run_dir = Path(run_dir).absolute()
    records = sorted(records, key=lambda r: r.seq)
    leading = list(dict.fromkeys([*axes, *REQUEST_COLUMNS]))  # de-duplicated, order kept

    def floats(values: list[float | None]) -> pandas.Series:
        return pd.Series(values, dtype="float64")

    def times(values: list[float | None]) -> pandas.Series:
        # The astype pins nanoseconds: pandas 3 picks another unit for an empty column.
        return pd.to_datetime(floats(values), unit="s", utc=True).astype("datetime64[ns, UTC]")

    def texts(values: list[str | None]) -> pandas.Series:
        return pd.Series(values, dtype=object)

    def column(name: str) -> list[Any]:
        return [getattr(r, name) for r in records]

    submitted, started, completed = column("submitted_at"), column("started_at"), column("completed_at")
    # The queue ends when the job is first seen running, or, if it never was, when it finished.
    dequeued = [s if s is not None else c for s, c in zip(started, completed, strict=True)]
    data: dict[str, pandas.Series] = {}
    for name in leading:
        key = f"axis_{name}" if name in _FIXED and name not in _ALSO_AXES else name
        data[key] = _axis_series(pd, name, [_axis_value(r.spec, name) for r in records])
    data |= {
        "job_id": texts(column("job_id")),
        "remote_id": texts(column("remote_id")),
        "backend": texts(column("backend")),
        "kind": pd.Series(pd.Categorical([r.spec.kind for r in records], categories=_KINDS)),
        "parent_id": texts([r.spec.parent_id for r in records]),
        "storyboard_id": texts([r.spec.axes.get("storyboard_id") for r in records]),
        "shot": pd.Series([r.spec.axes.get("shot") for r in records], dtype="Int64"),
        # A word this version does not know (a newer writer) reads as "unknown" rather than NaN.
        "status": pd.Series(
            pd.Categorical([s if s in JOB_STATUSES else "unknown" for s in column("status")], categories=JOB_STATUSES)
        ),
        "progress": pd.Series(column("progress"), dtype="Int64"),
        "error_code": texts(column("error_code")),
        "error_message": texts(column("error_message")),
        "submitted_at": times(submitted),
        "created_at": times(column("remote_created_at")),
        "started_at": times(started),
        "completed_at": times(completed),
        "downloaded_at": times(column("downloaded_at")),
        "queue_s": floats([_minus(d, q) for q, d in zip(submitted, dequeued, strict=True)]),
        "generation_s": floats([_minus(c, s) for s, c in zip(started, completed, strict=True)]),
        "total_s": floats([_minus(c, q) for q, c in zip(submitted, completed, strict=True)]),
        "seconds_generated": floats([_seconds_generated(r) for r in records]),
        "estimated_cost_usd": floats(column("estimated_cost_usd")),
        "reported_cost_usd": floats(column("reported_cost_usd")),
        "video_path": texts([_on_disk(run_dir, p) for p in column("video_path")]),
        "thumbnail_path": texts([_on_disk(run_dir, p) for p in column("thumbnail_path")]),
        "checksum": texts(column("checksum")),
        "attempts": pd.Series(column("attempts"), dtype="int64"),
        "polls": pd.Series(column("polls"), dtype="int64"),
    }
    data |= _score_columns(pd, records, scores or Scores({}, ()))
    # After the judgment columns, as COLUMNS lists it (the metric columns follow).
    data = _insert_after(data, "tags", "characters",
                         texts([", ".join(name for _, name in r.spec.characters) for r in records]))
    df = pd.DataFrame(data)
    # Plain JSON values only: to_parquet stores attrs as JSON.
    df.attrs["run_dir"] = str(run_dir)
    df.attrs["run_id"] = run_id
    return df


def load_run(run_dir: str | os.PathLike[str]) -> pandas.DataFrame:
    """Read a run's DataFrame from its ledger: offline, read-only, fine while another process writes.

    Raises:
        FileNotFoundError: no run at ``run_dir`` (the message names the path and what to do).

    >>> import sora_nb
    >>> with sora_nb.connect(time_scale=0.002, run_root=getfixture("tmp_path")) as client:
    ...     run_dir = client.sweep(prompt=["a corgi surfing", "a cat skiing [fail]"]).start().wait(timeout=60).run_dir
    >>> df = load_run(run_dir)  # no client needed: the ledger alone
    >>> df[df.status == "failed"][["prompt", "error_code"]]
                    prompt          error_code
    1  a cat skiing [fail]  moderation_blocked
    """
    with Ledger.open(Path(run_dir), readonly=True) as ledger:
        meta = ledger.meta()
        records = ledger.jobs()
        scores = read_scores(ledger)
    return records_to_dataframe(
        records, run_dir=Path(run_dir), axes=meta.get("axes") or (), run_id=meta.get("run_id"), scores=scores
    )


def export(df: pandas.DataFrame, path: str | Path) -> Path:
    """Write ``df`` to ``.csv`` or ``.parquet`` (chosen by the suffix), atomically; returns the path.

    Raises:
        ValueError: another suffix.
        ImportError: ``.parquet`` without pyarrow (``pip install "sora-nb[data]"``).

    >>> import sora_nb
    >>> runs = getfixture("tmp_path")
    >>> with sora_nb.connect(time_scale=0.002, run_root=runs) as client:
    ...     run_dir = client.sweep(prompt=["a corgi surfing", "a cat skiing"]).start().wait(timeout=60).run_dir
    >>> export(load_run(run_dir), runs / "results.parquet").name
    'results.parquet'
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"cannot export to {str(path)!r}: the file name must end in .csv or .parquet.")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                'Parquet export needs pyarrow. Fix: pip install "sora-nb[data]" (or export to a .csv file).'
            ) from exc
    # Write beside the target, then rename: a reader never sees half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False, engine="pyarrow")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _score_columns(pd: Any, records: Sequence[JobRecord], scores: Scores) -> dict[str, pandas.Series]:
    """The judgment columns (by job) and the metric columns (by checksum; no measured video: NA)."""
    measured = [scores.metrics.get(r.checksum or "", {}) if r.status == "completed" else {} for r in records]
    rated = [scores.ratings.get(r.job_id, (None, 0, "")) for r in records]
    columns: dict[str, pandas.Series] = {
        "stars_mean": pd.Series([stars for stars, _, _ in rated], dtype="float64"),
        "ratings": pd.Series([n for _, n, _ in rated], dtype="int64"),
        "tags": pd.Series([tags for _, _, tags in rated], dtype=object),
    }
    for name, dtype, _ in METRIC_COLUMNS:
        key = name.removeprefix("metric_")
        values = [m.get(key) for m in measured]
        columns[name] = pd.Series(values, dtype=dtype if dtype != "float64" else None).astype(dtype)
    for key in scores.custom:
        column = f"metric_{key}"
        if column not in columns:
            columns[column] = pd.Series([m.get(key) for m in measured], dtype=object).infer_objects()
    return columns


def _insert_after(data: dict[str, Any], after: str, name: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, column in data.items():
        out[key] = column
        if key == after:
            out[name] = value
    return out


def _axis_value(spec: JobSpec, name: str) -> Any:
    # Jobs added outside the sweep (a remix, a single generate) may lack an axis: fall back to the spec.
    if name in spec.axes:
        return spec.axes[name]
    return getattr(spec, name) if name in _SPEC_FIELDS else None


def _axis_series(pd: Any, name: str, values: list[Any]) -> pandas.Series:
    present = [v for v in values if v is not None]
    if name == "repeat" and all(isinstance(v, int) for v in values):
        return pd.Series(values, dtype="int64")
    if all(isinstance(v, str) for v in present):
        # Categories in order of first appearance = sweep order (dict keeps insertion order).
        return pd.Series(pd.Categorical(values, categories=list(dict.fromkeys(present))))
    return pd.Series(values)


def _minus(end: float | None, start: float | None) -> float | None:
    return None if end is None or start is None else end - start


def _seconds_generated(record: JobRecord) -> float | None:
    if record.spec.kind == "stitch":
        return 0.0  # joined here from shots that have rows of their own: nothing new was generated
    if record.status != "completed":
        return 0.0 if record.status in TERMINAL_STATUSES else None
    try:
        seconds = float(record.spec.seconds)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def _on_disk(run_dir: Path, relative: str | None) -> str | None:
    if not relative:
        return None
    path = run_dir / relative
    return str(path) if path.is_file() else None
