"""The audit of a run: its ledger held against the server's own list, the user's answer to "did I pay twice?".

The server's list is read back to the run's start (less the clock skew allowed). Jobs there that match one of
the run's requests and that no row claims are **orphans**: paid for, never recorded (a create whose answer
was lost and never reconciled, a second process, an older sora_nb). Rows whose remote job the server no
longer knows are **missing** (deleted, or expired). A remote id held by two rows is a **duplicate** (ledgers
written before remote ids were unique). **Ambiguous** jobs are listed with the fix (``run.reconcile()``).
Where a service cannot list jobs, the report says what it could not check instead of claiming all is well.

Orphans are matched on the request (prompt, model, size, seconds). A job that another run under the same
root claims is not one (the same cell run twice makes matching jobs a minute apart); one with the same
request made in the same window by someone else on the same account is reported: check before deleting.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import NotFoundError, SoraError, UnsupportedOperationError
from ._runs import claimed_by_other_runs
from ._search import CLOCK_SKEW, matches
from ._styles import apply_style
from ._types import Video

if TYPE_CHECKING:
    from ._ledger import JobRecord
    from ._run import Run
    from ._runner import Runner

__all__ = ["AuditReport", "audit_run"]

DELETE_TIMEOUT = 300.0


@dataclass
class AuditReport:
    """What ``run.audit()`` found: the ledger against the server's list over the run's time window.

    Attributes:
        run_id, run_dir: the run audited.
        service: the profile's name.
        since: unix time the server's list was read back to.
        listed: the server's list was read over the whole window (orphans are then proven absent or found).
        cannot_check: what could not be checked, and why (``None`` when everything was).
        orphans: jobs on the server matching the run's requests that no job of the run claims.
        missing: ``(job_id, remote_id)`` of jobs whose remote job the server no longer knows.
        duplicates: ``(remote_id, [job_id, ...])`` for remote ids that several jobs hold.
        ambiguous: ids of jobs whose create's fate is unknown (``run.reconcile()`` looks again).
        claimed: how many remote ids the run's jobs hold.

    >>> from pathlib import Path
    >>> AuditReport("r1", Path("runs/r1"), "simulator", 0.0, listed=True, claimed=3).ok
    True
    """

    run_id: str
    run_dir: Path
    service: str
    since: float
    listed: bool
    cannot_check: str | None = None
    orphans: list[Video] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, list[str]]] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    claimed: int = 0
    _runner: Runner | None = field(default=None, repr=False, compare=False)
    _list_untrusted: bool = field(default=False, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when everything was checked and nothing is wrong: no orphan, missing, duplicate or ambiguous job."""
        return self.listed and not (self.orphans or self.missing or self.duplicates or self.ambiguous)

    def lines(self) -> list[str]:
        """The report as lines of text (``str(report)`` joins them)."""
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        head = f"audit of run {self.run_id} on {self.service} (server jobs since {since}): "
        out = [head + ("all clear" if self.ok else "PROBLEMS" if self.problems else "not fully checked")]
        out.append(f"  {self.claimed} remote job(s) claimed by the run's jobs")
        if self.orphans:
            out.append(f"  {len(self.orphans)} orphan(s): made on the server, claimed by no job (paid, not recorded):")
            out += [f"    {v.id}  {v.status}  {(v.prompt or '')[:50]!r}" for v in self.orphans]
            out.append("    Fix: report.delete_orphans() (sora-nb audit RUN_DIR --delete-orphans) if they are not yours"
                       " to keep" if self._can_delete else "    Fix: delete them in the service's dashboard")
        if self.missing:
            out.append(f"  {len(self.missing)} job(s) whose remote job is gone (deleted or expired):")
            out += [f"    {job_id} -> {remote_id}" for job_id, remote_id in self.missing]
        if self.duplicates:
            out.append(f"  {len(self.duplicates)} remote id(s) held by several jobs (one video shown twice):")
            out += [f"    {remote_id}: {', '.join(jobs)}" for remote_id, jobs in self.duplicates]
        if self.ambiguous:
            out.append(f"  {len(self.ambiguous)} ambiguous job(s), created or not: {', '.join(self.ambiguous)}. "
                       "Fix: run.reconcile() (sora-nb resume RUN_DIR) once the server can be searched")
        if self.cannot_check:
            out.append(f"  not checked: {self.cannot_check}")
        return out

    @property
    def problems(self) -> int:
        """How many findings need the user's attention."""
        return len(self.orphans) + len(self.missing) + len(self.duplicates) + len(self.ambiguous)

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        return (
            f"<AuditReport {self.run_id} {'ok' if self.ok else 'not ok'}: {len(self.orphans)} orphans, "
            f"{len(self.missing)} missing, {len(self.duplicates)} duplicates, {len(self.ambiguous)} ambiguous"
            f"{'' if self.listed else ', list not checked'}>"
        )

    def _repr_html_(self) -> str:
        lines = self.lines()
        colour = "#2e7d32" if self.ok else "#c62828" if self.problems else "#ef6c00"
        body = "".join(f"<div style='white-space:pre'>{html.escape(line)}</div>" for line in lines[1:])
        return (f"<div class='sora-nb-audit'><b style='color:{colour}'>{html.escape(lines[0])}</b>"
                f"<div style='font-family:monospace;font-size:12px'>{body}</div></div>")

    @property
    def _can_delete(self) -> bool:
        return self._runner is not None and self._runner.profile.capabilities.supports_delete

    def delete_orphans(self, timeout: float | None = DELETE_TIMEOUT) -> list[str]:
        """Delete the orphans on the server (where the service allows it); returns the ids deleted.

        Raises:
            UnsupportedOperationError: the service cannot delete jobs (delete them in its dashboard).

        >>> report = run.audit()  # doctest: +SKIP
        >>> report.delete_orphans()  # doctest: +SKIP
        ['video_68d2...']
        """
        runner = self._runner
        if runner is None or not runner.profile.capabilities.supports_delete:
            raise UnsupportedOperationError(
                f"{self.service} cannot delete jobs through its API; nothing was deleted. "
                "Fix: delete the orphans listed in the report in the service's dashboard."
            )
        if self._list_untrusted:
            raise SoraError(
                f"{self.cannot_check}; nothing was deleted, since the run's own videos could be among them. "
                "Fix: delete orphans in the service's dashboard, or connect to the service itself, not the gateway."
            )
        ids = [video.id for video in self.orphans]

        async def delete_all() -> list[str]:
            deleted = []
            for remote_id in ids:
                await runner.api.delete(remote_id)
                deleted.append(remote_id)
            return deleted

        deleted = runner.runtime.run(delete_all(), timeout=timeout)
        self.orphans = [video for video in self.orphans if video.id not in deleted]
        return deleted


