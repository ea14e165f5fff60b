"""The format check against the cluster's dockerImageFormats.

As ``docker_image_compatible`` in ``sdk/python/arvados/commands/keepdocker.py`` and
``sdk/python/tests/test_arv_keepdocker.py`` pin it."""

import pytest
from arv_keepdocker_testkit.cluster import Cluster
from arv_keepdocker_testkit.engines import build_layered_image

from .conftest import Runner, error_lines
from .test_upload_docker import uploaded_uuid


@pytest.fixture(scope="module")
def image_for_formats(keepdocker_docker_engine):
    image_id = build_layered_image(keepdocker_docker_engine, "formats-check:v1",
                                   [{"f": b"formats"}])
    yield image_id
    keepdocker_docker_engine.docker("rmi", "-f", image_id, check=False)


@pytest.fixture(scope="module", params=["", "v1", "v2", "v1,v2"])
def formats_cluster(request, tmp_path_factory):
    formats = [f for f in request.param.split(",") if f]
    cluster = Cluster(str(tmp_path_factory.mktemp("formats")), docker_image_formats=formats)
    cluster.start()
    yield request.param, cluster
    cluster.stop()


@pytest.mark.cluster  # formats_cluster starts clusters of its own
def test_formats(formats_cluster, image_for_formats, base_env, keepdocker_docker_engine):
    formats, cluster = formats_cluster
    run = Runner(dict(base_env, DOCKER_HOST=keepdocker_docker_engine.host, **cluster.env("alice")))
    proc = run("--no-progress", "formats-check:v1")
    if formats in ("v2", "v1,v2"):
        uploaded_uuid(proc)
        return
    assert proc.returncode == 1 and proc.stdout == ""
    lines = error_lines(proc.stderr)
    if formats == "":
        assert "WARNING: server does not specify supported image formats" in lines[0]
    else:
        assert "ERROR: image format is 'v2' but server supports only ['v1']" in lines[0]
    assert lines[-1].endswith(
        "ERROR: refusing to store incompatible format (use --force-image-format to override)")
    assert len(lines) == 2
    api = cluster.api("admin")
    assert api.collections().list().execute()["items"] == []
    assert api.links().list().execute()["items"] == []

    forced = run("--no-progress", "--force-image-format", "formats-check:v1")
    uploaded_uuid(forced)
    assert "WARNING: forcing incompatible image" in forced.stderr
