"""The review and arena widgets, driven from Python: what they store, show and hide."""

from __future__ import annotations

import re

import pytest
from support import Sent, Shown

import sora_nb

pytest.importorskip("ipywidgets")


@pytest.fixture
def run(client: sora_nb.Client) -> sora_nb.Run:
    return client.sweep(prompt=["a corgi surfing", "a cat skiing"], model=["sora-2", "sora-2-pro"]).start().wait(
        timeout=60)


def test_arena_hides_the_labels_until_the_vote_then_reveals_them(run: sora_nb.Run) -> None:
    arena = run.arena(by="model", rater="ana", seed=3, media="url")
    try:
        assert arena.pair is not None
        a, b = arena.pair
        assert a.spec.prompt == b.spec.prompt and {a.spec.model, b.spec.model} == {"sora-2", "sora-2-pro"}
        shown = arena.header.value + str(arena.stage.outputs)
        assert "sora-2" not in shown and not arena.reveal.value  # blind
        assert all(not button.disabled for button in arena.buttons)
        arena.buttons[1].click()  # "B is better"
        assert arena.revealed and all(button.disabled for button in arena.buttons)
        assert "1 vote this session" in arena.header.value  # (it said 0 until the next pair)
        assert f"A was <b>{a.spec.model}</b>" in arena.reveal.value
        votes = run.judgments()
        assert (votes["job_id"].tolist(), votes["other_id"].tolist(), votes["winner"].tolist()) == (
            [a.id], [b.id], ["b"])
        arena.buttons[0].click()  # a second click on a revealed pair casts nothing
        assert len(run.judgments()) == 1
        first = frozenset((a.id, b.id))
        arena.next_button.click()
        assert arena.pair is not None and frozenset(j.id for j in arena.pair) != first  # fewest votes first
    finally:
        arena.close()


def test_arena_clears_the_reveal_only_after_the_next_pairs_buttons_are_enabled(run: sora_nb.Run, sent: Sent) -> None:
    """A front end applies the kernel's messages in order: a reveal seen cleared must mean that the vote
    buttons (which the keys press) are enabled again, or a key pressed at once meets a disabled button and
    casts nothing (which failed the Voila arena test in CI). The buttons are enabled only once the pair they
    vote on is sent: a key pressed when they show enabled votes on the pair on screen, not one still coming."""
    arena = run.arena(by="model", rater="ana", seed=3, media="url")
    try:
        arena.vote("a")
        start = len(sent.messages)
        arena.next()
        order = [(comm_id, data["state"]) for _at, comm_id, data in sent.messages[start:]
                 if data.get("method") == "update"]
        cleared = next(i for i, (comm_id, state) in enumerate(order)
                       if comm_id == arena.reveal.comm.comm_id and state.get("value") == "")
        enabled = [i for i, (comm_id, state) in enumerate(order)
                   if comm_id in {b.comm.comm_id for b in arena.buttons} and state.get("disabled") is False]
        assert len(enabled) == len(arena.buttons) and max(enabled) < cleared, order
        shown = [i for i, (comm_id, state) in enumerate(order) if comm_id == arena.stage.comm.comm_id]
        assert len(shown) == 1 and shown[0] < min(enabled), order
    finally:
        arena.close()


def test_arena_skipping_an_unvoted_pair_disables_its_buttons_before_the_next_pair_is_sent(
        run: sora_nb.Run, sent: Sent) -> None:
    """Skip leaves the vote buttons enabled on the pair it leaves: a key pressed while the next pair is on its
    way must meet them disabled (and be dropped), not cast a vote on a pair the person has not seen yet."""
    arena = run.arena(by="model", rater="ana", seed=3, media="url")
    try:
        assert all(not button.disabled for button in arena.buttons)
        start = len(sent.messages)
        arena.skip()
        order = [(comm_id, data["state"]) for _at, comm_id, data in sent.messages[start:]
                 if data.get("method") == "update"]
        ids = {b.comm.comm_id for b in arena.buttons}
        disabled = [i for i, (comm_id, state) in enumerate(order) if comm_id in ids and state.get("disabled") is True]
        enabled = [i for i, (comm_id, state) in enumerate(order) if comm_id in ids and state.get("disabled") is False]
        (shown,) = [i for i, (comm_id, _state) in enumerate(order) if comm_id == arena.stage.comm.comm_id]
        assert len(disabled) == len(arena.buttons) and max(disabled) < shown < min(enabled), order
    finally:
        arena.close()


