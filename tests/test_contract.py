"""The contract client against scripted servers (httpx.MockTransport): retries, reconciliation,
downloads, redaction. Each scripted server records what it received, so the tests prove what was sent."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from sora_nb import (
    AmbiguousCreateError,
    AuthenticationError,
    ContractClient,
    DownloadError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TransportError,
)
from sora_nb._contract import DEFAULT_CREATE_TIMEOUT, build_create_request
from sora_nb._validation import ImageReference

pytestmark = pytest.mark.anyio

KEY = "sk-test-SECRETSECRETSECRET1234"
BASE = "http://api.test/v1"


def video_json(vid: str = "video_1", status: str = "queued", **extra: Any) -> dict[str, Any]:
    return {
        "id": vid, "object": "video", "model": "sora-2", "status": status, "progress": 0,
        "created_at": 2_000_000_000, "completed_at": None, "expires_at": None, "prompt": "a cat",
        "size": "720x1280", "seconds": "4", "remixed_from_video_id": None, "error": None, **extra,
    }


class Script:
    """A scripted server: a list of handlers consumed in order, and a log of requests."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.now = 1000.0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(request)
        return step

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def client(self, **kwargs: Any) -> ContractClient:
        kwargs.setdefault("retry", RetryPolicy(max_retries=3, base=1.0, cap=8.0, jitter=0.0))
        return ContractClient(base_url=BASE, api_key=KEY, transport=httpx.MockTransport(self), sleep=self.sleep,
                              clock=self.clock, **kwargs)


def ok(body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers)


def err(status: int, message: str = "nope", code: str | None = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": message, "type": "x", "param": None, "code": code}},
                          headers=headers)


# ---------------------------------------------------------------- request building (pure)
def test_json_create_body() -> None:
    params = {"prompt": "p", "model": "sora-2", "seconds": "8", "size": "1280x720"}
    assert build_create_request(params, None) == {"json": params}
    assert build_create_request(params, {"image_url": "https://x/y.png"})["json"]["input_reference"] == {
        "image_url": "https://x/y.png"
    }
    assert build_create_request(params, None, seconds_as_int=True)["json"]["seconds"] == 8


def test_multipart_create_body_with_file_and_multipart_only() -> None:
    params = {"prompt": "p", "model": "sora-2", "seconds": "8", "size": "1280x720"}
    ref = ImageReference(data=b"\x89PNG...", filename="ref.png", content_type="image/png")
    request = build_create_request(params, ref)
    assert request["data"] == params
    assert request["files"]["input_reference"] == ("ref.png", b"\x89PNG...", "image/png")
    only = build_create_request(params, None, multipart_only=True)
    assert dict((k, v[1]) for k, v in only["files"]) == params


async def test_multipart_only_sends_multipart_form() -> None:
    script = Script(ok(video_json()))
    async with script.client(multipart_only=True) as api:
        await api.create(prompt="a cat", model="sora-2", seconds=4)
    request = script.requests[0]
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert b'name="seconds"\r\n\r\n4' in request.content


# ---------------------------------------------------------------- retries
async def test_get_retried_on_5xx_with_exponential_backoff() -> None:
    script = Script(err(500), err(503), ok(video_json(status="in_progress", progress=40)))
    async with script.client() as api:
        video = await api.retrieve("video_1")
    assert video.status == "in_progress" and video.progress == 40
    assert len(script.requests) == 3
    assert script.sleeps == [1.0, 2.0]


async def test_retry_after_ms_is_honoured_and_closes_the_shared_gate() -> None:
    script = Script(err(429, code="rate_limit_exceeded", **{"retry-after-ms": "2500"}), ok(video_json()))
    async with script.client() as api:
        await api.retrieve("video_1")
        assert api.gate.pauses == 1
    # The gate slept for the server's advice (2.5 s), not the default backoff.
    assert script.sleeps == [2.5]


async def test_retries_are_capped_then_the_error_is_raised() -> None:
    script = Script(*[err(502, "bad gateway")] * 4)
    async with script.client() as api:
        with pytest.raises(ServerError) as info:
            await api.retrieve("video_1")
    assert len(script.requests) == 4
    assert "retried" in str(info.value)


