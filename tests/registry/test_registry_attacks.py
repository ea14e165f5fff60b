"""The planted-layer attack through the ``docker://`` source (part of the reliability suite).

bob shares a project with alice holding junk indexed as the layers of an image
alice pulls from a registry (by blob digest and by diff id, checked-looking).
Her stored tar must be exactly the registry's image: the planted records are
never trusted, so the layers are downloaded and checked, and bob's blocks
never match them.
"""

import pytest
from arv_keepdocker_testkit import imagebuild as ib
from reliability.world import assert_potent, check_end_state, new_project, plant_layer_record, share

from .source_fixtures import uploaded

pytestmark = pytest.mark.reliability


def test_planted_layer_records_never_reach_a_registry_upload(
        source_run, push, registry_images, arv_api, arv_api_bob, arv_api_admin, arv_cluster,
        unique):
    image = ib.build_image([{"usr/lib/base.bin": bytes(range(256)) * (8 << 10)},
                            {"app": unique.encode()}], compression="gzip")
    address = registry_images.plain.address
    push(address, "victim/" + unique + ":1", image)
    bob_project = new_project(arv_api_bob, "bob's trap")
    share(arv_api_bob, bob_project, arv_cluster.user_uuid("alice"))
    for layer in image.layers:
        plant_layer_record(arv_api_bob, bob_project, layer.digest, layer.diff_id, layer.size)
        plant_layer_record(arv_api_bob, bob_project, layer.diff_id, layer.diff_id, layer.size)
    alice_project = new_project(arv_api, "alice's images")
    assert_potent(arv_api, [(l.digest, l.size) for l in image.layers], bob_project)
    source_run.insecure(address)
    reference = f"{address}/victim/{unique}:1"
    uuid = uploaded(source_run("--no-progress", "--project-uuid", alice_project,
                               "docker://" + reference))
    assert check_end_state(arv_api_admin, arv_api, alice_project, image.image_id,
                           reference) == uuid
