"""Local stand-ins for object storage, started by the tests on 127.0.0.1: moto's S3 server
(``moto[server]``) and Azurite (npm, installed into tests/storage/node by ``.ci/run`` /
``npm ci --prefix tests/storage/node``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"
# Azurite's well-known development account (public, documented by Microsoft)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _serving(command: list[str], port: int, name: str):
    """A server process on 127.0.0.1:port while the block runs."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{name} did not start")
                time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server():
    # moto's server in its own process, not ThreadedMotoServer: delta-rs holds the GIL during
    # some of its object-store calls, and a server thread in this process then never answers
    port = _free_port()
    with _serving([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port, "moto's S3 server"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def s3_url(s3_server, monkeypatch, tmp_path) -> str:
    """A fresh bucket on the S3 stand-in, credentials in the usual AWS_* variables."""
    import boto3

    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": s3_server, "AWS_ALLOW_HTTP": "true", "APS_USAGE_WORK_DIR": str(tmp_path / "work")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/aps-usage"


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory):
    binary = NODE_DIR / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists() or not shutil.which("node"):
        if os.environ.get("APS_USAGE_REQUIRE_ALL"):
            pytest.fail(f"Azurite is not installed: npm ci --prefix {NODE_DIR}")
        pytest.skip(f"Azurite is not installed (npm ci --prefix {NODE_DIR})")
    port = _free_port()
    command = [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--silent",
               "--skipApiVersionCheck", "--location", str(tmp_path_factory.mktemp("azurite"))]
    with _serving(command, port, "Azurite"):
        yield f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"


@pytest.fixture
def az_url(azurite_server, monkeypatch, tmp_path) -> str:
    """A fresh container on Azurite, credentials in the usual AZURE_STORAGE_* variables."""
    from azure.storage.blob import BlobServiceClient

    env = {"AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT, "AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY,
           "AZURE_STORAGE_USE_EMULATOR": "true", "AZURITE_BLOB_STORAGE_URL": azurite_server.rsplit("/", 1)[0],
           "AZURE_STORAGE_ALLOW_HTTP": "true", "APS_USAGE_WORK_DIR": str(tmp_path / "work")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    container = f"lake{uuid.uuid4().hex[:8]}"
    connection = (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                  f"BlobEndpoint={azurite_server};")
    BlobServiceClient.from_connection_string(connection).create_container(container)
    return f"az://{container}/aps-usage"
