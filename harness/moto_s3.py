"""An S3-compatible server on loopback for the Batch API's S3 file store: moto's server mode, as a process.

It keeps buckets in memory and dies with its owner (PR_SET_PDEATHSIG), like the embedded Redis.
"""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from harness.embedded_redis import free_port
from worker.orphan_guard import die_with_parent

# moto accepts any credentials; S3 clients insist on having some.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "inferq-test",
    "AWS_SECRET_ACCESS_KEY": "inferq-test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoS3:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """What an S3 client (s3fs, boto3) needs to use this server."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": self.url}

    def start(self, timeout_s: float = 60) -> MotoS3:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent
        )
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto's S3 server did not start on port {self.port}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        try:
            return httpx.get(self.url, timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    def create_bucket(self, name: str) -> None:
        response = httpx.put(f"{self.url}/{name}", timeout=10)
        response.raise_for_status()

    def object(self, bucket: str, key: str) -> bytes | None:
        """An object as another S3 client (boto3, signed requests) reads it; None when there is none."""
        import boto3  # moto's own dependency: present wherever this server runs

        s3 = boto3.client("s3", endpoint_url=self.url, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                          region_name=CREDENTIALS["AWS_DEFAULT_REGION"])  # fmt: skip
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=30)