async def test_429_on_create_is_resent_because_the_server_refused_it() -> None:
    script = Script(err(429, **{"retry-after": "1"}), ok(video_json("video_9")))
    async with script.client() as api:
        video = await api.create(prompt="a cat")
    assert video.id == "video_9"
    assert [r.method for r in script.requests] == ["POST", "POST"]


async def test_rate_limit_headers_are_exposed() -> None:
    script = Script(ok(video_json(), **{"x-ratelimit-limit-requests": "25", "x-ratelimit-remaining-requests": "7",
                                        "x-ratelimit-reset-requests": "6m0s"}))
    async with script.client() as api:
        await api.retrieve("video_1")
        assert api.rate_limits.limit_requests == 25
        assert api.rate_limits.remaining_requests == 7
        assert api.rate_limits.reset_requests == "6m0s"


async def test_poll_after_header_is_read_on_retrieve() -> None:
    script = Script(ok(video_json(), **{"openai-poll-after-ms": "3000"}))
    async with script.client() as api:
        _video, hint = await api.poll("video_1")
    assert hint == 3.0


# ---------------------------------------------------------------- never pay twice
async def test_dropped_create_is_reconciled_not_resent() -> None:
    created = video_json("video_42", prompt="a cat", created_at=4_000_000_000)
    script = Script(
        httpx.ReadError("connection reset after the request was sent"),
        ok({"object": "list", "data": [created], "first_id": "video_42", "last_id": "video_42", "has_more": False}),
    )
    async with script.client() as api:
        video = await api.create(prompt="a cat")
        assert api.reconciled_creates == 1
    assert video.id == "video_42"
    assert [r.method for r in script.requests] == ["POST", "GET"]


async def test_reconciliation_skips_jobs_we_already_own() -> None:
    mine = video_json("video_1", prompt="a cat", created_at=4_000_000_000)
    page = {"object": "list", "data": [mine], "first_id": "video_1", "last_id": "video_1", "has_more": False}
    script = Script(httpx.ReadTimeout("timed out"), ok(page), ok(page), ok(video_json("video_2")))
    async with script.client() as api:
        video = await api.create(prompt="a cat", known_ids=frozenset({"video_1"}))
    # Not found after two looks: the server never got it, so it was sent again, once.
    assert video.id == "video_2"
    assert [r.method for r in script.requests] == ["POST", "GET", "GET", "POST"]


async def test_5xx_on_create_is_ambiguous_and_reconciled() -> None:
    created = video_json("video_7", prompt="a cat", created_at=4_000_000_000)
    page = {"object": "list", "data": [created], "first_id": "video_7", "last_id": "video_7", "has_more": False}
    script = Script(err(502, "upstream timed out"), ok(page))
    async with script.client() as api:
        video = await api.create(prompt="a cat")
    assert video.id == "video_7"
    assert [r.method for r in script.requests] == ["POST", "GET"]


def page(*videos: dict[str, Any], has_more: bool = False, last_id: str | None = None) -> dict[str, Any]:
    ids = [v["id"] for v in videos]
    return {"object": "list", "data": list(videos), "first_id": ids[0] if ids else None,
            "last_id": last_id if last_id is not None else (ids[-1] if ids else None), "has_more": has_more}


@pytest.mark.parametrize("list_failure", [err(404, "Not Found"), httpx.ReadTimeout("list timed out")])
async def test_a_lost_create_is_not_resent_when_the_list_cannot_be_read(list_failure: Any) -> None:
    """Before: a list that failed was taken for "not there" and the create sent again (6 creates for 1 job).
    Now the search proves nothing, and the create is ambiguous: raised, with when it left and the fix."""
    steps = [err(502, "upstream"), *([list_failure] * 4)]
    script = Script(*steps)
    async with script.client() as api:
        with pytest.raises(AmbiguousCreateError, match=r"sent at .* UTC.*could not be searched.*reconcile") as info:
            await api.create(prompt="a cat")
    assert [r.method for r in script.requests].count("POST") == 1
    assert info.value.sent_at is not None and info.value.reason == "HTTP 502" and info.value.problem


