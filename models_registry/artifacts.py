"""The artifact store: model weights in the configured storage under content-addressed keys, and
the worker-side local cache they are materialized into.

Format. An artifact is one uncompressed tar (weights do not compress) packed deterministically:
entries sorted by path, mtimes zeroed, owner root, modes 0644/0755, PAX headers. The same folder
therefore always packs to the same bytes, and its SHA-256 is the artifact's identity:

    storage key  artifacts/sha256/<hash>/artifact.tar
    uri          storage:artifacts/sha256/<hash>/artifact.tar   (a key in ``default_storage``)

A LoRA given as a single ``.safetensors`` file is packed as ``pytorch_lora_weights.safetensors``
(diffusers' default name), so a materialized LoRA is always a folder ``load_lora_weights`` reads.

Cache. ``materialize_base``/``materialize_version`` download to ``EASEL_MODEL_CACHE_DIR/<hash>/``:
the tar is streamed into a hidden temporary file while hashing; a mismatch raises
``ArtifactCorrupted`` and nothing is kept; otherwise it is unpacked into a hidden staging folder
that is renamed into place, so another worker on the host sees either no folder or a complete one.
Every use touches the folder's mtime; when the cache passes ``EASEL_MODEL_CACHE_MAX_BYTES`` the
least recently used folders are renamed away (atomically) and deleted. The folder being returned is
never evicted; a worker that already loaded a pipeline into memory does not need its folder.

No torch and no diffusers here: the web process may import this module.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

if TYPE_CHECKING:
    from .models import BaseModel, ModelVersion

logger = logging.getLogger(__name__)

URI_SCHEME = "storage:"
KEY_PREFIX = "artifacts/sha256"
ARCHIVE_NAME = "artifact.tar"
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
CHUNK = 1024 * 1024
STALE_STAGING_SECONDS = 6 * 3600


class ArtifactError(Exception):
    """An artifact cannot be stored or materialized; the message says why and what to do."""


class ArtifactMissing(ArtifactError):
    pass


class ArtifactCorrupted(ArtifactError):
    pass


@dataclass(frozen=True)
class StoredArtifact:
    uri: str
    sha256: str
    size: int

    def __iter__(self) -> Iterator[str | int]:  # allows ``uri, sha, size = artifact_upload(...)``
        return iter((self.uri, self.sha256, self.size))


# --- packing ------------------------------------------------------------------------------------


def _members(source: Path) -> list[tuple[str, Path]]:
    """(archive name, local path) for every file and folder to pack, sorted by archive name."""
    if source.is_file():
        name = LORA_WEIGHT_NAME if source.suffix == ".safetensors" else source.name
        return [(name, source)]
    if not source.is_dir():
        raise ArtifactError(f"{source} does not exist; pass a model folder or a weights file.")
    entries: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(source):
        # Hidden staging folders and files (".foo.partial", ".DS_Store") are never part of a model.
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath)
        for name in [*dirnames, *filenames]:
            if name.startswith("."):
                continue
            path = base / name
            if path.is_symlink() and not path.exists():
                raise ArtifactError(f"{path} is a broken symlink; fix or remove it, then retry.")
            entries.append((path.relative_to(source).as_posix(), path))
    if not any(p.is_file() for _, p in entries):
        raise ArtifactError(f"{source} holds no files; pass a model folder or a weights file.")
    return sorted(entries)


def pack_artifact(source: Path, out: IO[bytes]) -> None:
    """Write ``source`` (a folder or one file) to ``out`` as a deterministic tar."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for arcname, path in _members(Path(source)):
            info = tarfile.TarInfo(arcname)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
                continue
            info.mode = 0o644
            info.size = path.stat().st_size
            with path.open("rb") as fh:
                tar.addfile(info, fh)


