"""Uploads at the same time from different HOMEs: what Arvados itself enforces.

Five runs of one image into one project, each with its own HOME (so the
local lock cannot help: think five machines), end with one collection and
one set of links, and all five print its UUID (the losers wait for the
image's lock in Arvados, then adopt the winner's collection). Three images
sharing a base layer, uploaded at once, each end complete.
"""

import random
import subprocess
import sys

from arv_keepdocker_testkit import imagebuild as ib

from .world import check_end_state, new_project

MiB = 1 << 20


def home_env(base_env, arv_cluster, tmp_path, name):
    home = tmp_path / name
    (home / ".cache").mkdir(parents=True)
    return dict(base_env, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
                **arv_cluster.env("alice"))


def start(env, *args):
    return subprocess.Popen([sys.executable, "-m", "arv_keepdocker_plugin", "--no-progress",
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_five_homes_one_image_one_collection(arv_cluster, arv_api, arv_api_admin, base_env,
                                             tmp_path, unique):
    rng = random.Random(unique)
    image = ib.build_image([{"a": rng.randbytes(8 * MiB)}, {"b": unique.encode()}],
                           repo_tags=[unique + ":1"])
    path = tmp_path / "image.tar"
    ib.write_docker_archive(str(path), [image])
    project = new_project(arv_api, "five homes")
    runs = [start(home_env(base_env, arv_cluster, tmp_path, f"home{n}"),
                  "--project-uuid", project, f"docker-archive:{path}")
            for n in range(5)]
    results = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0] * 5, [err for _, err in results]
    uuid = check_end_state(arv_api_admin, arv_api, project, image.image_id, unique + ":1")
    assert {out.strip() for out, _ in results} == {uuid}
    hash_links = arv_api_admin.links().list(filters=[
        ["owner_uuid", "=", project], ["link_class", "=", "docker_image_hash"]]
    ).execute()["items"]
    assert len(hash_links) == 1


def test_three_images_sharing_a_base_at_once(arv_cluster, arv_api, arv_api_admin, base_env,
                                             tmp_path, unique):
    base = {"base.bin": random.Random(unique).randbytes(8 * MiB)}
    images = [ib.build_image([base, {"top": f"{unique}{n}".encode()}],
                             repo_tags=[f"{unique}:{n}"]) for n in range(3)]
    project = new_project(arv_api, "shared base")
    runs = []
    for n, image in enumerate(images):
        path = tmp_path / f"image{n}.tar"
        ib.write_docker_archive(str(path), [image])
        runs.append(start(home_env(base_env, arv_cluster, tmp_path, f"h{n}"),
                          "--project-uuid", project, f"docker-archive:{path}"))
    results = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0] * 3, [err for _, err in results]
    for n, image in enumerate(images):
        uuid = check_end_state(arv_api_admin, arv_api, project, image.image_id,
                               f"{unique}:{n}")
        assert results[n][0].strip() == uuid
