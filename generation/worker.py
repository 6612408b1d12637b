"""The GPU worker's work for one task: run fair batches of jobs until the task's own job has been
taken, isolating failures so that one job's fault never fails another's.

A message is a signal that there is work, not an order to run its own job first: the task runs the
job ``scheduling.next_job_id`` picks and the batch-mates ``claim_batch_mates`` adds, goes on until
its own job has been taken (by it or another worker), then keeps draining for up to
``EASEL_WORKER_DRAIN_SECONDS`` so a busy worker does not idle between messages.

Failure isolation. A batch may hold several organizations' jobs. When its pipeline call raises,
the batch is split in halves and each half run again, down to single jobs, so only the job at fault
fails and every error message is the failing job's own. Out of memory retries the same way, and a
lone job that still does not fit makes its images in smaller calls.

Cancel in a batch. The step callback stops the pipeline call only when every job of the batch has
asked to be canceled; otherwise the call finishes and the canceled jobs' images are dropped (not
stored, quota released), so one person's cancel never costs the others their images.

Shutdown. On SIGTERM (Celery's warm shutdown, ``worker_shutting_down``) the task finishes the
batch in hand and claims nothing more; if its own job was still waiting, its message is sent
again for another worker, since the task's own is acknowledged when it returns.

Batch formation. A batch that is not full waits a bounded window (``EASEL_BATCH_WINDOW_MS``,
bulk ``EASEL_BULK_BATCH_WINDOW_MS``) for compatible jobs still arriving, as Triton's dynamic
batcher does, so requests sent one by one share calls while a lone interactive job is delayed by
at most the window. Model affinity: the next job is taken for the model the process has warm when
the organization whose turn it is has one (``scheduling.next_job_id``), so a backlog over many
LoRA versions switches adapters once per run of a version instead of once per job.

Lanes. A task drains only jobs of its own job's lane (``queues``): a worker whose queues carry
one GPU class never takes another class's work from the database.

The parts: ``scheduling`` (choose and claim), ``running`` (pipelines, inference, hosted calls),
``finishing`` (store, succeed, fail or retry), ``transitions`` (the one status change), ``leases``
(the heartbeat that keeps a claim's leases while it runs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from celery.signals import worker_shutting_down
from django.conf import settings

from tenants.logcontext import log_context_bind

from .finishing import fail_or_retry, finish_batch, finish_canceled
from .leases import lease_heartbeat
from .models import GenerationJob, JobPriority, JobStatus
from .queues import lane_of
from .running import generate, is_out_of_memory, release_accelerator_memory
from .scheduling import (
    WarmModel,
    claim_batch_mates,
    claim_job,
    gather_batch_mates,
    model_of,
    next_job_id,
)

logger = logging.getLogger(__name__)

# Set in the worker's main process when a warm shutdown begins; the solo pool runs tasks there.
shutting_down = threading.Event()
# The model of the last batch this process ran: the pipeline (and adapter) it has warm.
_warm: WarmModel | None = None


@worker_shutting_down.connect
def _stop_draining(**_: object) -> None:
    shutting_down.set()


def generation_run(*, job_id: object) -> list[GenerationJob]:
    """Run fair batches until the job ``job_id`` has been taken, then keep draining pending work
    for up to ``EASEL_WORKER_DRAIN_SECONDS``. Returns the jobs this call ran (maybe none).

    An interactive task runs interactive jobs only; a bulk task runs pending interactive jobs
    first, then bulk ones. A job on a retry (``attempts > 0``) is run at once: its message was
    delayed by the backoff and says now.
    """
    job = (
        GenerationJob.objects.filter(id=job_id)
        .only("status", "priority", "attempts", "params")
        .first()
    )
    if job is None or job.status != JobStatus.PENDING:
        return []
    lane = lane_of(job.params.get("family"))
    deadline = time.monotonic() + float(settings.EASEL_WORKER_DRAIN_SECONDS)
    priorities = [JobPriority.INTERACTIVE]
    if job.priority == JobPriority.BULK:
        priorities.append(JobPriority.BULK)
    ran: list[GenerationJob] = []
    if job.attempts > 0:
        ran += _run_from(job_id)
    lost_race = None
    while not shutting_down.is_set() and (
        _still_waiting(job_id, attempts=job.attempts) or time.monotonic() < deadline
    ):
        next_id = next_job_id(priorities, lane=lane, warm=_warm)
        if next_id is None or next_id == lost_race:
            break
        batch = _run_from(next_id)
        lost_race = None if batch else next_id  # another worker claimed it between pick and claim
        ran += batch
    if shutting_down.is_set() and _still_waiting(job_id, attempts=job.attempts):
        from .tasks import enqueue_generation

        enqueue_generation(job=job)
    return ran


def _still_waiting(job_id: object, *, attempts: int) -> bool:
    return GenerationJob.objects.filter(
        id=job_id, status=JobStatus.PENDING, attempts=attempts
    ).exists()


def _run_from(job_id: object) -> list[GenerationJob]:
    global _warm
    leader = claim_job(job_id=job_id)
    if leader is None:
        return []
    log_context_bind(job_id=leader.id, organization=leader.organization.slug)
    with lease_heartbeat([leader.id]) as beat:
        mates = claim_batch_mates(leader=leader, max_images=_batch_size())
        beat.job_ids.extend(mate.id for mate in mates)
        late = gather_batch_mates(leader=leader, mates=mates, max_images=_batch_size())
        beat.job_ids.extend(mate.id for mate in late)
        _warm = model_of(leader)
        return run_claimed_batch([leader, *mates, *late])


def _batch_size() -> int:
    return max(1, int(settings.EASEL_BATCH_SIZE))


def run_claimed_batch(jobs: Sequence[GenerationJob]) -> list[GenerationJob]:
    """Run already-claimed jobs that share a batch key; finish each of them one way or another.

    A failing call is split in halves until the job at fault runs alone, so that only it fails and
    only with its own error.
    """
    from .engine.inference import InferenceCanceled

    try:
        outputs, seconds = generate(jobs)
    except InferenceCanceled:
        for job in jobs:
            finish_canceled(job)
        return list(jobs)
    except Exception as exc:
        if len(jobs) > 1:
            logger.warning(
                "a batch of %d jobs failed (%s); running it in halves to isolate the job at fault",
                len(jobs),
                type(exc).__name__,
            )
            release_accelerator_memory(exc)
            half = len(jobs) // 2
            return run_claimed_batch(jobs[:half]) + run_claimed_batch(jobs[half:])
        return _run_alone_after_failure(jobs[0], exc)
    finish_batch(jobs, outputs, seconds)
    return list(jobs)


def _run_alone_after_failure(job: GenerationJob, exc: BaseException) -> list[GenerationJob]:
    """A lone job whose call failed: if it ran out of memory, make its images in smaller calls;
    otherwise (or when one image at a time does not fit either) fail or retry it."""
    from .engine.inference import InferenceCanceled

    per_call = job.num_images
    while is_out_of_memory(exc) and per_call > 1 and job.backend == "local":
        release_accelerator_memory(exc)
        per_call = (per_call + 1) // 2
        logger.warning("job %s ran out of memory; retrying %d image(s) a call", job.id, per_call)
        try:
            outputs, seconds = generate([job], images_per_call=per_call)
        except InferenceCanceled:
            finish_canceled(job)
            return [job]
        except Exception as again:
            exc = again
            continue
        finish_batch([job], outputs, seconds, images_per_call=per_call)
        return [job]
    logger.error("generation job %s failed", job.id, exc_info=exc)
    fail_or_retry(job, exc)
    return [job]