def test_arena_skip_undo_and_no_pair(run: sora_nb.Run, client: sora_nb.Client) -> None:
    arena = run.arena(by="model", rater="bo", seed=0, media="bytes")
    try:
        assert len(arena.stage.children) == 2  # two players, A and B
        shown = arena.pair
        arena.skip_button.click()
        assert arena.pair != shown and len(run.judgments()) == 0
        arena.vote("tie")
        arena.undo_button.click()
        assert run.judgments().empty and arena.votes == 0
    finally:
        arena.close()
    lonely = client.sweep(prompt="a storm at sea", model=["sora-2"]).start().wait(timeout=60)
    empty = lonely.arena(by="model")
    try:
        assert empty.pair is None and "No pair to compare" in empty.header.value
        empty.vote("a")  # nothing to vote on: nothing stored
        assert lonely.judgments().empty
    finally:
        empty.close()
    with pytest.raises(ValueError, match="not an axis"):
        run.arena(by="colour")


def test_review_rates_one_video_at_a_time(run: sora_nb.Run) -> None:
    review = run.review(rater="ana", tags=("sharp", "blurry"), media="url")
    try:
        assert review.progress.value == "0 of 4 rated by ana"
        first = review.job
        assert f"model: {first.model}" in review.title.value  # the axes under the prompt, not "style: None"
        assert "None" not in review.title.value and "prompt:" not in review.title.value
        review.stars.value, review.tags.value, review.note.value = 5, ["sharp"], "lovely"
        review.save()
        assert review.progress.value == "1 of 4 rated by ana" and review.job is not first
        assert review.stars.value == 0 and review.tags.value == []  # fresh for the next video
        review.skip()
        review.previous()
        review.previous()
        assert review.job is first and "rated" in review.title.value
        df = run.to_dataframe().set_index("job_id")
        assert (df.loc[first.id, "stars_mean"], df.loc[first.id, "tags"]) == (5.0, "sharp")
        assert run.judgments()["note"].tolist() == ["lovely"]
        review.undo()
        assert review.progress.value == "0 of 4 rated by ana"
        with pytest.raises(ValueError, match="needs stars"):
            run.rate(first, rater="ana")  # what Save with nothing chosen would store: refused, shown
    finally:
        review.close()


def _classes(widget: object) -> set[str]:
    from sora_nb.ui._sync import walk

    return {cls for item in walk(widget) for cls in getattr(item, "_dom_classes", ())}


def _key_map(widget: object) -> dict[str, list[object]]:
    """The key map the hint line's handler carries (decoded from the HTML attribute it lives in)."""
    import html
    import json
    import re

    hint = next(item for item in _walk(widget) if "sora-nb-keys" in getattr(item, "_dom_classes", ()))
    script = html.unescape(re.search(r'onload="([^"]*)"', hint.value).group(1))
    return dict(json.loads(re.search(r"M=(\{.*?\}),tries", script).group(1)))


def _walk(widget: object) -> list[object]:
    from sora_nb.ui._sync import walk

    return list(walk(widget))


def test_the_keys_are_said_on_screen_and_press_the_widgets_own_buttons(run: sora_nb.Run) -> None:
    """Each key names a button (or toggle, or field) that is in the widget: a renamed class would leave the
    key pressing nothing. The browser test presses them."""
    review = run.review(rater="ana", media="url")
    arena = run.arena(by="model", media="url", seed=2)
    try:
        for widget, keys, said in (
            (review, "12345npts", ("1", "5", "stars", "save and next", "previous", "tags", "skip")),
            (arena, "abtxns", ("A is better", "B is better", "tie", "both bad", "next pair", "skip")),
        ):
            mapping = _key_map(widget)
            assert sorted(mapping) == sorted(keys)
            classes = _classes(widget)
            for key, (selector, _index) in mapping.items():
                assert str(selector).split()[0].lstrip(".") in classes, f"key {key} presses nothing: {selector}"
            hint = widget.key_hint.value
            assert all(f">{k}</kbd>" in hint for k in keys.replace("234", "")), hint
            assert all(word in widget.key_hint.value for word in said)
        for n in (4, 2):
            selector = _key_map(review)[str(n)][0]
            (button,) = [b for b in review.star_keys if str(selector).lstrip(".") in b._dom_classes]
            button.click()  # what the key does
            assert review.stars.value == n
        assert _key_map(arena)["x"] == [".sora-nb-vote-both_bad", 0]
    finally:
        review.close()
        arena.close()