class _HashingWriter(io.RawIOBase):
    """A file wrapper that hashes and counts what passes through it."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.digest.update(data)
        self.size += len(data)
        return self.target.write(data)


def artifact_key(sha256: str) -> str:
    return f"{KEY_PREFIX}/{sha256}/{ARCHIVE_NAME}"


def key_from_uri(uri: str) -> str:
    if not uri.startswith(URI_SCHEME):
        raise ArtifactError(
            f"Unsupported artifact URI {uri!r}: expected '{URI_SCHEME}<key>'. "
            "Register the model again with manage.py register_model."
        )
    return uri[len(URI_SCHEME) :]


def artifact_upload(*, source: Path) -> StoredArtifact:
    """Pack ``source`` and store it under its content hash; an identical artifact is not re-sent.

    Returns ``(uri, sha256, size)`` (a ``StoredArtifact``, which also unpacks as a tuple).
    """
    source = Path(source)
    with tempfile.TemporaryFile() as tmp:
        writer = _HashingWriter(tmp)
        pack_artifact(source, writer)  # type: ignore[arg-type]
        sha256, size = writer.digest.hexdigest(), writer.size
        key = artifact_key(sha256)
        if not default_storage.exists(key):
            tmp.seek(0)
            saved = default_storage.save(key, File(tmp, name=ARCHIVE_NAME))
            if saved != key:  # another uploader stored the same bytes first
                default_storage.delete(saved)
        logger.info("artifact %s (%d bytes) stored from %s", sha256[:12], size, source)
    return StoredArtifact(uri=f"{URI_SCHEME}{key}", sha256=sha256, size=size)


# --- the local cache ----------------------------------------------------------------------------


def cache_root() -> Path:
    root = Path(settings.EASEL_MODEL_CACHE_DIR)
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An advisory lock shared by every process on this host (one download per artifact)."""
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _touch(folder: Path) -> None:
    now = time.time()
    os.utime(folder, (now, now))


def _folder_size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(dirpath) / name).stat().st_size
            except FileNotFoundError:
                continue
    return total


def cached_entries() -> list[tuple[Path, float, int]]:
    """(folder, last used, bytes) of every complete cache entry, least recently used first."""
    entries = []
    for child in cache_root().iterdir():
        if child.name.startswith(".") or not child.is_dir():
            continue
        try:
            entries.append((child, child.stat().st_mtime, _folder_size(child)))
        except FileNotFoundError:  # evicted by another worker meanwhile
            continue
    return sorted(entries, key=lambda e: e[1])


def _remove_stale_staging(root: Path) -> None:
    cutoff = time.time() - STALE_STAGING_SECONDS
    for child in root.iterdir():
        if child.name.startswith(".") and not child.name.endswith(".lock"):
            try:
                if child.stat().st_mtime < cutoff:
                    if child.is_dir():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            except FileNotFoundError:
                continue


