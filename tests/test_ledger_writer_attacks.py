"""Attacks on the ledger's writer thread as the runner uses it (``Ledger.update_job_soon``, ``Runner._commit``):
no create leaves before its "sending" row is committed, the writes of one job in one commit keep their
order, and closing commits what was handed over and leaves no writer thread behind."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support import FAST

import sora_nb
from sora_nb._ledger import Ledger
from sora_nb.simulator import SimulatorConfig, SimulatorTransport


class CheckingCreates(SimulatorTransport):
    """At each create that reaches the server, reads the run's ledger from its own connection (as a new
    process would after a SIGKILL at that instant) and notes the row of the job being created."""

    def __init__(self) -> None:
        super().__init__(SimulatorConfig(seed=3, time_scale=FAST))
        self.run_dir: Path | None = None
        self.seen: list[tuple[str, str | None]] = []  # (prompt, its row's create_state when the create arrived)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/videos") and self.run_dir is not None:
            prompt = json.loads(request.read())["prompt"]
            with Ledger.open(self.run_dir, readonly=True) as reader:
                states = [r.create_state for r in reader.jobs() if r.spec.prompt == prompt]
            self.seen.append((prompt, states[0] if len(states) == 1 else f"rows: {states}"))
        return await super().handle_async_request(request)


def test_every_create_arrives_with_its_sending_row_already_committed(tmp_path: Path) -> None:
    transport = CheckingCreates()
    prompts = [f"a committed row, scene {i}" for i in range(12)]
    with sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path, transport=transport,
                         max_concurrency=12) as client:
        run = client.sweep(prompt=prompts).start(max_concurrency=12)
        transport.run_dir = run.run_dir
        run.wait(timeout=60)
        assert run.counts() == {"completed": len(prompts)}
    assert len(transport.audit()) == len(prompts)  # one create per job
    # Creates that arrived before the test learnt the run_dir are not checked; most are.
    assert transport.seen and all(state == "sending" for _, state in transport.seen), transport.seen


def test_writes_of_one_job_in_one_commit_end_with_the_last_one(tmp_path: Path) -> None:
    # Attack: a job's transitions queued together (one batch) must be applied in the order they came,
    # or a later status (completed) is overwritten by an earlier one (in_progress) and resume re-polls.
    from sora_nb._ledger import JobRecord
    from sora_nb._types import JobSpec

    with Ledger.create(tmp_path / "run", meta={}) as ledger:
        ledger.add_jobs([JobRecord(f"j{i:04d}-abcd", i, JobSpec(f"scene {i}", "sora-2", "1280x720", "4"))
                         for i in (1, 2)])
        with ledger._queue_lock:  # the writer cannot take any of them until all wait: one commit
            futures = [
                ledger.update_job_soon(job_id, status=status, progress=progress)
                for status, progress in (("queued", 0), ("in_progress", 40), ("completed", 100))
                for job_id in ("j0001-abcd", "j0002-abcd")
            ]
        for future in futures:
            future.result(timeout=10)
        assert [(r.status, r.progress) for r in ledger.jobs()] == [("completed", 100)] * 2


def test_closing_the_client_leaves_no_ledger_writer_running(tmp_path: Path) -> None:
    with sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path) as client:
        run = client.sweep(prompt=["a closed writer"]).start()
        ledger = client._runner.ledger_of(run)
        assert ledger is not None
        run.wait(timeout=60)
        # Writes handed over just before close, still queued when it comes: each must be committed, and
        # the thread that commits them gone once close returns.
        client._runner.runtime.run(_hand_over_many(client, run), timeout=30)
    assert ledger._writer is None
    assert not [t for t in threading.enumerate() if t.name == "sora_nb-worker-ledger" and t.ident == writer_ident]
    with Ledger.open(run.run_dir, readonly=True) as reader:
        assert reader.jobs()[0].polls == 1999


async def _hand_over_many(client: sora_nb.Client, run: sora_nb.Run) -> None:
    global writer_ident
    for polls in range(1000, 2000):
        assert client._runner._hand_over(run.jobs[0], False, {"polls": polls}) is not None
    ledger = client._runner.ledger_of(run)
    assert ledger is not None and ledger._writer is not None
    writer_ident = ledger._writer.ident


writer_ident: int | None = None


class HeldCreates(SimulatorTransport):
    """Holds each create at the server until the test says ``go``; ``arrived`` is set when one is there."""

    def __init__(self) -> None:
        super().__init__(SimulatorConfig(seed=4, time_scale=FAST))
        self.arrived, self.go = threading.Event(), threading.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/videos"):
            self.arrived.set()
            while not self.go.is_set():
                await asyncio.sleep(0.005)
        return response


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.002)


def _close_while_the_answer_waits_for_the_disk(
    tmp_path: Path, prompt: str, *, cancel_first: bool
) -> tuple[HeldCreates, sora_nb.Run]:
    """Run one job whose create's answer comes while its ledger write waits behind a commit that does not
    end (a slow disk), and close the client then (``cancel_first``: the user cancelled the job while its
    create was on the wire). Returns the server and the run, once closed."""
    transport = HeldCreates()
    client = sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path, transport=transport)
    try:
        run = client.sweep(prompt=[prompt]).start()
        job = run.jobs[0]
        ledger = client._runner.ledger_of(run)
        assert ledger is not None and transport.arrived.wait(30)
        closer = threading.Thread(target=client.close)
        with ledger._lock:  # the commit that does not end
            ledger.update_job_soon(job.id, polls=0, durable=False)  # what the writer is busy with
            _until(lambda: not ledger._queue, "the writer took the first write")
            if cancel_first:
                job.cancel()
                _until(lambda: bool(client._runner._answering), "the cancel waits for the create's answer")
            transport.go.set()
            _until(lambda: len(ledger._queue) == 1, "the answer's write waits in the queue")
            closer.start()
            _until(lambda: job.done, "close cancelled the job's task")
        closer.join(timeout=30)
        assert not closer.is_alive()
    finally:
        client.close()
    return transport, run


def test_a_create_answer_whose_write_waits_when_the_client_closes_is_in_the_ledger(tmp_path: Path) -> None:
    # Attack: the client is closed (its tasks cancelled) while the write of a create's answer (the remote id)
    # waits behind a slow commit. The write must still be made: lost, the row says "sending" and resume
    # has to search for a video the server made (ambiguous where it cannot search: never sent again).
    transport, run = _close_while_the_answer_waits_for_the_disk(tmp_path, "written after close", cancel_first=False)
    (created,) = transport.audit()
    with Ledger.open(run.run_dir, readonly=True) as reader:
        row = reader.jobs()[0]
    assert (row.create_state, row.remote_id) == ("acked", created["id"])


@pytest.mark.slow  # close waits 2 s for the answer before it gives up
def test_a_job_cancelled_on_the_wire_whose_answer_waits_for_the_disk_at_close_is_deleted_on_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Attack: the user cancels while the create is on the wire, the answer comes, its write waits behind a
    # slow commit, and the client closes: close's wait for the answer runs out and cancels the task. The
    # job the create made must still be deleted on the server (its id is known), not left running, billed.
    monkeypatch.setattr("sora_nb._runner.DELETE_ON_CLOSE_TIMEOUT", 2.0)
    transport, _run = _close_while_the_answer_waits_for_the_disk(tmp_path, "cancelled, then closed", cancel_first=True)
    (created,) = transport.audit()
    with (sora_nb.connect("simulator", time_scale=FAST, run_root=tmp_path, transport=transport) as checker,
          pytest.raises(sora_nb.NotFoundError)):  # deleted, not left running and billed
        checker._runtime.run(checker.api.retrieve(created["id"]), timeout=10)


def test_a_read_does_not_wait_for_the_writer_threads_commit_and_sees_only_what_is_committed(tmp_path: Path) -> None:
    """Attack: the writer thread holds a commit open (a slow disk's sync: here it waits for the test). A
    widget's redraw reads the run's scores on the kernel's loop meanwhile: it must not wait for that commit
    (before: it queued behind the writer's lock, the loop stalled for as long as the disk took), and it sees
    the ledger as committed, never half a transaction."""
    from sora_nb._judging import read_scores, store_metric_soon

    ledger = Ledger.create(tmp_path / "run", meta={})
    store_metric_soon(ledger, "c1", "first", "1", 1.0).result(timeout=30)
    in_commit, finish = threading.Event(), threading.Event()

    def slow(conn: object) -> None:
        in_commit.set()
        finish.wait(30)

    stored = store_metric_soon(ledger, "c2", "second", "1", 2.0)
    held = ledger.write_soon(slow)
    try:
        assert in_commit.wait(30)
        seen: list[object] = []
        reader = threading.Thread(target=lambda: seen.append(read_scores(ledger)))
        reader.start()
        reader.join(10)
        assert not reader.is_alive(), "a read waited for the writer thread's commit"
        assert set(seen[0].metrics) == {"c1"}  # type: ignore[attr-defined]  # c2's commit is not done
    finally:
        finish.set()
        held.result(timeout=30)
    stored.result(timeout=30)
    assert set(read_scores(ledger).metrics) == {"c1", "c2"}
    ledger.close()
