"""The CLI's commands: each takes the parsed arguments, a client and the output, and returns the
exit code. Failures are exceptions; ``main`` turns them into exit codes and messages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..client import Easel
from ..errors import NotFound
from ..resources.generations import PROTOCOL_FIELDS
from ..types import CatalogRun, Generation, Training
from . import exit_codes
from .output import Output


def parse_assignments(pairs: list[str] | None, *, flag: str) -> dict[str, Any]:
    """``["steps=4", "name=apple"]`` → ``{"steps": 4, "name": "apple"}`` (JSON values are
    decoded, anything else is a string)."""
    values: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"{flag} takes NAME=VALUE (got {pair!r}).")
        try:
            values[name] = json.loads(raw)
        except ValueError:
            values[name] = raw
    return values


def _finished_code(ok: bool) -> int:
    return exit_codes.OK if ok else exit_codes.UNSUCCESSFUL


# --- generate and jobs ---------------------------------------------------------------------


def _describe_job(out: Output, job: Generation) -> None:
    out.line(f"{job.id}  {job.status}  {job.model}  {job.prompt[:60]}")
    if job.error:
        out.line(f"  error: {job.error.get('code')}: {job.error.get('message')}")
    for image in job.images:
        out.line(f"  image {image.index}: {image.id} ({image.width}x{image.height})")


def _wait_job(easel: Easel, out: Output, job_id: str, timeout: float) -> Generation:
    label = f"Generation {job_id[:8]}"
    with out.progress(label, total=1.0) as update:
        return easel.generations.wait(
            job_id,
            timeout=timeout,
            on_progress=lambda j: update(completed=j.progress, description=f"{label}: {j.status}"),
        )


def _report_job(
    easel: Easel, out: Output, job: Generation, *, download: str | None, waited: bool
) -> int:
    files: list[Path] = []
    if download and job.succeeded:
        files = easel.generations.download(job, download)
    document = job.raw | ({"files": [str(f) for f in files]} if download else {})

    def human() -> None:
        _describe_job(out, job)
        for path in files:
            out.line(f"  saved {path}")

    out.result(document, human)
    return _finished_code(job.succeeded) if waited else exit_codes.OK


def cmd_generate(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    params = parse_assignments(args.param, flag="--param")
    variables = parse_assignments(args.var, flag="--var")
    if variables:
        params["variables"] = {k: str(v) for k, v in variables.items()}
    for name in PROTOCOL_FIELDS:
        if name == "variables":  # --var NAME=VALUE, above
            continue
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    wait = args.wait or bool(args.download)
    job = easel.generations.create(args.prompt, idempotency_key=args.idempotency_key, **params)
    out.note(f"Submitted {job.id}")
    if wait and not job.finished:
        job = _wait_job(easel, out, job.id, args.timeout)
    return _report_job(easel, out, job, download=args.download, waited=wait)


def cmd_upload(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    upload = easel.uploads.create(args.path, kind=args.kind)
    out.result(
        upload.raw,
        lambda: out.line(
            f"{upload.id}  {upload.kind}  {upload.width}×{upload.height}  {upload.file_name}"
        ),
    )
    return exit_codes.OK


def cmd_jobs_list(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    jobs = easel.generations.list(status=args.status, page_size=min(args.limit, 200)).take(
        args.limit
    )
    rows = [
        (j.id, j.status, j.model, j.created_at.isoformat(timespec="seconds"), j.prompt[:50])
        for j in jobs
    ]
    out.result(
        [j.raw for j in jobs],
        lambda: out.table(("id", "status", "model", "created", "prompt"), rows),
    )
    return exit_codes.OK


def cmd_jobs_show(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    job = easel.generations.get(args.id)
    out.result(job.raw, lambda: _describe_job(out, job))
    return exit_codes.OK


def cmd_jobs_cancel(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    job = easel.generations.cancel(args.id)
    out.result(job.raw, lambda: _describe_job(out, job))
    return exit_codes.OK


def cmd_jobs_wait(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    job = _wait_job(easel, out, args.id, args.timeout)
    return _report_job(easel, out, job, download=args.download, waited=True)


# --- train ---------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    with out.progress("Uploading photos") as update:
        job = easel.trainings.create(
            category=args.category,
            rare_token=args.token,
            class_prompt=args.class_prompt,
            instance_prompt=args.instance_prompt,
            mode=args.mode,
            photos=args.folder,
            params=parse_assignments(args.param, flag="--param") or None,
            idempotency_key=args.idempotency_key,
            on_upload=lambda sent, total: update(completed=sent, total=total),
        )
    out.note(f"Submitted training {job.id}")
    if args.follow and not job.finished:
        label = f"Training {job.id[:8]}"
        with out.progress(label, total=job.total_steps or None) as update:

            def show(j: Training) -> None:
                status = f"{label}: {j.status}, step {j.step}"
                update(completed=j.step, total=j.total_steps or None, description=status)

            job = easel.trainings.wait(job.id, timeout=args.timeout, on_progress=show)

    def human() -> None:
        out.line(f"{job.id}  {job.status}  step {job.step}/{job.total_steps}  {job.category}")
        if job.error:
            out.line(f"  error: {job.error.get('code')}: {job.error.get('message')}")
        if job.output_version:
            out.line(f"  candidate version: {job.output_version}")

    out.result(job.raw, human)
    return _finished_code(job.succeeded) if args.follow else exit_codes.OK


# --- catalog -------------------------------------------------------------------------------


def cmd_catalog_create(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    catalog = easel.catalogs.create(
        args.slug, name=args.name, default_template=args.default_template
    )
    out.result(catalog.raw, lambda: out.line(f"catalog {catalog.slug} created"))
    return exit_codes.OK


def cmd_catalog_upload(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    if args.create:
        try:
            easel.catalogs.get(args.slug)
        except NotFound:
            easel.catalogs.create(args.slug)
            out.note(f"Created catalog {args.slug}")
    report = easel.catalogs.upload(args.slug, args.file, format=args.format)

    def human() -> None:
        out.line(
            f"{report.rows_total} rows: {report.rows_created} created, "
            f"{report.rows_updated} updated, {report.rows_unchanged} unchanged, "
            f"{report.rows_rejected} rejected"
        )
        for rejection in report.rejections:
            out.line(f"  line {rejection.line} ({rejection.sku or 'no sku'}): {rejection.reason}")

    out.result(report.raw, human)
    return exit_codes.OK


def _describe_run(out: Output, run: CatalogRun) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(run.progress.counts.items()) if v)
    out.line(f"{run.id}  {run.status}  {run.catalog}  {run.mode}  {run.items_total} items")
    if counts:
        out.line(f"  {counts}")
    if run.paused_reason:
        out.line(f"  paused: {run.paused_reason}")
    if run.export_status:
        out.line(f"  export: {run.export_status} {run.export_error}".rstrip())


def cmd_catalog_run(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    run = easel.catalog_runs.create(args.slug, args.mode, idempotency_key=args.idempotency_key)
    out.note(f"Started run {run.id}")
    if args.wait and not run.finished:
        label = f"Run {run.id[:8]}"
        with out.progress(label, total=run.progress.total or None) as update:

            def show(r: CatalogRun) -> None:
                total = r.progress.total or None
                status = f"{label}: {r.status}, {r.progress.finished}/{r.progress.total}"
                update(completed=r.progress.finished, total=total, description=status)

            run = easel.catalog_runs.wait(run.id, timeout=args.timeout, on_progress=show)
    out.result(run.raw, lambda: _describe_run(out, run))
    return _finished_code(run.status == "completed") if args.wait else exit_codes.OK


def cmd_catalog_export(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    if args.rebuild:
        easel.catalog_runs.rebuild_export(args.run)
    if args.download:
        with out.progress("Exporting"):
            manifest, archive = easel.catalog_runs.download_export(
                args.run, args.download, timeout=args.timeout
            )
        document = {"manifest": str(manifest), "zip": str(archive)}
        out.result(document, lambda: out.line(f"saved {manifest}\nsaved {archive}"))
        return exit_codes.OK
    links = easel.catalog_runs.wait_for_export(args.run, timeout=args.timeout)
    out.result(links.raw, lambda: out.line(f"manifest: {links.manifest_url}\nzip: {links.zip_url}"))
    return exit_codes.OK


# --- models and usage ----------------------------------------------------------------------


def _alias_line(aliases: dict[str, Any]) -> str:
    parts = []
    for name, target in sorted(aliases.items()):
        version = target.get("id") if isinstance(target, dict) else target
        parts.append(f"{name}={version if version is not None else '-'}")
    return " ".join(parts)


def cmd_models_list(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    categories = easel.categories.list()
    rows = [(c.slug, c.name, c.base_model, _alias_line(c.aliases)) for c in categories]
    out.result(
        [c.raw for c in categories],
        lambda: out.table(("category", "name", "base model", "aliases"), rows),
    )
    return exit_codes.OK


def cmd_models_versions(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    versions = list(easel.model_versions.list(category=args.category))
    rows = [(v.id, v.kind, v.status, v.label, ",".join(v.aliases)) for v in versions]
    out.result(
        [v.raw for v in versions],
        lambda: out.table(("id", "kind", "status", "label", "aliases"), rows),
    )
    return exit_codes.OK


def cmd_models_promote(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    category = easel.categories.promote(args.category, args.version, alias=args.alias)
    out.result(category.raw, lambda: out.line(f"{category.slug}: {_alias_line(category.aliases)}"))
    return exit_codes.OK


def cmd_models_rollback(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    category = easel.categories.rollback(args.category, alias=args.alias)
    out.result(category.raw, lambda: out.line(f"{category.slug}: {_alias_line(category.aliases)}"))
    return exit_codes.OK


def cmd_usage(args: argparse.Namespace, easel: Easel, out: Output) -> int:
    usage = easel.usage()

    def limit(value: float | None) -> str:
        return "unlimited" if value is None else f"{value:g}"

    scopes = [("organization", usage.organization), *(("team", t) for t in usage.teams)]
    rows = [
        (
            kind,
            scope.slug,
            f"{scope.images_today.used:g} / {limit(scope.images_today.limit)}",
            f"{scope.gpu_seconds_this_month.used:g} / {limit(scope.gpu_seconds_this_month.limit)}",
        )
        for kind, scope in scopes
    ]
    out.result(
        usage.raw,
        lambda: out.table(("scope", "slug", "images today", "GPU-seconds this month"), rows),
    )
    return exit_codes.OK
