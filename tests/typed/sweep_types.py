"""Typed use of the public API, checked by mypy --strict (``[tool.mypy] files`` in pyproject.toml), never run.

Each line is what typed notebook code writes; a wrong type here fails ``tests/test_static.py``'s mypy run.
"""

from __future__ import annotations

import sora_nb


def a_sweep_of_storyboards_starts_a_run_with_boards(client: sora_nb.Client, other: sora_nb.Client) -> None:
    run = client.sweep(storyboard=["a fox wakes", "the fox runs"], model=["sora-2", "sora-2-pro"]).start()
    boards: list[sora_nb.Storyboard] = run.boards  # no cast: start() of a storyboard sweep is typed so
    also: list[sora_nb.Storyboard] = sora_nb.pool(client, other).sweep(storyboard=["a fox wakes"]).start().boards
    videos = client.sweep(prompt=["a corgi surfing"]).start()
    none = videos.boards  # type: ignore[attr-defined]  # a sweep of videos has none (an unused ignore fails mypy)
    del boards, also, none