def _request(record: JobRecord) -> dict[str, Any]:
    """What a job's create asked for, as the server's list shows it (see ``_search.matches``)."""
    spec = record.spec
    prompt = apply_style(spec.prompt, spec.style)
    if spec.kind == "remix":
        return {"prompt": prompt, "remixed_from_video_id": spec.parent_id}
    if spec.kind != "create":
        return {"prompt": prompt}
    return {"prompt": prompt, "model": spec.model, "size": spec.size, "seconds": spec.seconds}


def _window_start(run: Run, records: Iterable[JobRecord]) -> float:
    times = [r.submitted_at for r in records if r.submitted_at is not None]
    created = run.meta.get("created_at")
    if isinstance(created, (int, float)):
        times.append(float(created))
    return min(times, default=time.time())


async def audit_run(runner: Runner, run: Run) -> AuditReport:
    """Build the :class:`AuditReport` of ``run`` (on the runner's loop)."""
    records = [job._record for job in run.jobs]
    claims: dict[str, list[str]] = {}
    for record in records:
        if record.remote_id:
            claims.setdefault(record.remote_id, []).append(record.job_id)
    report = AuditReport(
        run_id=run.id,
        run_dir=run.run_dir,
        service=runner.profile.name,
        since=_window_start(run, records) - CLOCK_SKEW,
        listed=False,
        duplicates=[(remote_id, jobs) for remote_id, jobs in claims.items() if len(jobs) > 1],
        ambiguous=[record.job_id for record in records if record.status == "ambiguous"],
        claimed=len(claims),
        _runner=runner,
    )
    seen: set[str] = set()
    if runner.profile.capabilities.supports_list:
        search = await runner.api.search_created({}, since=report.since + CLOCK_SKEW)
        seen = {video.id for video in search.found}
        requests = [_request(record) for record in records]
        theirs = claimed_by_other_runs(run.run_dir)
        report.orphans = [
            video for video in search.found
            if video.id not in claims and video.id not in theirs and any(matches(video, r) for r in requests)
        ]
        report.listed = search.covered
        if not search.covered:
            report.cannot_check = f"the server's list could not be read over the run's window ({search.problem})"
    else:
        where = f" ({runner.profile.dashboard_url})" if runner.profile.dashboard_url else ""
        report.cannot_check = (
            f"{runner.profile.name} has no way to list jobs, so jobs made by creates whose answer was lost "
            f"(orphans, paid but not recorded) cannot be found from here. Check the service's dashboard{where}."
        )
    unknown: list[str] = []
    for remote_id, jobs in claims.items():
        if remote_id in seen:
            continue
        try:
            await runner.api.retrieve(remote_id)
        except NotFoundError:
            report.missing.append((jobs[0], remote_id))
        except SoraError as exc:
            unknown.append(f"{remote_id} ({type(exc).__name__})")
    if unknown:
        gone = f"could not ask the server about {len(unknown)} remote job(s): {', '.join(unknown[:5])}"
        report.cannot_check = f"{report.cannot_check}; {gone}" if report.cannot_check else gone
        report.listed = False
    unlisted = [rid for rid in claims if rid not in seen and rid not in {r for _, r in report.missing}]
    if report.listed and unlisted:
        # The server knows these jobs but its list shows them under other ids (a gateway that rewrites them)
        # or not at all: its "orphans" may be the run's own videos, which deleting them would destroy.
        report.listed, report._list_untrusted = False, True
        report.cannot_check = (
            f"the server's list does not show {len(unlisted)} of the run's own {len(claims)} job(s) by their ids "
            f"(e.g. {unlisted[0]}): a gateway that rewrites ids? Its orphans cannot be told from the run's own jobs"
        )
    return report
