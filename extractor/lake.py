"""Where the data dir lives: a local folder or an object-store URL, and the few file
operations the extractor needs beside the Delta tables (the salt, run summaries, published
marts). Object stores go through ``obstore`` (the same Rust ``object_store`` crate that
delta-rs uses), so both read the same credentials from the same environment variables:
``AWS_*`` for ``s3://``, ``AZURE_STORAGE_*`` for ``az://``/``abfss://``, ``GOOGLE_*`` for
``gs://``.
"""

from __future__ import annotations

import os
from pathlib import Path

REMOTE_SCHEMES = ("s3://", "s3a://", "az://", "azure://", "abfs://", "abfss://", "gs://", "gcs://")


def is_remote(location: str | os.PathLike[str]) -> bool:
    return str(getattr(location, "url", location)).lower().startswith(REMOTE_SCHEMES)


class LocalMirror(type(Path())):  # type: ignore[misc]
    """The local working folder of a data dir on object storage (warehouse, dbt artifacts,
    tokens, scratch): a Path like any local data dir, carrying the data dir's ``url``."""

    url: str


def local_mirror(url: str) -> Path:
    """Where a data dir on object storage keeps its local working files
    (``APS_USAGE_WORK_DIR``, default ``~/.cache/aps-usage/<url as a name>``)."""
    base = Path(os.environ.get("APS_USAGE_WORK_DIR", Path.home() / ".cache" / "aps-usage")).expanduser()
    mirror = LocalMirror(base / url.replace("://", "_").replace("/", "_").replace("@", "_"))
    mirror.url = url
    return mirror


def normalize(location: str | os.PathLike[str]) -> str:
    """An absolute local path, or the URL without a trailing slash."""
    if is_remote(location):
        return str(getattr(location, "url", location)).rstrip("/")
    text = str(location)
    if text.startswith("file://"):
        text = text[len("file://"):]
    return str(Path(text).expanduser().resolve())


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts]) if is_remote(root) else str(Path(root, *parts))


def storage_options(url: str) -> dict[str, str] | None:
    """Options for delta-rs beyond what it reads from the environment itself.

    S3 has no atomic rename, so delta-rs needs a safe way to create the next commit file:
    AWS S3 and the usual S3 stand-ins (moto, MinIO) support conditional writes
    (``If-None-Match``), which delta-rs uses with ``conditional_put=etag``: the default here
    (``AWS_CONDITIONAL_PUT`` overrides it). ``AWS_S3_ALLOW_UNSAFE_RENAME`` (no protection
    against a concurrent writer) is never set by aps-usage."""
    if not url.startswith(("s3://", "s3a://")):
        return None
    opts = {"conditional_put": os.environ.get("AWS_CONDITIONAL_PUT", "etag")}
    if os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        opts["AWS_ALLOW_HTTP"] = "true"  # a local S3 stand-in
    return opts


def _store(url: str):
    from obstore.store import from_url

    options = {}
    if url.startswith(("s3://", "s3a://")):
        if os.environ.get("AWS_ENDPOINT_URL"):
            options["endpoint"] = os.environ["AWS_ENDPOINT_URL"]
        if os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://"):
            options["client_options"] = {"allow_http": True}
    return from_url(url, **options)


def read_bytes(location: str) -> bytes | None:
    """The object's bytes, or None when it does not exist."""
    if not is_remote(location):
        try:
            return Path(location).read_bytes()
        except FileNotFoundError:
            return None
    parent, name = location.rsplit("/", 1)
    import obstore
    from obstore.exceptions import NotFoundError

    try:
        return bytes(obstore.get(_store(parent), name).bytes())
    except (FileNotFoundError, NotFoundError):
        return None


def write_bytes_if_absent(location: str, data: bytes) -> bool:
    """Create the object unless it exists (first writer wins); True if this call created it."""
    if not is_remote(location):
        path = Path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return True
    parent, name = location.rsplit("/", 1)
    import obstore
    from obstore.exceptions import AlreadyExistsError

    try:
        obstore.put(_store(parent), name, data, mode="create")
    except (FileExistsError, AlreadyExistsError):
        return False
    return True


def upload_file(local: Path, location: str) -> None:
    """Copy one local file to an object-store URL (multipart for large files)."""
    import obstore

    parent, name = location.rsplit("/", 1)
    obstore.put(_store(parent), name, Path(local))


def upload_folder(local: Path, location: str) -> list[str]:
    """Copy every file under ``local`` to ``location`` (an object-store URL), keeping the
    relative paths; returns the URLs written. For the published marts."""
    import obstore

    store = _store(location)
    written = []
    for path in sorted(p for p in Path(local).rglob("*") if p.is_file()):
        rel = path.relative_to(local).as_posix()
        obstore.put(store, rel, path)
        written.append(f"{location.rstrip('/')}/{rel}")
    return written
