"""Leaderboards: which value of an axis (a model, a style, a prompt) makes the better videos.

From blind pairwise votes, a Bradley-Terry model: each value ``i`` has a strength ``s_i`` and
``P(i beats j) = 1 / (1 + exp(s_j - s_i))``. It is fitted with Hunter's (2004) MM iteration, which needs
nothing but numpy; a tie counts half a win to each side, and so does "both bad" (neither is preferred).
One virtual tie between every pair keeps the strengths finite when a value never lost (and pulls
barely-compared values towards the middle, as a prior should). The 95 % interval comes from a parametric
bootstrap: the outcome of every decisive vote is drawn again from the fitted model, on the same pairs,
and the model refitted (resampling the votes themselves would give a zero-width interval to two
unanimous votes). Seeded: the same votes give the same table.

From stars or a metric, the strength is the mean, with a bootstrap interval over the ratings or videos.

pandas is imported by this module: it is only ever imported inside ``run.leaderboard``.

>>> import numpy as np
>>> wins = np.array([[0, 8, 9], [2, 0, 6], [1, 4, 0]], dtype=float)  # wins[i, j]: i beat j
>>> np.round(bradley_terry(wins), 2)
array([ 1.01, -0.29, -0.72])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["Leaderboard", "bradley_terry", "choose_pair", "leaderboard"]

PRIOR_TIES = 1.0
"""Virtual ties added between every pair of values (regularisation; see the module docstring)."""
RESAMPLES = 200
"""Bootstrap resamples behind each 95 % interval."""


def bradley_terry(
    wins: NDArray[np.float64], *, prior: float = PRIOR_TIES, iterations: int = 500
) -> NDArray[np.float64]:
    """Bradley-Terry log-strengths (mean 0) from a matrix of wins, ``wins[i, j]`` = times ``i`` beat ``j``.

    >>> bradley_terry(np.array([[0.0, 3.0], [3.0, 0.0]])).tolist()
    [0.0, 0.0]
    """
    k = wins.shape[0]
    if k < 2:
        return np.zeros(k)  # one value (or none): nothing to rank it against
    w = wins + (prior / 2.0) * (1.0 - np.eye(k))
    games = w + w.T
    won = w.sum(axis=1)
    p = np.ones(k)
    for _ in range(iterations):
        denominator = (games / (p[:, None] + p[None, :])).sum(axis=1)
        new = won / denominator
        new /= math.exp(float(np.log(new).mean()))
        if np.max(np.abs(new - p)) < 1e-10:
            p = new
            break
        p = new
    logs: NDArray[np.float64] = np.log(p)
    centred: NDArray[np.float64] = logs - logs.mean()
    return centred


def _win_matrix(pairs: NDArray[np.int64], scores: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    wins = np.zeros((k, k))
    np.add.at(wins, (pairs[:, 0], pairs[:, 1]), scores)
    np.add.at(wins, (pairs[:, 1], pairs[:, 0]), 1.0 - scores)
    return wins


class Leaderboard(pd.DataFrame):  # type: ignore[misc]
    """A leaderboard: a DataFrame, one row per value of the axis, best first; :meth:`plot` draws it."""

    _metadata: ClassVar[list[str]] = ["by", "using"]

    @property
    def _constructor(self) -> type[Leaderboard]:
        return Leaderboard

    def plot(self, ax: Any = None, **options: Any) -> Any:
        """Strengths with their 95 % intervals, best on top (matplotlib); returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(self)))
        rows = self.iloc[::-1]
        low = (rows["strength"] - rows["ci_low"]).to_numpy(dtype=float)
        high = (rows["ci_high"] - rows["strength"]).to_numpy(dtype=float)
        labels = [str(v) for v in rows[self.by]]
        ax.errorbar(rows["strength"], labels, xerr=[low, high], fmt="o", capsize=4, **options)
        names = {"votes": "Bradley-Terry strength (log odds)", "stars": "mean stars"}
        what = names.get(self.using, f"mean {self.using}")
        ax.set_xlabel(f"{what}, 95 % interval")
        ax.set_title(f"{self.by} by {self.using}")
        return ax


