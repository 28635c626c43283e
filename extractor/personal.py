"""``--hash-personal-data``: emails and names replaced by salted SHA-256 before anything is written.

The salt lives in ``<data-dir>/state/salt`` (mode 0600) so the same person hashes to the same
value on every run, and values are trimmed and lower-cased first, so one email in two
spellings (or a Token Flex user name that is that email) still joins as one user.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

PERSONAL_COLUMNS = ("email", "first_name", "last_name", "full_name", "user_name",
                    "contract_manager_email", "reseller_email")


def load_salt(state_dir: Path) -> bytes:
    path = Path(state_dir) / "salt"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    salt = secrets.token_hex(32).encode()
    tmp = path.with_name(f".salt.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(salt)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # first writer wins; a concurrent one reads the winner's salt
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes().strip()


def hash_value(salt: bytes, value: str) -> str:
    return hashlib.sha256(salt + b":" + value.strip().lower().encode("utf-8")).hexdigest()


def _hashed(values: pa.Array, salt: bytes) -> pa.Array:
    encoded = pc.dictionary_encode(values)  # each distinct value hashed once
    hashed = [v if not v.strip() or set(v.strip()) == {"*"} else hash_value(salt, v)
              for v in encoded.dictionary.to_pylist()]
    return pc.take(pa.array(hashed, pa.string()), encoded.indices)


def hash_personal_columns(data: pa.Table | pa.RecordBatch, salt: bytes) -> pa.Table | pa.RecordBatch:
    """Hash every personal column present; NULLs, blanks and masks like ``*****`` stay as they are."""
    for name in PERSONAL_COLUMNS:
        if name not in data.schema.names:
            continue
        column = data.column(name).cast(pa.string())
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        data = data.set_column(data.schema.get_field_index(name), pa.field(name, pa.string()), _hashed(column, salt))
    return data
