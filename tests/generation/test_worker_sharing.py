"""Workers shared between organizations: a failing batch fails only the job at fault, out of memory
retries with smaller calls, and pending work takes turns between organizations.

The pipeline is the real tiny one; where a test needs a failure, ``local_pipeline.fail_when`` makes
the pipeline call raise as a GPU or tokenizer would, before any work (the boundary, not the worker).
"""

from __future__ import annotations

import pytest

from generation import services, worker
from generation.models import GenerationJob, JobPriority, JobStatus
from tenants.models import AuditEvent, UsageRecord

BASE = {"model": "tiny", "steps": 2}

pytestmark = pytest.mark.usefixtures("enqueued")


@pytest.fixture
def submit(tiny_base_model):  # type: ignore[no-untyped-def]
    def make(persona, prompt: str, priority: str = JobPriority.INTERACTIVE, **extra):  # type: ignore[no-untyped-def]
        data = BASE | {"prompt": prompt, "seed": 1} | extra
        return services.generation_job_create(actor=persona.principal, data=data, priority=priority)

    return make


def _fresh(job: GenerationJob) -> GenerationJob:
    return GenerationJob.objects.get(pk=job.pk)


def test_a_failing_job_in_a_shared_batch_fails_alone_with_only_its_own_error(
    submit, owner, outsider, local_pipeline
):
    ours = submit(owner, "a red apple")
    theirs_bad = submit(outsider, "a secret-launch blue box")
    theirs_ok = submit(outsider, "a green pear")
    faulty = local_pipeline.fail_when(
        lambda prompts: (
            ValueError(f"cannot encode {prompts!r}")
            if any("secret-launch" in p for p in prompts)
            else None
        )
    )
    worker.generation_run(job_id=ours.id)
    ours, theirs_bad, theirs_ok = map(_fresh, (ours, theirs_bad, theirs_ok))
    assert faulty.calls[0] == ["a red apple", "a secret-launch blue box", "a green pear"]
    assert ours.status == theirs_ok.status == JobStatus.SUCCEEDED
    assert ours.images.count() == theirs_ok.images.count() == 1
    assert theirs_bad.status == JobStatus.FAILED and theirs_bad.error_code == "invalid_parameters"
    assert theirs_bad.error_message.startswith("cannot encode ['a secret-launch blue box']")
    for job in (ours, theirs_ok):
        assert job.error_message == "" and job.error_code == ""
    # Our organization's records never mention their prompt.
    our_audit = AuditEvent.objects.filter(organization=owner.org).values_list("after", flat=True)
    assert "secret-launch" not in repr(list(our_audit))
    assert {r.state for r in UsageRecord.objects.filter(reference=ours.quota_reference)} == {
        "settled"
    }
    assert {r.state for r in UsageRecord.objects.filter(reference=theirs_bad.quota_reference)} == {
        "released"
    }


def test_out_of_memory_retries_with_smaller_batches_until_every_job_fits(
    submit, owner, outsider, local_pipeline, settings
):
    import torch

    settings.EASEL_BATCH_SIZE = 8
    jobs = [submit(owner, f"a red apple {i}") for i in range(2)]
    jobs += [submit(outsider, "a blue box", num_images=3), submit(outsider, "a green pear")]
    faulty = local_pipeline.fail_when(
        lambda prompts: (
            torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
            if len(prompts) > 2
            else None
        )
    )
    worker.generation_run(job_id=jobs[0].id)
    jobs = [_fresh(job) for job in jobs]
    assert [job.status for job in jobs] == [JobStatus.SUCCEEDED] * 4
    assert [job.images.count() for job in jobs] == [1, 1, 3, 1]
    assert max(len(call) for call in faulty.calls if len(call) <= 2) == 2
    assert all(1 <= job.batch_size <= 2 for job in jobs)


def test_a_lone_job_that_does_not_fit_even_one_image_a_call_fails_saying_so(
    submit, owner, local_pipeline
):
    import torch

    job = submit(owner, "a red apple", num_images=2)
    local_pipeline.fail_when(lambda prompts: torch.cuda.OutOfMemoryError("CUDA out of memory."))
    worker.generation_run(job_id=job.id)
    job = _fresh(job)
    assert job.status == JobStatus.FAILED and job.error_code == "out_of_memory"
    assert "even one image at a time" in job.error_message and job.attempts == 1


def test_bulk_work_takes_turns_between_organizations(submit, owner, outsider, settings):
    settings.EASEL_BATCH_SIZE = 1
    settings.EASEL_WORKER_DRAIN_SECONDS = 60
    backlog = [submit(owner, f"a red apple {i}", JobPriority.BULK) for i in range(5)]
    theirs = [submit(outsider, f"a blue box {i}", JobPriority.BULK) for i in range(2)]
    ran = worker.generation_run(job_id=backlog[0].id)
    a, b = owner.org.pk, outsider.org.pk
    assert [job.organization_id for job in ran] == [a, b, a, b, a, a, a]
    assert {job.id for job in ran} == {job.id for job in backlog + theirs}


def test_a_full_batch_is_shared_between_organizations_with_pending_work(
    submit, owner, outsider, settings
):
    settings.EASEL_BATCH_SIZE = 4
    backlog = [submit(owner, f"a red apple {i}", JobPriority.BULK) for i in range(6)]
    theirs = [submit(outsider, f"a blue box {i}", JobPriority.BULK) for i in range(2)]
    ran = worker.generation_run(job_id=backlog[0].id)
    first_batch = ran[:4]
    assert {job.organization_id for job in first_batch} == {owner.org.pk, outsider.org.pk}
    assert [job.id for job in first_batch] == [
        backlog[0].id,
        backlog[1].id,
        theirs[0].id,
        backlog[2].id,
    ]


def test_a_task_never_ends_before_its_own_job_is_taken(submit, owner, outsider, settings):
    """Drain off: the message of a backlogged organization's job still gets that job run, after
    the turns owed to others, so no job is left waiting for the reaper."""
    settings.EASEL_BATCH_SIZE = 1
    mine = [submit(owner, f"a red apple {i}", JobPriority.BULK) for i in range(2)]
    theirs = submit(outsider, "a blue box", JobPriority.BULK)
    worker.generation_run(job_id=mine[0].id)
    worker.generation_run(job_id=mine[1].id)
    assert _fresh(mine[0]).status == _fresh(mine[1]).status == JobStatus.SUCCEEDED
    assert _fresh(theirs).status == JobStatus.SUCCEEDED
