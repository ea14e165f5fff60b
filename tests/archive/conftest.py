"""Fixtures for the archive tests: images built in pure Python, shared test data."""

import os

import pytest

from arv_keepdocker_testkit import imagebuild as ib

#: Docker's hello-world test archives live beside the project, not in it.
SHARED_TESTDATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "testdata")


@pytest.fixture
def hello_world():
    """``{"classic": path, "docker25": path}`` of the shared hello-world archives."""
    paths = {"classic": os.path.join(SHARED_TESTDATA, "hello-world-ManifestV2.tar"),
             "docker25": os.path.join(SHARED_TESTDATA, "hello-world-ManifestV2-OCILayout.tar")}
    missing = [p for p in paths.values() if not os.path.exists(p)]
    if missing:
        pytest.skip("shared test data not found at %s (it lives beside the project in "
                    "../shared/testdata, which a fresh clone does not have)"
                    % os.path.normpath(missing[0]))
    return paths


@pytest.fixture
def two_images():
    """Two images sharing a base layer; the second has gzip layers and labels."""
    base = ib.make_layer({"etc/base": b"base\n"})
    first = ib.build_image([base, {"app/one": b"one\n"}], repo_tags=["first:1"])
    second = ib.build_image([{"etc/base": b"base\n"}, {"app/two": b"two\n" * 100}],
                            repo_tags=["example.org/second:2"], labels={"k": "v"},
                            compression="gzip", created="2023-05-02T16:49:27Z")
    return first, second
