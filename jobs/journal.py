"""The on-disk journal: one JSON file per job, written atomically.

A job is journaled before its first request leaves the machine and at every change after, so a
crash or a restart never loses a job the artist paid for. One file per job keeps each write
small and lets the main thread and workers write different jobs without contention.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..formats.atomic import write_atomic
from .job import Job, State

log = logging.getLogger(__name__)


class Journal:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, job_id: str) -> Path:
        if not job_id.isalnum():  # job ids are ours (hex); refuse anything path-like
            raise ValueError(f"bad job id {job_id!r}")
        return self.root / f"{job_id}.json"

    def exchanges_path(self, job_id: str) -> Path:
        """The job's redacted exchange log (net/exchanges.py), beside the journal, never in a
        .blend; it goes when the job's entry goes."""
        self._path(job_id)  # the same check of the id
        return self.root / "exchanges" / f"{job_id}.jsonl"

    def write(self, job: Job, durable: bool = True) -> None:
        """Atomically replace the job's entry. The rename alone survives a crashed Blender;
        `durable` also fsyncs (power loss), which workers do and the main thread skips (it
        costs milliseconds the UI cannot spare)."""
        data = json.dumps(job.to_dict(), indent=1, sort_keys=True)
        # No lock: every write has its own temporary file and the rename is atomic, so writers
        # of different jobs never wait for each other (a worker's fsync must not stall the
        # main thread's write of another job).
        write_atomic(self._path(job.id), data, durable=durable, mode=None)

    def load(self, job_id: str) -> Job | None:
        path = self._path(job_id)
        try:
            text = path.read_text(encoding="utf-8")
            return Job.from_dict(json.loads(text))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("journal entry %s unreadable: %s", job_id, exc)
            return None

    def all(self) -> list[Job]:
        jobs: list[Job] = []
        if not self.root.is_dir():
            return jobs
        for path in sorted(self.root.glob("*.json")):
            job = self.load(path.stem)
            if job is not None:
                jobs.append(job)
        return sorted(jobs, key=lambda j: j.created)

    def unfinished(self) -> list[Job]:
        return [j for j in self.all() if not j.state.terminal]

    def orphans(self, me: int) -> list[Job]:
        """Unfinished jobs of unsaved files whose Blender is gone: no file will ever resume
        them, so the next Blender adopts them rather than lose what was paid for."""
        return [j for j in self.unfinished()
                if not j.blend_file and j.owner_pid != me and not _alive(j.owner_pid)]

    def remove(self, job_id: str) -> None:
        for path in (self._path(job_id), self.exchanges_path(job_id)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def prune(self, keep_seconds: float, now: float) -> int:
        """Drop finished entries older than `keep_seconds`; unfinished ones are never dropped."""
        dropped = 0
        for job in self.all():
            if job.state in (State.APPLIED, State.CANCELED, State.FAILED) and (
                now - job.updated > keep_seconds
            ):
                self.remove(job.id)
                dropped += 1
        return dropped


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
