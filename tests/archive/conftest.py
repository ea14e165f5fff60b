"""Fixtures for the archive tests: images built in pure Python, shared test data."""

import pytest
from arv_keepdocker_testkit import imagebuild as ib


@pytest.fixture
def hello_world(shared_dir):
    """``{"classic": path, "docker25": path}`` of the shared hello-world archives."""
    testdata = shared_dir / "testdata"
    return {"classic": str(testdata / "hello-world-ManifestV2.tar"),
            "docker25": str(testdata / "hello-world-ManifestV2-OCILayout.tar")}


@pytest.fixture
def two_images():
    """Two images sharing a base layer; the second has gzip layers and labels."""
    base = ib.make_layer({"etc/base": b"base\n"})
    first = ib.build_image([base, {"app/one": b"one\n"}], repo_tags=["first:1"])
    second = ib.build_image([{"etc/base": b"base\n"}, {"app/two": b"two\n" * 100}],
                            repo_tags=["example.org/second:2"], labels={"k": "v"},
                            compression="gzip", created="2023-05-02T16:49:27Z")
    return first, second