async def test_a_list_that_stops_before_the_window_proves_nothing() -> None:
    """A list that says "more" but whose cursor does not move on did not cover the window: no proof of absence."""
    stuck = ok(page(video_json("video_9", prompt="a dog"), has_more=True))
    script = Script(httpx.ReadError("reset"), stuck, stuck)
    async with script.client() as api:
        with pytest.raises(AmbiguousCreateError, match="cursor does not move on"):
            await api.create(prompt="a cat")
    assert [r.method for r in script.requests] == ["POST", "GET", "GET"]


async def test_ambiguous_creates_raise_leaves_the_decision_to_the_caller() -> None:
    script = Script(httpx.ReadError("reset"))
    async with script.client(ambiguous_creates="raise") as api:
        with pytest.raises(AmbiguousCreateError, match="answer was lost") as info:
            await api.create(prompt="a cat")
    assert [r.method for r in script.requests] == ["POST"] and info.value.problem is None


async def test_claimed_ids_are_read_when_the_search_decides() -> None:
    """``known_ids`` as a function: ids claimed while the search was under way are not adopted."""
    claimed: set[str] = set()

    def listing(request: httpx.Request) -> httpx.Response:
        claimed.add("video_1")  # a sibling claims it while the list is on its way
        return ok(page(video_json("video_1"), video_json("video_2")))

    script = Script(httpx.ReadError("reset"), listing)
    async with script.client() as api:
        video = await api.create(prompt="a cat", known_ids=lambda: claimed)
    assert video.id == "video_2"


def test_a_create_waits_longer_than_other_requests_by_default() -> None:
    """A create answered after 6 s must not be cut at 5 s: creates get their own, long read timeout."""
    api = ContractClient(base_url=BASE, timeout=5)
    assert api._create_timeout.read == DEFAULT_CREATE_TIMEOUT and api._http.timeout.read == 5
    assert ContractClient(base_url=BASE, timeout=5, create_timeout=2)._create_timeout.read == 2


async def test_connect_error_on_create_is_resent_since_nothing_left() -> None:
    script = Script(httpx.ConnectError("refused"), ok(video_json("video_3")))
    async with script.client() as api:
        video = await api.create(prompt="a cat")
    assert video.id == "video_3"
    assert [r.method for r in script.requests] == ["POST", "POST"]


async def test_list_pagination_walks_every_page() -> None:
    pages = [
        {"object": "list", "data": [video_json(f"video_{i}") for i in range(n, n + 2)], "first_id": f"video_{n}",
         "last_id": f"video_{n + 1}", "has_more": n < 4}
        for n in (0, 2, 4)
    ]
    script = Script(*[ok(p) for p in pages])
    async with script.client() as api:
        ids = [v.id async for v in api.iter_videos(page_size=2)]
    assert ids == [f"video_{i}" for i in range(6)]
    assert [r.url.params.get("after") for r in script.requests] == [None, "video_1", "video_3"]


# ---------------------------------------------------------------- downloads
def mp4_bytes(n: int = 200_000) -> bytes:
    return b"\x00\x00\x00\x18ftypmp42" + b"x" * n


async def test_download_streams_atomically_and_reports_progress(tmp_path: Path) -> None:
    body = mp4_bytes()
    script = Script(httpx.Response(200, content=body, headers={"content-type": "video/mp4"}))
    seen: list[tuple[int, int | None]] = []
    async with script.client() as api:
        path = await api.download("video_1", tmp_path / "out" / "v.mp4", on_progress=lambda d, t: seen.append((d, t)))
    assert path.read_bytes() == body
    assert seen[-1] == (len(body), len(body)) and len(seen) > 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["v.mp4"]  # no temp file left behind
    assert script.requests[0].url.params["variant"] == "video"


