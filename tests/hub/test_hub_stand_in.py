"""The Hub stand-in of the round-trip tests (``tests/hub_server.py``), driven by huggingface_hub's own client.

In this process the client keeps its Xet uploads on, so LFS content is handed over as a binary
buffer, which the client always sends through the LFS batch API."""

import io
import json
import urllib.error
import urllib.request

import pytest
from huggingface_hub import HfApi, HfFileSystem, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder

PARQUET = b"PAR1" + bytes(range(256)) * 40 + b"PAR1"


def _upload(api, path, content, repo="someone/files"):
    data = io.BytesIO(content) if isinstance(content, bytes) else content
    return api.upload_file(path_or_fileobj=data, path_in_repo=path, repo_id=repo, repo_type="dataset")


def test_files_go_inline_or_through_lfs_as_on_the_hub_and_download_unchanged(hub, tmp_path):
    api = HfApi(endpoint=hub.endpoint, token="hf_test_token")
    url = api.create_repo("someone/files", repo_type="dataset")
    assert (url.repo_type, url.repo_id) == ("dataset", "someone/files")
    assert api.create_repo("someone/files", repo_type="dataset", exist_ok=True).repo_id == "someone/files"
    with pytest.raises(HfHubHTTPError, match="409"):
        api.create_repo("someone/files", repo_type="dataset")
    _upload(api, "notes/a.txt", b"plain text\n")
    first = _upload(api, "data/train/x.parquet", PARQUET)
    assert hub.lfs_files("someone/files", "dataset") == ["data/train/x.parquet"]  # .gitattributes: *.parquet
    preupload = [json.loads(r.body) for r in hub.requests if "/preupload/" in r.path]
    assert [f["path"] for body in preupload for f in body["files"]] == ["notes/a.txt", "data/train/x.parquet"]
    assert any(r.path == "/datasets/someone/files.git/info/lfs/objects/batch" for r in hub.requests)
    # The same content again changes nothing: preupload's oid tells the client, which skips the commit.
    assert _upload(api, "data/train/x.parquet", PARQUET).oid == first.oid
    assert hub.history("someone/files", "dataset") == ["initial commit", "Upload notes/a.txt with huggingface_hub",
                                                       "Upload data/train/x.parquet with huggingface_hub"]

    info = api.dataset_info("someone/files", files_metadata=True)
    assert info.sha == first.oid
    sizes = {s.rfilename: (s.size, s.lfs.sha256 if s.lfs else None) for s in info.siblings}
    assert sizes["notes/a.txt"] == (11, None) and sizes["data/train/x.parquet"][0] == len(PARQUET)
    tree = list(api.list_repo_tree("someone/files", repo_type="dataset", recursive=True))
    assert {(type(e).__name__, e.path) for e in tree} == {
        ("RepoFile", ".gitattributes"), ("RepoFolder", "notes"), ("RepoFile", "notes/a.txt"),
        ("RepoFolder", "data"), ("RepoFolder", "data/train"), ("RepoFile", "data/train/x.parquet"),
    }
    top = list(api.list_repo_tree("someone/files", repo_type="dataset", path_in_repo="data"))
    assert [(type(e), e.path) for e in top] == [(RepoFolder, "data/train")]
    (parquet,) = api.get_paths_info("someone/files", ["data/train/x.parquet", "missing.txt"], repo_type="dataset")
    assert isinstance(parquet, RepoFile) and parquet.lfs.size == len(PARQUET)

    for name, content in (("notes/a.txt", b"plain text\n"), ("data/train/x.parquet", PARQUET)):
        path = hf_hub_download("someone/files", name, repo_type="dataset", endpoint=hub.endpoint,
                               cache_dir=tmp_path / "cache")
        assert open(path, "rb").read() == content
    fs = HfFileSystem(endpoint=hub.endpoint, token="hf_test_token", skip_instance_cache=True)
    with fs.open("datasets/someone/files/data/train/x.parquet", "rb", block_size=64) as f:  # ranged reads
        f.seek(100)
        assert f.read(300) == PARQUET[100:400]
    ranges = [r.headers.get("range") for r in hub.requests if r.method == "GET" and r.path.endswith("/x.parquet")]
    assert ranges[0] is None and "bytes=100-" in ranges[-1]  # hf_hub_download whole, then HfFileSystem by range


def test_errors_are_the_hubs_and_unknown_requests_are_named(hub, tmp_path):
    api = HfApi(endpoint=hub.endpoint, token="hf_test_token")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("someone/absent")
    api.create_repo("someone/model")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("someone/model", revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("someone/model", "config.json", endpoint=hub.endpoint, cache_dir=tmp_path)
    with pytest.raises(HfHubHTTPError, match="401"):
        HfApi(endpoint=hub.endpoint, token=False).upload_file(
            path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="someone/model")
    assert hub.files("someone/model").keys() == {".gitattributes"}

    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{hub.endpoint}/api/spaces/someone/model/runtime")
    assert err.value.code == 404 and b"does not serve GET /api/spaces/someone/model/runtime" in err.value.read()
    assert hub.unserved == ["GET /api/spaces/someone/model/runtime"]
    hub.unserved.clear()  # expected here; the fixture fails any other test that leaves one