def test_review_save_with_nothing_chosen_says_what_to_do(run: sora_nb.Run) -> None:
    review = run.review(rater="ana", media="url")
    try:
        first = review.job
        review.save()  # n pressed with nothing chosen: nothing stored, the same video, a hint
        assert run.judgments().empty and review.job is first
        assert "choose stars (keys 1-5)" in review.error.value and "Skip (s)" in review.error.value
    finally:
        review.close()


def test_arena_leaderboard_is_redrawn_after_each_vote(run: sora_nb.Run) -> None:
    arena = run.arena(by="model", media="url", seed=4, leaderboard=True)
    plain = run.arena(by="model", media="url", seed=4)
    try:
        def board() -> str:  # the cells without their alignment
            return re.sub(r"<td [^>]*>", "<td>", arena.board.value)

        assert "Leaderboard by model" in arena.board.value and plain.board.value == ""
        assert board().count("<td>0</td>") >= 6  # no wins, losses or ties yet
        assert arena.pair is not None
        winner = arena.pair[0].spec.model
        arena.vote("a")
        rows = board().split("<tr")[2:]
        first = rows[0]
        assert f"<td>{winner}</td>" in first and "<td>1</td>" in first  # the winner on top, 1 win
        arena.undo()
        assert board().count("<td>0</td>") >= 6
    finally:
        arena.close()
        plain.close()


def test_review_and_arena_leave_a_static_fallback_that_follows_their_judgments(
        run: sora_nb.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A saved notebook reopened without its kernel showed, for the review and the arena, only "sora_nb Review"
    and "sora_nb Arena": no poster, no progress, no vote, no leaderboard. Now each leaves its posters,
    statuses and prompts, the progress, the revealed vote and the leaderboard, updated after each judgment;
    the arena's pair only once revealed (a tile's caption names the model); no widget state, no key."""
    import IPython.display

    from sora_nb import _display
    from sora_nb._profiles import SIMULATOR_API_KEY

    shown = Shown()
    monkeypatch.setattr(IPython.display, "display", shown)
    monkeypatch.setattr(_display, "in_kernel", lambda: True)
    review = run.review(rater="ana", media="url")
    arena = run.arena(by="model", rater="ana", media="url", seed=4, leaderboard=True)
    try:
        review._ipython_display_()
        arena._ipython_display_()
        (r_static, r_kw), _, (a_static, a_kw), _ = shown.calls
        assert r_kw == a_kw == {"display_id": True}
        posters = {job.id: _display.media_src(job.thumbnail_path) for job in run.jobs}
        assert "sora_nb review · 0 of 4 rated by ana" in r_static.data
        assert all(poster in r_static.data for poster in posters.values())
        assert all(job.prompt in r_static.data for job in run.jobs) and ">completed<" in r_static.data
        blind = a_static.data
        assert "sora_nb arena by model · 0 votes this session" in blind and "Leaderboard by model" in blind
        assert "sora-nb-tile" not in blind and "A was" not in blind  # nothing says which side is which

        review.stars.value = 4
        review.save()
        assert "1 of 4 rated by ana" in shown.updates[-1]
        assert arena.pair is not None
        a, b = arena.pair
        arena.vote("b")
        revealed = shown.updates[-1]
        assert "1 vote this session" in revealed and "B is better" in revealed
        assert f"A was <b>{a.spec.model}</b>" in revealed and posters[a.id] in revealed and posters[b.id] in revealed
        assert re.search(rf">{re.escape(str(b.spec.model))}</td>.*?>1</td>", revealed)  # B's win on the board
        arena.next()
        assert "sora-nb-tile" not in shown.updates[-1]  # the next pair: blind again
        for text in (r_static.data, a_static.data, *shown.updates):
            assert SIMULATOR_API_KEY not in text and "Bearer" not in text and "widget-state" not in text
    finally:
        review.close()
        arena.close()
