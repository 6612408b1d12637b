"""Choosing and claiming work for a GPU worker, fairly between organizations.

``claim_job`` moves a job ``pending → running`` through ``job_transition`` (a conditional update:
a redelivered or duplicate message finds the job no longer pending and does nothing).
``next_job_id`` picks the next job: interactive before bulk, and within a priority the oldest job
of the organization that has the fewest images running now and was served least recently, so one
organization's backlog takes turns with everyone else's work instead of delaying it. A job waiting
out a retry backoff is left alone until its delayed message comes. Within the organization whose
turn it is, a job for the model the worker has warm (``warm``) goes before older jobs for other
models — model affinity, so a mixed backlog is run in runs of one model instead of switching
adapters every job — unless that organization's oldest job has waited
``EASEL_AFFINITY_MAX_WAIT_SECONDS``. ``claim_batch_mates`` fills a pipeline call with compatible
jobs (same ``batch_key``), taking each organization's in turn; ``gather_batch_mates`` keeps doing
so for a short bounded window while the batch is not full (dynamic batching).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Max, Min, Sum
from django.utils import timezone

from .models import GenerationJob, JobPriority, JobStatus
from .queues import in_lane
from .transitions import job_transition

# How far back "served least recently" looks; older service counts as never.
FAIR_SHARE_WINDOW = timedelta(hours=6)


def claim_job(*, job_id: object) -> GenerationJob | None:
    """Move one pending job to running; ``None`` unless this call made the change."""
    now = timezone.now()
    return job_transition(
        job_id=job_id,
        from_status=JobStatus.PENDING,
        to_status=JobStatus.RUNNING,
        attempts=F("attempts") + 1,
        started_at=now,
        lease_expires_at=now + timedelta(seconds=settings.EASEL_JOB_LEASE_SECONDS),
        progress=0.0,
    )


# (base_model_id, model_version_id): the pipeline a worker has warm.
WarmModel = tuple[Any, Any]


def model_of(job: GenerationJob) -> WarmModel:
    return (job.base_model_id, job.model_version_id)


def next_job_id(priorities: Sequence[str], *, lane: str = "", warm: WarmModel | None = None) -> Any:
    """The job to run next: the first priority with runnable work, and in it the oldest job of the
    organization with the fewest images running now, then the one served least recently — its
    oldest job for the ``warm`` model if it has one and its oldest job has not waited past the
    affinity bound. Only jobs of ``lane`` (``queues.in_lane``): a worker drains what its queues
    would bring it."""
    for priority in priorities:
        # attempts=0: a job waiting out its retry backoff runs when its delayed message says.
        runnable = GenerationJob.objects.filter(
            in_lane(lane), status=JobStatus.PENDING, priority=priority, attempts=0
        )
        oldest = dict(
            runnable.order_by()
            .values("organization_id")
            .annotate(oldest=Min("created_at"))
            .values_list("organization_id", "oldest")
        )
        if not oldest:
            continue
        org_id = min(oldest, key=_fair_order(priority, oldest))
        queue = runnable.filter(organization_id=org_id).order_by("created_at")
        bound = timedelta(seconds=settings.EASEL_AFFINITY_MAX_WAIT_SECONDS)
        if warm is not None and oldest[org_id] > timezone.now() - bound:
            base_model_id, model_version_id = warm
            same_model = (
                queue.filter(base_model_id=base_model_id, model_version_id=model_version_id)
                .values_list("id", flat=True)
                .first()
            )
            if same_model is not None:
                return same_model
        return queue.values_list("id", flat=True).first()
    return None


def _fair_order(priority: str, oldest: dict[int, datetime]) -> Any:
    org_ids = list(oldest)
    running = dict(
        GenerationJob.objects.filter(status=JobStatus.RUNNING, organization_id__in=org_ids)
        .order_by()
        .values("organization_id")
        .annotate(images=Sum("num_images"))
        .values_list("organization_id", "images")
    )
    served = dict(
        GenerationJob.objects.filter(
            organization_id__in=org_ids,
            priority=priority,
            started_at__gte=timezone.now() - FAIR_SHARE_WINDOW,
        )
        .order_by()
        .values("organization_id")
        .annotate(last=Max("started_at"))
        .values_list("organization_id", "last")
    )
    never = datetime.min.replace(tzinfo=timezone.get_current_timezone())
    return lambda org_id: (running.get(org_id, 0), served.get(org_id) or never, oldest[org_id])


def claim_batch_mates(*, leader: GenerationJob, max_images: int) -> list[GenerationJob]:
    """Claim pending jobs that can share ``leader``'s pipeline call: the oldest of each
    organization in turn, so a full batch is shared too."""
    budget = max_images - leader.num_images
    if budget <= 0 or leader.backend != "local":
        return []
    candidates = (
        GenerationJob.objects.filter(
            status=JobStatus.PENDING,
            priority=leader.priority,
            batch_key=leader.batch_key,
            backend="local",
            attempts=0,
            num_images__lte=budget,
        )
        .exclude(id=leader.id)
        .order_by("created_at")
        .values_list("id", "num_images", "organization_id")[: budget * 4]
    )
    per_org: dict[int, list[tuple[Any, int]]] = defaultdict(list)
    for job_id, num_images, org_id in candidates:
        per_org[org_id].append((job_id, num_images))
    turns = [per_org.pop(leader.organization_id, [])] + list(per_org.values())
    in_turn = [row for rows in _interleave(turns) for row in rows]
    mates: list[GenerationJob] = []
    for job_id, num_images in in_turn:
        if num_images > budget:
            continue
        mate = claim_job(job_id=job_id)
        if mate is not None:
            mates.append(mate)
            budget -= mate.num_images
        if budget <= 0:
            break
    return mates


def gather_batch_mates(
    *, leader: GenerationJob, mates: list[GenerationJob], max_images: int
) -> list[GenerationJob]:
    """Wait up to the priority's batching window (``EASEL_BATCH_WINDOW_MS``, bulk:
    ``EASEL_BULK_BATCH_WINDOW_MS``) for more compatible jobs while the batch has room, claiming
    them as they arrive; returns the mates claimed meanwhile. A full batch, or a window of 0,
    starts at once, so a lone job is never delayed by more than the window."""
    window_ms = (
        settings.EASEL_BULK_BATCH_WINDOW_MS
        if leader.priority == JobPriority.BULK
        else settings.EASEL_BATCH_WINDOW_MS
    )
    if window_ms <= 0 or leader.backend != "local":
        return []
    deadline = time.monotonic() + window_ms / 1000.0
    poll = max(window_ms / 5000.0, 0.001)
    room = max_images - leader.num_images - sum(mate.num_images for mate in mates)
    more: list[GenerationJob] = []
    while room > 0 and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(poll, left))
        arrived = claim_batch_mates(leader=leader, max_images=leader.num_images + room)
        more += arrived
        room -= sum(mate.num_images for mate in arrived)
    return more


def _interleave(queues: list[list[Any]]) -> Iterator[list[Any]]:
    """One item of each queue in turn: [[a1, a2], [b1]] → [a1], [b1], [a2]."""
    depth = max((len(q) for q in queues), default=0)
    for i in range(depth):
        yield [q[i] for q in queues if i < len(q)]
