from typing import Any

from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"

    def ready(self) -> None:
        # Generation announces finished jobs and reviews; the catalog settles its run items and
        # publishes per product (generation must not import the catalog app).
        from generation import signals

        signals.job_finished.connect(_job_finished, dispatch_uid="catalog.job_finished")
        signals.image_reviewed.connect(_image_reviewed, dispatch_uid="catalog.image_reviewed")


def _job_finished(sender: Any, *, job: Any, **kwargs: Any) -> None:
    from .runs import run_item_job_finished

    run_item_job_finished(job=job)


def _image_reviewed(sender: Any, *, image: Any, status: str, actor: Any, **kwargs: Any) -> None:
    from .publishing import product_image_reviewed

    product_image_reviewed(image=image, status=status, actor=actor)
