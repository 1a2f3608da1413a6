"""Where Batch API files live: a local directory and an S3-compatible bucket (moto's server, a real process
speaking S3's HTTP API), behind the same four calls."""

import pytest

from batch.file_store import open_file_store
from engines.errors import InvalidRequest
from harness.embedded_redis import free_port


@pytest.fixture(params=["local", "s3"])
async def files(request, tmp_path, monkeypatch):
    if request.param == "local":
        store = open_file_store(str(tmp_path / "files"))
    else:
        for name, value in request.getfixturevalue("s3_server").env.items():
            monkeypatch.setenv(name, value)
        store = open_file_store("s3://inferq-files/store-test/")
    yield store
    await store.aclose()


async def test_a_file_is_written_whole_read_replaced_and_deleted(files):
    assert await files.read("file-a") is None
    await files.write("file-a", b'{"custom_id": "1"}\n')
    assert await files.read("file-a") == b'{"custom_id": "1"}\n'
    await files.write("file-a", b"replaced\n")
    assert await files.read("file-a") == b"replaced\n"
    await files.delete("file-a")
    assert await files.read("file-a") is None
    await files.delete("file-a")  # already gone: nothing to do
    for bad in ("../escape", ".hidden", "a/b", ""):
        with pytest.raises(InvalidRequest) as refused:
            await files.write(bad, b"x")
        assert refused.value.field == "file_id"


async def test_an_s3_store_puts_its_files_in_the_bucket(s3_server, monkeypatch):
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    store = open_file_store("s3://inferq-files/fleet")
    await store.write("file-b", b"shared\n")
    await store.aclose()
    # any other process, with any S3 client, finds it at the bucket's key
    assert s3_server.object("inferq-files", "fleet/file-b") == b"shared\n"


def test_the_url_names_the_store_and_a_wrong_one_is_refused_by_name(tmp_path):
    assert open_file_store(str(tmp_path)).url == open_file_store(f"file://{tmp_path}").url == tmp_path.as_uri()
    assert open_file_store("s3://bucket/prefix/").url == "s3://bucket/prefix"
    for wrong in ("ftp://host/files", "s3:///no-bucket"):
        with pytest.raises(InvalidRequest) as refused:
            open_file_store(wrong)
        assert refused.value.field == "files_url"


async def test_an_s3_endpoint_nobody_answers_is_an_outage_an_oserror(s3_server, monkeypatch):
    # botocore's own failures pass through s3fs untranslated; the batch coordinator retries OSErrors, not those
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries of a refused connection only add seconds
    store = open_file_store("s3://inferq-files/away")
    with pytest.raises(ConnectionError, match="S3 at s3://inferq-files/away"):
        await store.read("file-c")
    await store.aclose()
