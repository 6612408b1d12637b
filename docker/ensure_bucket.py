"""Create the bucket the settings name (``AWS_STORAGE_BUCKET_NAME``) unless it exists: compose's
``init`` step, after ``migrate``. Waits up to a minute for the S3 server to answer, and fails
with the server's error when the credentials are refused.

    python docker/ensure_bucket.py
"""

from __future__ import annotations

import os
import sys
import time

import django

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
django.setup()

from botocore.exceptions import ClientError, EndpointConnectionError  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.files.storage import default_storage  # noqa: E402


def main() -> int:
    if settings.EASEL_STORAGE != "s3":
        print("EASEL_STORAGE is not 's3': no bucket to create", file=sys.stderr)
        return 1
    # The storage's own client: the same endpoint, credentials, signature and addressing.
    s3 = default_storage.connection.meta.client
    bucket = settings.AWS_STORAGE_BUCKET_NAME
    deadline = time.monotonic() + 60
    while True:
        try:
            s3.head_bucket(Bucket=bucket)
            print(f"bucket {bucket} exists")
            return 0
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                print(f"S3 refused the check of bucket {bucket}: {exc}", file=sys.stderr)
                return 1
            s3.create_bucket(Bucket=bucket)
            print(f"bucket {bucket} created")
            return 0
        except EndpointConnectionError:
            if time.monotonic() > deadline:
                print(f"S3 at {settings.AWS_S3_ENDPOINT_URL} did not answer", file=sys.stderr)
                return 1
            time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
