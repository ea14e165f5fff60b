"""Listing and the Python API, side by side with Arvados' own arv-keepdocker 3.2.1."""

import io
import sys

import arvados.commands.keepdocker as sdk_keepdocker
import pytest
from arv_keepdocker_testkit.engines import build_layered_image

from arv_keepdocker_plugin import __version__, compat

from .test_upload_docker import uploaded_uuid


@pytest.fixture
def two_images(keepdocker_docker_engine, unique):
    ids = []
    for n in (1, 2):
        ids.append(build_layered_image(keepdocker_docker_engine, f"{unique}:v{n}", [
            {"f.txt": f"{unique} {n}".encode()}]))
    yield unique, ids
    for image_id in ids:
        keepdocker_docker_engine.docker("rmi", "-f", image_id, check=False)


def test_listing_matches_arv_keepdocker_byte_for_byte(keepdocker, arv_keepdocker_321, two_images):
    name, ids = two_images
    uploaded_uuid(keepdocker("--no-progress", name + ":v1"))
    uploaded_uuid(arv_keepdocker_321("--no-progress", name + ":v2"))
    ours, theirs = keepdocker(), arv_keepdocker_321()
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout
    assert ours.stdout.startswith("REPOSITORY                      TAG         IMAGE ID      "
                                  "COLLECTION                     CREATED")
    assert ids[0][:12] in ours.stdout and ids[1][:12] in ours.stdout
    # The old positional verb too.
    assert keepdocker("images").stdout == arv_keepdocker_321("images").stdout


def test_our_upload_is_first_for_arvados_own_lookup(keepdocker, two_images, arv_api):
    name, ids = two_images
    uuid = uploaded_uuid(keepdocker("--no-progress", name + ":v1"))
    found = sdk_keepdocker.list_images_in_arv(arv_api, 0, image_name=name, image_tag="v1")
    assert found[0][0] == uuid and found[0][1]["dockerhash"] == ids[0]
    by_hash = sdk_keepdocker.list_images_in_arv(arv_api, 0, image_name=ids[0])
    assert by_hash[0][0] == uuid


def test_image_stored_by_arv_keepdocker_is_listed_and_reused(
        keepdocker, arv_keepdocker_321, two_images, arv_api, arvados_state):
    name, ids = two_images
    theirs = uploaded_uuid(arv_keepdocker_321("--no-progress", name + ":v2"))
    assert compat.list_images_in_arv(arv_api, 0, name, "v2")[0][0] == theirs
    before = arvados_state.snapshot()
    listing = keepdocker().stdout
    proc = keepdocker("--no-progress", name + ":v2")
    assert uploaded_uuid(proc) == theirs
    # 3.2.1's copy holds no record of this tool's: it is read back and checked, once,
    # which leaves one record of the user's own: no hash or repo+tag link, so the
    # listing does not change (docs/trust.md).
    assert f"checking {theirs} before reusing it" in proc.stderr
    after = arvados_state.snapshot()
    assert after[0] == before[0]
    made = arv_api.links().list(filters=[["uuid", "in", sorted(after[1] - before[1])]]
                                ).execute()["items"]
    me = arv_api.users().current().execute()["uuid"]
    assert [(l["link_class"], l["name"], l["head_uuid"], l["owner_uuid"]) for l in made] == [
        ("docker_image_checked", ids[1], theirs, me)]
    assert keepdocker().stdout == listing
    proc = keepdocker("--no-progress", name + ":v2")
    assert uploaded_uuid(proc) == theirs and "before reusing it" not in proc.stderr
    assert arvados_state.snapshot() == after


def test_list_images_in_arv_agrees_with_the_sdk(keepdocker, arv_keepdocker_321, two_images,
                                                arv_api, project):
    name, ids = two_images
    uploaded_uuid(keepdocker("--no-progress", name + ":v1"))
    uploaded_uuid(arv_keepdocker_321("--no-progress", "--project-uuid", project,
                                     name + ":v2"))
    for kwargs in [{}, {"image_name": name, "image_tag": "v1"}, {"image_name": name},
                   {"image_name": ids[1][:20]}, {"project_uuid": project},
                   {"image_name": name, "image_tag": "v2", "project_uuid": project}]:
        ours = compat.list_images_in_arv(arv_api, 0, **kwargs)
        theirs = sdk_keepdocker.list_images_in_arv(arv_api, 0, **kwargs)
        assert ours == theirs, kwargs


def test_compat_main_return_and_exit_shapes(
        keepdocker_docker_engine, two_images, arv_api, monkeypatch, tmp_path):
    """arvados-cwl-runner's use (sdk/cwl/arvados_cwl/arvdocker.py): SystemExit 0/None is success."""
    name, ids = two_images
    monkeypatch.setenv("DOCKER_HOST", keepdocker_docker_engine.host)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    out = io.StringIO()
    # A fresh upload returns normally, the UUID on the given stdout.
    assert compat.main([name, "v1"], stdout=out, install_sig_handlers=False, api=arv_api) is None
    uuid = out.getvalue().strip()
    assert arv_api.collections().get(uuid=uuid).execute()["uuid"] == uuid
    # Already stored: SystemExit(0), the same UUID.
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        compat.main([name, "v1"], stdout=out, install_sig_handlers=False, api=arv_api)
    assert exit_info.value.code == 0 and out.getvalue().strip() == uuid
    # Listing: SystemExit(0).
    with pytest.raises(SystemExit) as exit_info:
        compat.main([], stdout=io.StringIO(), install_sig_handlers=False, api=arv_api)
    assert exit_info.value.code == 0
    # Unknown image: SystemExit(1); bad flag: SystemExit(2).
    with pytest.raises(SystemExit) as exit_info:
        compat.main(["no-such-image-" + name], stdout=io.StringIO(),
                    install_sig_handlers=False, api=arv_api)
    assert exit_info.value.code == 1
    with pytest.raises(SystemExit) as exit_info:
        compat.main(["-x=unknown"], stdout=io.StringIO(), install_sig_handlers=False, api=arv_api)
    assert exit_info.value.code == 2


def test_compat_main_reads_sys_argv_when_arguments_is_none(monkeypatch, arv_api):
    monkeypatch.setattr(sys, "argv", ["arv-keepdocker", "--version"])
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    with pytest.raises(SystemExit) as exit_info:
        compat.main(api=arv_api)
    assert exit_info.value.code == 0
    assert out.getvalue().rstrip().endswith(__version__)
