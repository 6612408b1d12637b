"""The artifact store: content-addressed upload, verified materialization, LRU cache, atomicity."""

from __future__ import annotations

import os
import sys
import threading
import uuid
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from models_registry import artifacts
from models_registry.artifacts import (
    ArtifactCorrupted,
    ArtifactMissing,
    artifact_key,
    artifact_upload,
    evict,
    key_from_uri,
    materialize_base,
)
from models_registry.models import BaseModel


def _make_folder(root: Path, *, size: int = 4096, marker: str | None = None) -> Path:
    """A small model-like folder whose content (and so hash) is unique to this test run."""
    marker = marker or uuid.uuid4().hex
    folder = root / f"model-{marker[:8]}"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (folder / "unet" / "weights.bin").write_bytes(marker.encode() + os.urandom(size))
    return folder


def _base_for(stored: artifacts.StoredArtifact, name: str) -> BaseModel:
    return BaseModel(
        name=name,
        family="tiny",
        artifact_uri=stored.uri,
        sha256=stored.sha256,
        size_bytes=stored.size,
    )


@pytest.fixture(autouse=True)
def _delete_uploads(monkeypatch):
    """Every artifact here is unique to the test; remove it from storage afterwards."""
    keys: list[str] = []

    def upload(*, source: Path) -> artifacts.StoredArtifact:
        stored = artifacts.artifact_upload(source=source)
        keys.append(key_from_uri(stored.uri))
        return stored

    monkeypatch.setattr(sys.modules[__name__], "artifact_upload", upload)
    yield
    for key in keys:
        default_storage.delete(key)


@pytest.fixture
def cache_dir(settings, tmp_path) -> Path:
    settings.EASEL_MODEL_CACHE_DIR = tmp_path / "model-cache"
    return settings.EASEL_MODEL_CACHE_DIR


def test_upload_is_content_addressed_and_deterministic(tmp_path):
    folder = _make_folder(tmp_path)
    first = artifact_upload(source=folder)
    os.utime(folder / "unet" / "weights.bin", (1, 1))  # mtimes must not change the hash
    uri, sha256, size = artifact_upload(source=folder)
    assert (uri, sha256, size) == (first.uri, first.sha256, first.size)
    assert key_from_uri(uri) == f"artifacts/sha256/{sha256}/artifact.tar"
    assert default_storage.exists(key_from_uri(uri))
    assert default_storage.size(key_from_uri(uri)) == size


def test_materialize_round_trips_the_folder(tmp_path, cache_dir):
    folder = _make_folder(tmp_path)
    stored = artifact_upload(source=folder)
    local = materialize_base(_base_for(stored, "roundtrip"))
    assert local == cache_dir / stored.sha256
    assert (local / "unet" / "weights.bin").read_bytes() == (
        folder / "unet" / "weights.bin"
    ).read_bytes()
    assert (local / "model_index.json").read_text() == (folder / "model_index.json").read_text()
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".") and "lock" not in p.name]


def test_one_flipped_byte_is_refused_at_materialization(tmp_path, cache_dir):
    stored = artifact_upload(source=_make_folder(tmp_path))
    key = key_from_uri(stored.uri)
    with default_storage.open(key, "rb") as fh:
        payload = bytearray(fh.read())
    payload[len(payload) // 2] ^= 0x01
    default_storage.delete(key)
    default_storage.save(key, ContentFile(bytes(payload)))
    try:
        with pytest.raises(ArtifactCorrupted) as excinfo:
            materialize_base(_base_for(stored, "flipped"))
    finally:
        default_storage.delete(key)
    message = str(excinfo.value)
    assert "base model 'flipped'" in message and stored.sha256 in message
    assert "got " in message and "register the model again" in message
    assert not (cache_dir / stored.sha256).exists()
    assert [p.name for p in cache_dir.iterdir() if not p.name.endswith(".lock")] == []


def test_cache_evicts_least_recently_used_under_its_cap(tmp_path, cache_dir, settings):
    stored = [artifact_upload(source=_make_folder(tmp_path, size=50_000)) for _ in range(3)]
    settings.EASEL_MODEL_CACHE_MAX_BYTES = 130_000  # room for two of the three
    first, second, third = (_base_for(s, f"m{i}") for i, s in enumerate(stored))
    path_first = materialize_base(first)
    os.utime(path_first, (1_000, 1_000))
    path_second = materialize_base(second)
    os.utime(path_second, (2_000, 2_000))
    materialize_base(first)  # a hit makes `first` the most recently used
    path_third = materialize_base(third)
    assert path_first.exists() and path_third.exists()
    assert not path_second.exists(), "the least recently used folder should have been evicted"
    assert sum(size for *_rest, size in artifacts.cached_entries()) <= 130_000


def test_eviction_never_removes_the_folder_being_returned(tmp_path, cache_dir, settings):
    stored = artifact_upload(source=_make_folder(tmp_path, size=50_000))
    settings.EASEL_MODEL_CACHE_MAX_BYTES = 1_000
    path = materialize_base(_base_for(stored, "big"))
    assert path.is_dir()
    assert evict(keep=path) == []


def test_failed_extraction_leaves_no_folder_behind(tmp_path, cache_dir, monkeypatch):
    stored = artifact_upload(source=_make_folder(tmp_path))

    def broken_extract(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(artifacts.tarfile.TarFile, "extractall", broken_extract)
    with pytest.raises(OSError, match="disk full"):
        materialize_base(_base_for(stored, "half"))
    assert not (cache_dir / stored.sha256).exists()
    assert not [p for p in cache_dir.iterdir() if "partial" in p.name or "download" in p.name]


def test_concurrent_materializations_see_one_complete_folder(tmp_path, cache_dir):
    folder = _make_folder(tmp_path, size=200_000)
    stored = artifact_upload(source=folder)
    base = _base_for(stored, "race")
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            path = materialize_base(base)
            assert (path / "unet" / "weights.bin").stat().st_size == (
                folder / "unet" / "weights.bin"
            ).stat().st_size
            results.append(path)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert set(results) == {cache_dir / stored.sha256}


def test_a_single_lora_file_materializes_as_a_folder_diffusers_reads(tmp_path, cache_dir):
    weights = tmp_path / "my_lora.safetensors"
    weights.write_bytes(b"not really weights " + uuid.uuid4().bytes)
    stored = artifact_upload(source=weights)
    local = materialize_base(_base_for(stored, "lora-file"))
    assert [p.name for p in local.iterdir()] == ["pytorch_lora_weights.safetensors"]


def test_a_missing_stored_artifact_is_reported_with_what_to_do(cache_dir):
    sha = uuid.uuid4().hex * 2
    base = BaseModel(
        name="gone", family="tiny", artifact_uri=f"storage:{artifact_key(sha)}", sha256=sha
    )
    with pytest.raises(ArtifactMissing, match="base model 'gone' is missing from storage"):
        materialize_base(base)
    assert not (cache_dir / sha).exists()
