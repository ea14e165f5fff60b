"""The oci_labels hook package, installed like any third-party package.

The test suite's environment installs it (dev/setup: pip install -e
hooks/arv-keepdocker-oci-labels), so these tests check the real entry point,
then a real upload through ``arv keepdocker`` against the local cluster.
"""

import os
import subprocess
import sys

import arv_keepdocker_oci_labels as oci_labels
import pytest
from arv_keepdocker_testkit import imagebuild

from arv_keepdocker_plugin import Image
from arv_keepdocker_plugin.plugins import get_plugin_manager


def test_only_string_oci_labels_are_kept():
    labels = {"org.opencontainers.image.revision": "abc", "org.opencontainers.image.x": 3,
              "maintainer": "me"}
    assert oci_labels.oci_labels(labels) == {"org.opencontainers.image.revision": "abc"}
    image = Image(image_id="sha256:" + "0" * 64, source="t", config={"config": {}})
    assert oci_labels.keepdocker_collection_properties(image) is None


def test_entry_point_is_found_and_listed():
    pm = get_plugin_manager()
    assert pm.get_plugin("oci_labels") is oci_labels
    info = {p["name"]: p for p in pm.describe()}["oci_labels"]
    assert info["distribution"] == "arv-keepdocker-oci-labels"
    assert info["hooks"] == ["keepdocker_collection_properties"]


@pytest.fixture
def labelled_archive(tmp_path):
    image = imagebuild.build_image(
        [{"hello": str(tmp_path).encode()}], repo_tags=["labelled/app:2.0"],
        labels={"org.opencontainers.image.revision": "4f2c9e1",
                "org.opencontainers.image.source": "https://example.org/app.git",
                "com.example.other": "not copied"})
    path = tmp_path / "app.tar"
    imagebuild.write_docker_archive(str(path), [image])
    return path


def run_keepdocker(arv_cluster, tmp_path, *args, **extra_env):
    env = dict(os.environ, HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"),
               **arv_cluster.env("alice"), **extra_env)
    return subprocess.run([sys.executable, "-m", "arv_keepdocker_plugin", "--no-progress",
                           *args], env=env, capture_output=True, text=True, timeout=300)


def test_upload_records_oci_labels_as_properties(arv_cluster, arv_api, labelled_archive,
                                                 tmp_path):
    proc = run_keepdocker(arv_cluster, tmp_path, "--force",
                          f"docker-archive:{labelled_archive}")
    assert proc.returncode == 0, proc.stderr
    uuid = proc.stdout.strip()
    assert arv_api.collections().get(uuid=uuid).execute()["properties"] == {
        "docker-image-repo-tag": "labelled/app:2.0",
        "org.opencontainers.image.revision": "4f2c9e1",
        "org.opencontainers.image.source": "https://example.org/app.git"}
    # Findable with an ordinary property filter.
    found = arv_api.collections().list(filters=[
        ["properties.org.opencontainers.image.revision", "=", "4f2c9e1"]]).execute()["items"]
    assert uuid in [c["uuid"] for c in found]


def test_disabled_by_name(arv_cluster, arv_api, labelled_archive, tmp_path):
    proc = run_keepdocker(arv_cluster, tmp_path, "--force",
                          f"docker-archive:{labelled_archive}",
                          ARV_KEEPDOCKER_DISABLE_PLUGINS="oci_labels")
    assert proc.returncode == 0, proc.stderr
    properties = arv_api.collections().get(uuid=proc.stdout.strip()).execute()["properties"]
    assert properties == {"docker-image-repo-tag": "labelled/app:2.0"}
