"""What generation announces to the apps above it (``catalog``), which it must not import.

Both are sent inside the transaction that made the change, so a receiver's writes commit or roll
back with it; a receiver defers slow work with ``transaction.on_commit``.

- ``job_finished(job)``: a job reached a finished status (after its quota, audit and webhook).
- ``image_reviewed(image, status, actor)``: an image was approved or rejected; for an image of a
  job with a ``product_ref`` the receiver publishes (or unpublishes) it for that product.
"""

from django.dispatch import Signal

job_finished = Signal()
image_reviewed = Signal()
