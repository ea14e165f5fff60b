"""A colleague's layers through the ``docker://`` source (part of the reliability suite).

bob, who may write to alice's project, stored v1 there; alice uploads v2 (same
base layers) from the registry. No record of hers covers the base layers, so
they are not trusted unread; but rather than downloading them again, her run
reads bob's blocks back from Keep and hashes them: they are used only when
they hash to the layer's digest. A junk record bob planted (stamped as this
tool stamps its own) fails that check and is never used.
"""

import pytest
from arv_keepdocker_testkit import imagebuild as ib
from reliability.world import check_end_state, plant_layer_record

from .source_fixtures import MiB, SourceRun, blob_gets, counts, uploaded
from .test_source import noise

pytestmark = pytest.mark.reliability


def test_a_colleagues_layers_are_read_back_from_keep_not_downloaded(
        source_run, push, registry_images, registry_proxy, arv_api, arv_api_bob,
        arv_api_admin, arv_cluster, unique, tmp_path):
    address = registry_images.plain.address
    base = ib.make_layer({"base.bin": noise(unique + "base", 6 * MiB)}, "gzip")
    tops = [ib.make_layer({"top.bin": noise(unique + str(n), MiB)}, "gzip") for n in (1, 2)]
    v1, v2 = (ib.build_image([base, top]) for top in tops)
    push(address, "lab/%s:1" % unique, v1)
    push(address, "lab/%s:2" % unique, v2)
    project = arv_api.groups().create(body={"name": "lab " + unique,
                                            "group_class": "project"}).execute()["uuid"]
    arv_api.links().create(body={"link_class": "permission", "name": "can_write",
                                 "head_uuid": project,
                                 "tail_uuid": arv_cluster.user_uuid("bob")}).execute()
    proxy = registry_proxy.address
    bob_home = tmp_path / "bob"
    (bob_home / ".cache").mkdir(parents=True)
    bob = SourceRun(dict(source_run.env, HOME=str(bob_home),
                         XDG_CACHE_HOME=str(bob_home / ".cache"), **arv_cluster.env("bob")),
                    str(bob_home))
    for run in (bob, source_run):
        run.insecure(proxy)
    uploaded(bob("--no-progress", "--project-uuid", project,
                 "docker://%s/lab/%s:1" % (proxy, unique)))
    junk = plant_layer_record(arv_api_bob, project, base.digest, base.diff_id, base.size)
    start = len(registry_proxy.seen)
    ref = "%s/lab/%s:2" % (proxy, unique)
    proc = source_run("--batch-progress", "--project-uuid", project, "docker://" + ref)
    uuid = uploaded(proc)
    assert "not using collection {} for layer {}".format(junk["head_uuid"], base.digest) \
        in proc.stderr
    # Only the new layer and the config came from the registry; the base from Keep.
    assert sorted(blob_gets(registry_proxy, start)) == sorted([v2.image_id, tops[1].digest])
    assert counts(proc.stderr)["reused"] == base.size
    assert check_end_state(arv_api_admin, arv_api, project, v2.image_id, ref) == uuid
