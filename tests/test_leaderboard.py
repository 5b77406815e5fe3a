"""Leaderboards: Bradley-Terry from votes recovers known strengths; stars and metrics rank by their means."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sora_nb._leaderboard import bradley_terry, leaderboard

TRUE = {"alpha": 1.2, "bravo": 0.5, "charlie": 0.0, "delta": -0.6, "echo": -1.1}


def _run_frame(per_value: int = 3) -> pd.DataFrame:
    rows = [{"job_id": f"{name}-{i}", "model": name, "prompt": f"p{i}"} for name in TRUE for i in range(per_value)]
    df = pd.DataFrame(rows)
    df["stars_mean"], df["ratings"] = math.nan, 0
    return df


def _synthetic_votes(df: pd.DataFrame, n: int, seed: int) -> list[dict[str, str]]:
    """Votes drawn from the Bradley-Terry model with the TRUE strengths (sides at random)."""
    rng = np.random.default_rng(seed)
    jobs = df[["job_id", "model"]].to_numpy()
    votes = []
    for _ in range(n):
        (a, ma), (b, mb) = jobs[rng.choice(len(jobs), 2, replace=False)]
        p_a = 1.0 / (1.0 + math.exp(TRUE[mb] - TRUE[ma]))
        winner = "a" if rng.random() < p_a else "b"
        votes.append({"kind": "vote", "job_id": a, "other_id": b, "winner": winner})
    return votes


def test_votes_from_known_strengths_recover_their_order() -> None:
    df = _run_frame()
    inside = total = 0
    for seed in range(1, 5):
        votes = _synthetic_votes(df, 1500, seed)
        board = leaderboard(df, votes, by="model", seed=seed)
        assert board["model"].tolist() == list(TRUE), seed  # best first
        truth = np.array([TRUE[m] for m in board["model"]])
        truth -= truth.mean()
        assert np.allclose(board["strength"], truth, atol=0.3), board
        inside += int(((board["ci_low"] <= truth) & (truth <= board["ci_high"])).sum())
        total += len(board)
        assert (board["wins"] + board["losses"] + board["ties"] == board["n"]).all()
        across = sum(1 for v in votes if v["job_id"].split("-")[0] != v["other_id"].split("-")[0])
        assert board["n"].sum() == 2 * across  # each vote between two models counts for both
    assert inside >= 0.8 * total, (inside, total)  # 95 % intervals cover the truth (expect ~19 of 20)


def test_few_votes_give_wide_intervals_and_finite_strengths() -> None:
    df = _run_frame(1)
    votes = [{"kind": "vote", "job_id": "alpha-0", "other_id": "bravo-0", "winner": "a"}] * 2
    board = leaderboard(df, votes, by="model")
    assert board["model"].iloc[0] == "alpha" and np.isfinite(board["strength"]).all()
    assert (board["ci_high"] - board["ci_low"]).iloc[0] > 0.1
    # Values nobody compared sit in the middle, with n = 0.
    assert board.set_index("model").loc["echo", "n"] == 0


def test_ties_and_both_bad_are_no_preference() -> None:
    df = _run_frame(1)
    votes = [{"kind": "vote", "job_id": "alpha-0", "other_id": "bravo-0", "winner": w} for w in ["tie", "both_bad"] * 5]
    board = leaderboard(df, votes, by="model").set_index("model")
    assert board.loc["alpha", "strength"] == pytest.approx(board.loc["bravo", "strength"])
    assert (board.loc["alpha", "ties"], board.loc["alpha", "wins"], board.loc["alpha", "n"]) == (10, 0, 10)


def test_votes_within_one_value_say_nothing_about_it() -> None:
    df = _run_frame(2)
    votes = [{"kind": "vote", "job_id": "alpha-0", "other_id": "alpha-1", "winner": "a"}] * 5
    board = leaderboard(df, votes, by="model")
    assert board["n"].sum() == 0 and np.allclose(board["strength"], 0.0)


def test_bradley_terry_matches_the_closed_form_for_two_players() -> None:
    # Two players, 30 wins to 10 (plus the prior's half-win each): log(30.5 / 10.5) apart.
    strengths = bradley_terry(np.array([[0.0, 30.0], [10.0, 0.0]]))
    assert strengths[0] - strengths[1] == pytest.approx(math.log(30.5 / 10.5), rel=1e-6)


def test_stars_and_metric_leaderboards_rank_by_mean() -> None:
    df = _run_frame(2)
    df["metric_motion"] = [0.1 * i for i in range(len(df))]
    df["metric_flag_black"] = pd.array([False] * (len(df) - 1) + [True], dtype="boolean")
    ratings = [{"kind": "rating", "job_id": f"{m}-0", "stars": s} for m, s in
               [("alpha", 2), ("alpha", 3), ("bravo", 5), ("charlie", 4)]]
    stars = leaderboard(df, ratings, by="model", using="stars")
    assert stars["model"].tolist()[:3] == ["bravo", "charlie", "alpha"]
    assert stars.set_index("model").loc["alpha", "strength"] == 2.5 and stars["n"].tolist()[:3] == [1, 1, 2]
    assert stars["wins"].isna().all()
    motion = leaderboard(df, [], by="model", using="motion")
    assert motion["model"].tolist() == list(reversed(TRUE))
    assert motion.set_index("model").loc["echo", "metric_flag_black"] == 0.5  # share of flagged videos
    assert (motion["ci_low"] <= motion["strength"]).all() and (motion["strength"] <= motion["ci_high"]).all()


def test_bad_by_or_using_names_the_choices() -> None:
    df = _run_frame(1)
    with pytest.raises(ValueError, match=r"by='colour' is not a column.*'model'"):
        leaderboard(df, [], by="colour")
    with pytest.raises(ValueError, match=r"using='beauty': use 'votes', 'stars' or a numeric metric"):
        leaderboard(df, [], by="model", using="beauty")


def test_plot_draws_intervals() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = _run_frame()
    board = leaderboard(df, _synthetic_votes(df, 200, 0), by="model")
    ax = board.plot()
    try:
        assert [t.get_text() for t in ax.get_yticklabels()][::-1] == board["model"].tolist()  # best on top
        assert "95 % interval" in ax.get_xlabel()
    finally:
        plt.close(ax.figure)


def test_one_value_has_nothing_to_rank_against() -> None:
    df = pd.DataFrame({"job_id": ["j1", "j2"], "model": ["a", "a"], "stars_mean": [math.nan] * 2, "ratings": [0, 0]})
    votes = [{"kind": "vote", "job_id": "j1", "other_id": "j2", "winner": "a"}]
    board = leaderboard(df, votes, by="model")
    assert board["strength"].tolist() == [0.0] and board["n"].tolist() == [0]


@pytest.mark.parametrize("using", ["votes", "stars", "motion"])
def test_a_run_with_no_video_yet_has_an_empty_leaderboard(using: str) -> None:
    """An app's session before its first video (the Judge part shows its leaderboard at once): before,
    ``reshape(-1, 0)`` raised "cannot reshape array of size 0"."""
    df = pd.DataFrame({"job_id": pd.Series([], dtype=object), "model": pd.Series([], dtype=object),
                       "stars_mean": pd.Series([], dtype=float), "ratings": pd.Series([], dtype=int),
                       "metric_motion": pd.Series([], dtype=float)})
    board = leaderboard(df, [], by="model", using=using)
    assert board.empty and list(board.columns[:8]) == ["model", "strength", "ci_low", "ci_high", "wins", "losses",
                                                       "ties", "n"]