def evict(*, keep: Path | None = None, reserve: int = 0) -> list[Path]:
    """Delete least recently used entries until the cache (plus ``reserve``) fits its cap."""
    cap = int(settings.EASEL_MODEL_CACHE_MAX_BYTES)
    entries = cached_entries()
    total = sum(size for _p, _t, size in entries) + reserve
    evicted: list[Path] = []
    for folder, _used, size in entries:
        if total <= cap:
            break
        if keep is not None and folder == keep:
            continue
        retired = folder.with_name(f".{folder.name}.evicted-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.replace(folder, retired)  # atomic: nobody sees a half-deleted model folder
        except FileNotFoundError:
            continue
        shutil.rmtree(retired, ignore_errors=True)
        total -= size
        evicted.append(folder)
        logger.info("model cache: evicted %s (%d bytes)", folder.name, size)
    if total > cap and keep is not None:
        logger.warning(
            "model cache: %s alone exceeds EASEL_MODEL_CACHE_MAX_BYTES=%d; raise the cap.",
            keep.name,
            cap,
        )
    return evicted


def _download_verified(*, key: str, expected: str, label: str, uri: str, into: Path) -> None:
    digest = hashlib.sha256()
    try:
        src = default_storage.open(key, "rb")
    except (FileNotFoundError, OSError) as exc:
        raise ArtifactMissing(
            f"Artifact of {label} is missing from storage ({uri}): {exc}. Restore the object or "
            "register the model again (manage.py register_model)."
        ) from exc
    with src, into.open("wb") as out:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    actual = digest.hexdigest()
    if actual != expected:
        raise ArtifactCorrupted(
            f"Artifact of {label} is corrupted ({uri}): expected sha256 {expected}, got {actual}. "
            "The stored bytes no longer match what was registered, so it was not used. Restore "
            "the object from a backup or register the model again (manage.py register_model)."
        )


def _materialize(*, uri: str, sha256: str, label: str) -> Path:
    if not uri or not sha256:
        raise ArtifactMissing(f"{label} has no artifact yet; it cannot be loaded.")
    key = key_from_uri(uri)
    root = cache_root()
    final = root / sha256
    if final.is_dir():
        _touch(final)
        return final
    with _lock(root / f".{sha256}.lock"):
        if final.is_dir():  # another worker finished while we waited
            _touch(final)
            return final
        _remove_stale_staging(root)
        evict(reserve=_stored_size(key))
        archive = root / f".{sha256}.{os.getpid()}.download"
        staging = Path(tempfile.mkdtemp(prefix=f".{sha256}.", suffix=".partial", dir=root))
        try:
            _download_verified(key=key, expected=sha256, label=label, uri=uri, into=archive)
            with tarfile.open(archive, mode="r:") as tar:
                tar.extractall(staging, filter="data")
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            archive.unlink(missing_ok=True)
    _touch(final)
    evict(keep=final)
    logger.info("model cache: materialized %s into %s", label, final)
    return final


def _stored_size(key: str) -> int:
    try:
        return int(default_storage.size(key))
    except (FileNotFoundError, OSError):
        return 0


def materialize_base(base: BaseModel) -> Path:
    """Local folder of ``base``'s diffusers pipeline (downloaded and verified if not cached)."""
    return _materialize(
        uri=base.artifact_uri, sha256=base.sha256, label=f"base model {base.name!r}"
    )


def materialize_version(version: ModelVersion) -> Path:
    """Local folder of ``version``: a diffusers pipeline (full) or the LoRA weights (lora)."""
    return _materialize(
        uri=version.artifact_uri, sha256=version.sha256, label=f"model version {version.pk}"
    )


def read_manifest(folder: Path) -> dict:
    """``easel.json`` of a materialized pipeline (sampling defaults), or ``{}``."""
    path = Path(folder) / "easel.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def download_s3_prefix(uri: str, into: Path) -> Path:
    """Copy every object under ``s3://bucket/prefix`` into ``into`` (keeps the layout)."""
    from urllib.parse import urlparse

    import boto3

    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ArtifactError(f"The address must look like s3://bucket/prefix, not {uri!r}.")
    prefix = parsed.path.lstrip("/")
    client = boto3.client(
        "s3",
        endpoint_url=settings.AWS_S3_ENDPOINT_URL,
        aws_access_key_id=settings.AWS_ACCESS_KEY_ID,
        aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY,
        region_name=settings.AWS_S3_REGION_NAME,
    )
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=parsed.netloc, Prefix=prefix
    ):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) :].lstrip("/") if prefix else obj["Key"]
            if not rel or rel.endswith("/"):
                continue
            target = (into / rel).resolve()
            if into.resolve() not in target.parents:
                raise ArtifactError(f"Refusing object key {obj['Key']!r}: it escapes the folder.")
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(parsed.netloc, obj["Key"], str(target))
            count += 1
    if count == 0:
        raise ArtifactMissing(f"No objects under {uri}; check the bucket and prefix.")
    if prefix and not prefix.endswith("/") and (into / Path(prefix).name).is_dir():
        return into / Path(prefix).name
    return into