def leaderboard(
    df: pd.DataFrame,
    judgments: Sequence[Mapping[str, Any]],
    *,
    by: str,
    using: str = "votes",
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Leaderboard:
    """Rank the values of the column ``by`` of a run's DataFrame ``df``.

    Args:
        df: the run's DataFrame (``run.to_dataframe()``): ``job_id``, the axis, ``stars_mean`` and the
            ``metric_*`` columns are used.
        judgments: the run's judgments in force (dicts with ``kind``, ``job_id``, ``other_id``,
            ``winner``, ``stars``).
        by: the axis to rank (a column of ``df``: ``model``, ``style``, ``prompt``...).
        using: ``"votes"`` (Bradley-Terry), ``"stars"`` (mean rating) or a metric (``"motion"`` or
            ``"metric_motion"``; higher ranks first).

    Returns:
        A :class:`Leaderboard`: ``by``, ``strength``, ``ci_low``, ``ci_high``, ``wins``, ``losses``,
        ``ties`` (votes only, else <NA>), ``n`` (votes, ratings or measured videos behind the strength),
        ``videos``, ``stars_mean``, ``ratings``, then the mean of every metric column, best first.

    Raises:
        ValueError: ``by`` is not a column, or ``using`` is neither votes, stars nor a metric column.

    >>> df = pd.DataFrame({"job_id": ["j1", "j2"], "model": ["a", "b"], "stars_mean": [4.0, 2.0],
    ...                    "ratings": [1, 1], "metric_motion": [0.1, 0.3]})
    >>> votes = [{"kind": "vote", "job_id": "j1", "other_id": "j2", "winner": "a"}] * 3
    >>> leaderboard(df, votes, by="model")[["model", "wins", "losses", "n"]]
      model  wins  losses  n
    0     a     3       0  3
    1     b     0       3  3
    """
    if by not in df.columns:
        axes = [c for c in df.columns if not c.startswith("metric_")][:8]
        raise ValueError(f"by={by!r} is not a column of the run; try one of {', '.join(map(repr, axes))}.")
    values = [v for v in dict.fromkeys(df[by].dropna().tolist())]
    index = {v: i for i, v in enumerate(values)}
    value_of = dict(zip(df["job_id"], df[by], strict=True))
    metric_columns = [c for c in df.columns if c.startswith("metric_") and _numeric(df[c])]
    k = len(values)
    rng = np.random.default_rng(seed)
    record: dict[str, Any] = {"wins": [pd.NA] * k, "losses": [pd.NA] * k, "ties": [pd.NA] * k}
    if using == "votes":
        pairs, scores = _votes(judgments, value_of, index)
        wins = _win_matrix(pairs, scores, k)
        strength = bradley_terry(wins)
        decisive = scores != 0.5
        p_first = 1.0 / (1.0 + np.exp(strength[pairs[:, 1]] - strength[pairs[:, 0]]))
        boot = np.array([
            bradley_terry(_win_matrix(pairs, np.where(decisive, rng.random(len(pairs)) < p_first, 0.5), k))
            for _ in range(resamples if len(pairs) else 0)
        ]).reshape(resamples if len(pairs) else 0, k)  # explicit rows: -1 is undefined with no values (k = 0)
        record = {
            "wins": [int(((pairs[:, 0] == i) & (scores == 1.0)).sum() + ((pairs[:, 1] == i) & (scores == 0.0)).sum())
                     for i in range(k)],
            "losses": [int(((pairs[:, 0] == i) & (scores == 0.0)).sum() + ((pairs[:, 1] == i) & (scores == 1.0)).sum())
                       for i in range(k)],
            "ties": [int((((pairs[:, 0] == i) | (pairs[:, 1] == i)) & ~decisive).sum()) for i in range(k)],
        }
        n = [int(((pairs[:, 0] == i) | (pairs[:, 1] == i)).sum()) for i in range(k)]
    else:
        samples = _samples(df, judgments, by=by, using=using, values=values, value_of=value_of)
        strength = np.array([float(np.mean(s)) if len(s) else math.nan for s in samples])
        boot = np.array([
            [float(np.mean(rng.choice(s, len(s)))) if len(s) else math.nan for s in samples] for _ in range(resamples)
        ]).reshape(resamples, k)
        n = [len(s) for s in samples]
    low, high = _interval(boot, k)
    groups = df.groupby(by, observed=True, sort=False)
    table = pd.DataFrame({
        by: values,
        "strength": strength,
        "ci_low": low,
        "ci_high": high,
        "wins": pd.array(record["wins"], dtype="Int64"),
        "losses": pd.array(record["losses"], dtype="Int64"),
        "ties": pd.array(record["ties"], dtype="Int64"),
        "n": pd.array(n, dtype="int64"),
        "videos": [int(groups.size().get(v, 0)) for v in values],
        "stars_mean": [_mean(groups, "stars_mean", v) for v in values],
        "ratings": [int(groups["ratings"].sum().get(v, 0)) if "ratings" in df else 0 for v in values],
        **{c: [_mean(groups, c, v) for v in values] for c in metric_columns},
    })
    table = table.sort_values("strength", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    board = Leaderboard(table)
    board.by, board.using = by, using
    return board


def _interval(boot: NDArray[np.float64], k: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The 2.5 and 97.5 percentiles of each column; NaN where a value has no data."""
    low, high = np.full(k, math.nan), np.full(k, math.nan)
    for i in range(k):
        column = boot[:, i][np.isfinite(boot[:, i])] if len(boot) else np.empty(0)
        if column.size:
            low[i], high[i] = np.percentile(column, [2.5, 97.5])
    return low, high


def _numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def _mean(groups: Any, column: str, value: Any) -> float:
    if column not in groups.obj:
        return math.nan
    values = groups.get_group(value)[column] if value in groups.groups else pd.Series(dtype=float)
    values = values.astype("float64")
    return float(values.mean()) if values.notna().any() else math.nan


def _votes(
    judgments: Iterable[Mapping[str, Any]], value_of: Mapping[str, Any], index: Mapping[Any, int]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Votes between two different values of the axis, as index pairs and the first side's score."""
    pairs, scores = [], []
    for j in judgments:
        if j.get("kind") != "vote":
            continue
        a, b = value_of.get(j["job_id"]), value_of.get(j["other_id"])
        if a is None or b is None or a == b or a not in index or b not in index:
            continue  # same value on this axis: the vote says nothing about it
        pairs.append((index[a], index[b]))
        scores.append({"a": 1.0, "b": 0.0}.get(j["winner"], 0.5))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2), np.array(scores, dtype=np.float64)


def _samples(
    df: pd.DataFrame, judgments: Iterable[Mapping[str, Any]], *, by: str, using: str, values: list[Any],
    value_of: Mapping[str, Any],
) -> list[NDArray[np.float64]]:
    if using == "stars":
        per: dict[Any, list[float]] = {v: [] for v in values}
        for j in judgments:
            if j.get("kind") == "rating" and j.get("stars") is not None and value_of.get(j["job_id"]) in per:
                per[value_of[j["job_id"]]].append(float(j["stars"]))
        return [np.array(per[v]) for v in values]
    column = using if using.startswith("metric_") else f"metric_{using}"
    if column not in df.columns or not _numeric(df[column]):
        metrics = sorted(c.removeprefix("metric_") for c in df.columns if c.startswith("metric_") and _numeric(df[c]))
        raise ValueError(
            f"using={using!r}: use 'votes', 'stars' or a numeric metric ({', '.join(metrics[:12])}, ...)."
        )
    data = df[[by, column]].dropna()
    return [data.loc[data[by] == v, column].astype("float64").to_numpy() for v in values]


def choose_pair(
    df: pd.DataFrame, judgments: Sequence[Mapping[str, Any]], *, by: str, rng: np.random.Generator,
    skip: Iterable[frozenset[str]] = (),
) -> tuple[str, str] | None:
    """The next pair of videos to vote on: same prompt and other axes, different ``by``; None when none.

    The most informative first: the pairs compared fewest times, then those whose values of ``by`` are
    closest in strength (a vote between near-equals says the most); sides are drawn at random. ``skip``:
    pairs (as frozensets of two job ids) not to offer now.

    >>> df = pd.DataFrame({"prompt": ["p", "p", "q", "q"], "model": ["a", "b", "a", "b"],
    ...                    "job_id": ["j1", "j2", "j3", "j4"], "status": ["completed"] * 4,
    ...                    "video_path": ["1.mp4", "2.mp4", "3.mp4", "4.mp4"]})
    >>> votes = [{"kind": "vote", "job_id": "j1", "other_id": "j2", "winner": "a"}]
    >>> sorted(choose_pair(df, votes, by="model", rng=np.random.default_rng(0)))  # q's pair: never compared
    ['j3', 'j4']
    """
    if by not in df.columns:
        raise ValueError(f"by={by!r} is not a column of the run.")
    leading = list(df.columns[: list(df.columns).index("job_id")])
    same = [c for c in leading if c not in (by, "repeat")]
    ready = df[(df["status"] == "completed") & df["video_path"].notna()]
    counts: dict[frozenset[str], int] = {}
    for j in judgments:
        if j.get("kind") == "vote":
            key = frozenset((j["job_id"], j["other_id"]))
            counts[key] = counts.get(key, 0) + 1
    values = list(dict.fromkeys(df[by].dropna().tolist()))
    index = {v: i for i, v in enumerate(values)}
    pairs, scores = _votes(judgments, dict(zip(df["job_id"], df[by], strict=True)), index)
    strength = bradley_terry(_win_matrix(pairs, scores, len(values))) if values else np.zeros(0)
    skipped = set(skip)
    candidates: list[tuple[int, float, float, str, str]] = []
    groups = ready.groupby(same, observed=True, dropna=False, sort=False) if same else [((), ready)]
    for _key, group in groups:
        rows = list(group[["job_id", by]].itertuples(index=False, name=None))
        for (a, va), (b, vb) in ((x, y) for i, x in enumerate(rows) for y in rows[i + 1 :]):
            pair = frozenset((a, b))
            if va == vb or pair in skipped:
                continue
            closeness = abs(float(strength[index[va]] - strength[index[vb]]))
            candidates.append((counts.get(pair, 0), closeness, float(rng.random()), a, b))
    if not candidates:
        return None
    _count, _closeness, _tie, a, b = min(candidates)
    return (a, b) if rng.random() < 0.5 else (b, a)