async def test_download_refuses_json_saved_as_mp4(tmp_path: Path) -> None:
    script = Script(ok({"error": {"message": "video not ready"}}))
    async with script.client() as api:
        with pytest.raises(DownloadError, match=r"instead of video data.*Fix"):
            await api.download("video_1", tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


async def test_truncated_download_is_retried_then_fails_clean(tmp_path: Path) -> None:
    def truncated(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 10, headers={"content-type": "video/mp4", "content-length": "100"})

    script = Script(*[truncated] * 4)
    async with script.client() as api:
        with pytest.raises(DownloadError, match="truncated"):
            await api.download("video_1", tmp_path / "v.mp4")
    assert len(script.requests) == 4
    assert list(tmp_path.iterdir()) == []


async def test_credentials_only_go_to_the_servers_own_origin(tmp_path: Path) -> None:
    body = mp4_bytes(10)
    script = Script(*[httpx.Response(200, content=body, headers={"content-type": "video/mp4"})] * 3)
    async with script.client() as api:
        await api.download_url("/v1/videos/video_1/content?index=0", tmp_path / "a.mp4")
        await api.download_url("https://cdn.example/v.mp4?se=2026&sig=abc", tmp_path / "b.mp4")
        await api.download_url("http://api.test/v1/files/x", tmp_path / "c.mp4")
    own, cdn, own_abs = script.requests
    assert own.url == "http://api.test/v1/videos/video_1/content?index=0"
    assert own.headers["authorization"] == f"Bearer {KEY}"
    assert "authorization" not in cdn.headers
    assert own_abs.headers["authorization"] == f"Bearer {KEY}"


# ---------------------------------------------------------------- secrets
async def test_key_never_appears_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sora_nb")
    echo = err(401, f"Incorrect API key provided: {KEY}. You can find your key at ...", code="invalid_api_key")
    script = Script(err(500), echo)
    async with script.client() as api:
        with pytest.raises(AuthenticationError) as info:
            await api.retrieve("video_1")
        assert KEY not in repr(api)
    assert KEY not in str(info.value)
    assert KEY not in json.dumps(info.value.body)
    assert "Check the API key" in str(info.value)
    assert caplog.records, "the client should log its requests"
    assert all(KEY not in r.getMessage() for r in caplog.records)


async def test_a_password_in_the_base_url_never_appears_in_errors_logs_or_reprs(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sora_nb")
    script = Script(err(500), err(404), err(404))
    api = ContractClient(base_url="http://alice:pa55word-1234@api.test/v1", transport=httpx.MockTransport(script),
                         sleep=script.sleep, clock=script.clock, retry=RetryPolicy(max_retries=1, jitter=0.0))
    async with api:
        with pytest.raises(NotFoundError) as retrieved:
            await api.retrieve("video_1")
        with pytest.raises(NotFoundError) as downloaded:
            await api.download_url("http://alice:pa55word-1234@cdn.test/v.mp4", Path("/nonexistent/v.mp4"))
    assert len(script.requests) == 3
    shown = [repr(api), str(retrieved.value), str(downloaded.value), *(r.getMessage() for r in caplog.records)]
    assert caplog.records and all("pa55word" not in text for text in shown), shown
    assert "alice:REDACTED@" in repr(api)


async def test_unreachable_server_gives_transport_error_with_fix() -> None:
    script = Script(*[httpx.ConnectError("refused")] * 4)
    async with script.client() as api:
        with pytest.raises(TransportError, match=r"cannot connect\. Fix: check base_url"):
            await api.retrieve("video_1")


async def test_rate_limit_error_carries_retry_after() -> None:
    script = Script(*[err(429, **{"retry-after": "7"})] * 4)
    async with script.client() as api:
        with pytest.raises(RateLimitError) as info:
            await api.retrieve("video_1")
    assert info.value.retry_after == 7.0
    assert info.value.status_code == 429


def _sweep_over_tcp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, middleware: Any, *, jobs: int, cap: int,
                    delete: bool = False) -> None:
    """A sweep of ``jobs`` at ``max_concurrency=cap`` against the simulator over loopback TCP, each HTTP request
    through ``middleware(scope, app_call)`` first; ``delete``: then every video deleted with ``job.delete()``."""
    import sora_nb
    from sora_nb.simulator import SimulatorConfig, _serve, start_server

    real_app = _serve.create_app

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        app = real_app(*args, **kwargs)

        async def call(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await app(scope, receive, send)
            return await middleware(scope, lambda: app(scope, receive, send))

        return call

    monkeypatch.setattr(_serve, "create_app", wrapped)
    with start_server(SimulatorConfig(seed=3, time_scale=0.002, distinct_renders=1)) as server:
        client = sora_nb.connect("openai-compatible", base_url=server.base_url, api_key="sk-test",
                                 run_root=tmp_path, max_concurrency=cap, measure=False,
                                 poll_policy=sora_nb.PollPolicy().scaled(0.002))
        with client:
            run = client.sweep(prompt=[f"a fox {i}" for i in range(jobs)]).start(max_concurrency=cap)
            assert run.wait(timeout=300).counts() == {"completed": jobs}
            if delete:
                for future in [job.delete() for job in run]:
                    future.result(timeout=60)


@pytest.mark.slow
def test_a_wide_sweep_over_tcp_keeps_its_connections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx's default pool keeps 20 idle connections of at most 100: a 200-job sweep opened a new TCP
    connection for most of its requests, and queued the rest in httpcore's pool, whose assignment is
    quadratic in the requests queued (a 10,000-job sweep over loopback: 7 jobs a second, the kernel's loop
    in httpcore). Counted at the server: the connections are those of the requests in flight, kept."""
    ports: set[int] = set()
    requests: list[int] = []

    async def counted(scope: Any, answer: Any) -> None:
        ports.add(scope["client"][1])  # one client port per TCP connection
        requests.append(1)
        await answer()

    jobs = 120
    _sweep_over_tcp(tmp_path, monkeypatch, counted, jobs=jobs, cap=jobs)
    assert len(requests) >= 4 * jobs  # create, polls, the video and its poster
    assert len(ports) <= 2 * jobs, (len(ports), len(requests))  # was one for each (480 of 480): 173 now


def _tcp_sockets() -> int:
    """This process's TCP sockets (a loop's own socketpair is not one)."""
    import contextlib
    import os

    held = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # (the listing's own descriptor, closed since)
            held.add(os.readlink(f"/proc/self/fd/{fd}").removeprefix("socket:[").rstrip("]"))
    tables = (Path(f"/proc/net/{name}").read_text().splitlines()[1:] for name in ("tcp", "tcp6"))
    return sum(1 for lines in tables for line in lines if line.split()[9] in held)  # (the socket's inode)


@pytest.mark.slow
def test_a_slow_server_gets_no_more_connections_than_the_cap_and_none_after_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's pool has no connection cap (the runner caps requests in flight), so a request the runner
    did not cap opened a connection of its own: ``job.delete()`` on each video of a run, against a server slow
    to answer, had every DELETE on the wire at once (a 10,000-video run: 10,000 sockets). Counted at the
    server: no more DELETEs at a time than max_concurrency, connections for generations, downloads and
    deletes only (max_concurrency each), and closing the client leaves no TCP socket open."""
    import asyncio

    ports: set[int] = set()
    deleting: list[int] = [0, 0]  # now, most

    async def slow(scope: Any, answer: Any) -> None:
        ports.add(scope["client"][1])  # one client port per TCP connection
        delete = scope["method"] == "DELETE"
        deleting[0] += delete
        deleting[1] = max(deleting)
        try:
            await asyncio.sleep(0.2 if delete else 0.02)  # each request holds its connection
            await answer()
        finally:
            deleting[0] -= delete

    before = _tcp_sockets()
    cap, jobs = 3, 12
    _sweep_over_tcp(tmp_path, monkeypatch, slow, jobs=jobs, cap=cap, delete=True)
    assert 1 <= deleting[1] <= cap, deleting  # was 12 of 12: every DELETE at once
    assert 1 <= len(ports) <= 3 * cap, ports  # was 12 (> 9)
    assert _tcp_sockets() == before
