"""``manage.py evaluate_gate [--set DIR] [--org SLUG]``: how well the quality gate judges.

Two views. First the built-in check judge on the labelled evaluation set (tests/data/quality/,
made by scripts/make_quality_set.py): precision and recall per question and overall
(`generation.engine.quality.evaluation`). Then how often reviewers agreed with the gate, per
template application: of the reviewed images the gate scored, the share where "approved" and
"gate passed" coincide; images reviewed without a gate verdict are counted apart. With
``--org`` only that organization's reviews are counted; without it, every organization's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.engine.quality.evaluation import evaluate_checks
from generation.review_selectors import Agreement, review_agreement_by_template
from tenants.models import Organization


def default_set_dir() -> Path:
    return Path(settings.BASE_DIR) / "tests" / "data" / "quality"


def _line(name: str, agreement: Agreement) -> str:
    rate = "-" if agreement.rate is None else f"{agreement.rate:.0%}"
    approval = "-" if agreement.approval_rate is None else f"{agreement.approval_rate:.0%}"
    unscored = agreement.unscored_approved + agreement.unscored_rejected
    return (
        f"{name:24} {rate:>9} {f'{agreement.agreed} of {agreement.scored}':>10} "
        f"{agreement.approved_passed:>6} {agreement.rejected_passed:>6} "
        f"{agreement.approved_failed:>6} {agreement.rejected_failed:>6} {unscored:>9} "
        f"{approval:>9}"
    )


class Command(BaseCommand):
    help = (
        "Precision and recall of the quality gate's built-in checks on the labelled evaluation "
        "set, and reviewer-vs-gate agreement per template application."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--set",
            dest="set_dir",
            type=Path,
            default=None,
            help="Evaluation set folder with a manifest.json (default: tests/data/quality).",
        )
        parser.add_argument("--org", help="Organization slug: count only its reviews.")

    def handle(self, *args: Any, **options: Any) -> None:
        set_dir: Path = options["set_dir"] or default_set_dir()
        if not (set_dir / "manifest.json").is_file():
            raise CommandError(
                f"No evaluation set at {set_dir} (no manifest.json); make one with "
                "scripts/make_quality_set.py or pass --set DIR."
            )
        org = None
        if options["org"]:
            org = Organization.objects.filter(slug=options["org"]).first()
            if org is None:
                raise CommandError(f"No organization with slug '{options['org']}'.")

        self.stdout.write(f"Built-in checks on the evaluation set ({set_dir}):\n")
        self.stdout.write(evaluate_checks(set_dir).format_report())

        agreements = review_agreement_by_template(org=org)
        whose = f"organization '{org.slug}'" if org else "all organizations"
        self.stdout.write(f"\nReviewer vs gate, per template application ({whose}):\n")
        if not agreements:
            self.stdout.write("No reviewed images yet.")
            return
        self.stdout.write(
            f"{'application':24} {'agreement':>9} {'agreed':>10} {'a+p':>6} {'r+p':>6} "
            f"{'a+f':>6} {'r+f':>6} {'no verdict':>9} {'approved':>9}"
        )
        for application, agreement in agreements.items():
            self.stdout.write(_line(application, agreement))
        self.stdout.write(_line("all applications", Agreement.total(agreements.values())))
        self.stdout.write(
            "(a/r: approved/rejected by the reviewer; p/f: passed/failed by the gate; agreement "
            "is over images with a gate verdict)"
        )
