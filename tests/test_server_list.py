"""The server's list of videos a page at a time (``_server_list``), without any widget: its pages, its
cursors, and a page that shows only once its posters are on disk."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import sora_nb
from sora_nb._server_list import ServerList


def _on_loop(client: sora_nb.Client, fn: Any) -> Any:
    return client._runtime.call_and_wait(fn)


def test_a_page_shows_only_once_its_posters_are_downloaded(client: sora_nb.Client,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Before (the paging inside the gallery widget): the page's videos were set before their posters
    were downloaded, so a redraw in between (a filter change, the first tick) drew 2 tiles with 0 posters."""
    for prompt in ("a kite", "a tram"):
        client.generate(prompt).wait(timeout=30)
    api = client.api
    download = api.download
    held: dict[str, asyncio.Event] = {}
    posters: list[str] = []

    async def slow_posters(video_id: str, path: Any, **options: Any) -> Any:
        if options.get("variant") == "thumbnail":
            gate = held.setdefault("gate", asyncio.Event())  # made on the loop it is awaited on
            await gate.wait()
            posters.append(video_id)
        return await download(video_id, path, **options)

    monkeypatch.setattr(api, "download", slow_posters)
    server_list = ServerList(client, page_size=5)
    seen: list[tuple[int, int]] = []
    server_list.observe(lambda s: seen.append((len(s.videos), sum(s.poster(v.id) is not None for v in s.videos))))
    fetched = server_list.turn(0)
    while "gate" not in held:  # the list arrived; its first poster is on its way
        assert not fetched.done(), fetched
        _on_loop(client, lambda: None)
    assert _on_loop(client, lambda: (list(server_list.videos), server_list.arrived)) == ([], False)
    _on_loop(client, held["gate"].set)
    fetched.result(timeout=30)
    assert [v.prompt for v in server_list.videos] == ["a tram", "a kite"] and server_list.arrived
    assert seen == [(2, 2)] and len(posters) == 2  # one notice, with every poster there


def test_pages_follow_cursors_and_a_step_while_loading_sends_nothing(client: sora_nb.Client,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for prompt in ("a kite", "a tram", "a boat"):
        client.generate(prompt).wait(timeout=30)
    api = client.api
    listing = api.list
    calls: list[str | None] = []
    held: dict[str, asyncio.Event] = {}

    async def counted(**options: Any) -> Any:
        calls.append(options.get("after"))
        if "gate" in held:
            await held["gate"].wait()
        return await listing(**options)

    monkeypatch.setattr(api, "list", counted)
    server_list = ServerList(client, page_size=1)
    server_list.turn(0).result(timeout=30)
    assert [v.prompt for v in server_list.videos] == ["a boat"] and server_list.has_more
    held["gate"] = _on_loop(client, asyncio.Event)
    first = server_list.turn(+1)
    while len(calls) < 2:  # the next page is on its way
        _on_loop(client, lambda: None)
    server_list.turn(+1).result(timeout=30)  # a double click on Next: done at once, nothing sent
    assert len(calls) == 2 and not first.done()
    _on_loop(client, held.pop("gate").set)
    first.result(timeout=30)
    assert server_list.page == 1 and [v.prompt for v in server_list.videos] == ["a tram"]
    server_list.turn(+1).result(timeout=30)
    assert [v.prompt for v in server_list.videos] == ["a kite"] and not server_list.has_more
    server_list.turn(+1).result(timeout=30)  # past the end: nothing sent
    server_list.turn(-1).result(timeout=30)
    assert server_list.page == 1 and [v.prompt for v in server_list.videos] == ["a tram"]
    assert calls == [None, calls[1], calls[2], calls[1]] and len(calls) == 4  # page 2 again, from its cursor
