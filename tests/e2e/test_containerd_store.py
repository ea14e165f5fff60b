"""Docker's containerd image store against a real engine (issue 10).

Docker 29 keeps images in containerd's store by default (Docker 25-28 behind
``features.containerd-snapshotter``). There ``docker image inspect`` gives the
manifest digest as ``Id`` (the index digest for a multi-platform pull), and
``docker save`` writes an OCI layout plus ``manifest.json`` with the layers as
pulled (gzip for registry pulls). These tests run Docker 26 in both of its
stores (``keepdocker_docker26_containerd``, ``keepdocker_docker26``) beside
Docker 20.10, podman and the loopback registry. Images are made in pure
Python and pushed with skopeo (gzip layers, as a registry keeps them), then
pulled into the engines: a ``docker load``-ed image keeps uncompressed layers.
"""

import io
import platform
import random
import re
import shutil
import subprocess
import tarfile

import pytest
from arv_keepdocker_testkit import imagebuild

from .conftest import load_from_keep
from .test_layers import block_files, progress_counts
from .test_upload_docker import uploaded_uuid

KiB = 1 << 10
MiB = 1 << 20
#: The platform an engine on this machine pulls from a multi-platform index.
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


# -- images in the loopback registry ---------------------------------------------------

def skopeo_push(layout_item, registry, name, tmp_path):
    """Push an ``imagebuild`` image or index to ``registry/name``; return its digest."""
    if shutil.which("skopeo") is None:
        pytest.fail("skopeo is not installed (.ci/install-engines installs it)")
    layout = tmp_path / ("oci-" + re.sub(r"[^a-z0-9]", "-", name))
    imagebuild.write_oci_layout(str(layout), [("src", layout_item)], as_tar=False)
    digest_file = tmp_path / (layout.name + ".digest")
    extra = ["--all"] if isinstance(layout_item, imagebuild.BuiltIndex) else []
    subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false",
                    "--digestfile", str(digest_file), *extra, "oci:%s:src" % layout,
                    "docker://%s/%s" % (registry.address, name)],
                   check=True, capture_output=True, timeout=300)
    return digest_file.read_text().strip()


class Pushed:
    """An image in the registry: its name and digests."""

    def __init__(self, ref, built, digest):
        self.ref = ref                      # 127.0.0.1:PORT/name:tag
        self.built = built                  # imagebuild.BuiltImage or BuiltIndex
        self.digest = digest                # what the registry names it by
        native = built.images if isinstance(built, imagebuild.BuiltIndex) else [built]
        native = [i for i in native if i.platform["architecture"] == HOST_ARCH] or native
        self.config_digest = native[0].image_id  # what an engine here pulls
        self.manifest_digest = native[0].manifest_digest

    @property
    def repo(self):
        return self.ref.rsplit(":", 1)[0]


def noise(seed, size):
    """Reproducible bytes that gzip cannot shrink."""
    return random.Random(seed).randbytes(size)


def gzip_layer(seed, size):
    """A gzip layer of ``size`` incompressible bytes (a registry's layer, as pushed)."""
    return imagebuild.make_layer({seed + ".bin": noise(seed, size)}, "gzip")


@pytest.fixture
def push(keepdocker_registry, tmp_path, unique):
    """``push(tag, layers)`` or ``push(tag, index)``: into ``<registry>/<unique>/app``.

    Layers given as ``{path: bytes}`` are gzip-compressed, as a registry keeps them.
    """
    def push(tag, what, name="app"):
        built = what if isinstance(what, imagebuild.BuiltIndex) else imagebuild.build_image(
            what, labels={"test": unique}, compression="gzip")
        ref = "%s/%s/%s:%s" % (keepdocker_registry.address, unique, name, tag)
        digest = skopeo_push(built, keepdocker_registry, ref.split("/", 1)[1], tmp_path)
        # gzip layers pass unchanged (skopeo would compress uncompressed ones).
        assert digest == built.manifest_digest
        return Pushed(ref, built, digest)
    return push


@pytest.fixture
def pulled(request):
    """``pulled(engine, pushed)``: pull into an engine; removed from it after the test."""
    done = []

    def pull(engine, image):
        engine.docker("pull", "-q", image.ref)
        done.append((engine, image))
        return engine.image_id(image.ref)

    yield pull
    for engine, image in done:
        for ref in {image.ref, image.digest, image.config_digest}:
            engine.docker("rmi", "-f", ref, check=False)


# -- what the engines report ------------------------------------------------------------

def hash_link(api, uuid):
    [link] = api.links().list(filters=[["head_uuid", "=", uuid],
                                       ["link_class", "=", "docker_image_hash"]]
                              ).execute()["items"]
    return link


def tar_names(api, uuid):
    import arvados.collection
    return list(arvados.collection.CollectionReader(uuid, api_client=api).keys())


def keep_bytes(api, uuid):
    import arvados.collection
    reader = arvados.collection.CollectionReader(uuid, api_client=api)
    [name] = reader.keys()
    with reader.open(name, "rb") as f:
        return name, f.read()


def docker_load(engine, data):
    """``docker load`` ``data``; return what it printed (``Loaded image...`` lines)."""
    return engine.docker("load", input=data).stdout.decode()


def load_into_containerd_store(api, uuid, engine):
    """crunch-run's load into a containerd-store engine: ``(loaded Id, its config digest)``.

    The image must be absent from ``engine``. ``docker load`` names what it
    loaded (a tag, or an id); ``docker image inspect`` gives the manifest
    digest as ``Id`` there, and the config digest comes from exporting it.
    """
    name, data = keep_bytes(api, uuid)
    printed = docker_load(engine, data)
    loaded = re.findall(r"^Loaded image(?: ID)?: (\S+)$", printed, re.M)
    assert len(loaded) == 1, printed
    return engine.image_id(loaded[0]), engine.config_digest(loaded[0]), printed


def on(engine):
    """Environment overrides pointing ``arv keepdocker`` at ``engine``."""
    return {"DOCKER_HOST": engine.host}


def upload(keepdocker, engine, *args):
    return uploaded_uuid(keepdocker("--no-progress", *args, env=on(engine)))


# -- reruns on the containerd store -------------------------------------------------------

def test_rerun_on_the_containerd_store_writes_nothing(
        keepdocker, keepdocker_docker26_containerd, push, pulled, arv_api, arvados_state,
        project, unique):
    engine = keepdocker_docker26_containerd
    image = push("v1", [gzip_layer(unique + "base", 64 * KiB), {"app.txt": b"app"}])
    engine_id = pulled(engine, image)
    assert engine_id == image.manifest_digest  # the containerd store's Id
    uuid = upload(keepdocker, engine, image.ref)
    assert tar_names(arv_api, uuid) == [image.config_digest + ".tar"]
    link = hash_link(arv_api, uuid)
    assert link["name"] == image.config_digest
    assert link["properties"]["image_manifest_digest"] == image.manifest_digest

    before = arvados_state.snapshot()
    for args in ([image.ref], [engine_id], [image.config_digest], [image.repo, "v1"]):
        proc = keepdocker("--batch-progress", *args, env=on(engine))
        assert uploaded_uuid(proc) == uuid, args
        assert " written " not in proc.stderr, args  # nothing was exported
    assert arvados_state.snapshot() == before

    in_project = upload(keepdocker, engine, "--project-uuid", project, image.ref)
    assert in_project != uuid
    assert arv_api.collections().get(uuid=in_project).execute()["owner_uuid"] == project
    before = arvados_state.snapshot()
    for args in ([image.ref], [engine_id]):
        proc = keepdocker("--batch-progress", "--project-uuid", project, *args, env=on(engine))
        assert uploaded_uuid(proc) == in_project, args
        assert " written " not in proc.stderr, args
    assert arvados_state.snapshot() == before


# -- the stored tar loads everywhere --------------------------------------------------------

def test_tar_stored_from_the_containerd_store_loads_in_every_store(
        keepdocker, keepdocker_docker26_containerd, keepdocker_docker26, keepdocker_docker_engine,
        keepdocker_podman_store, push, pulled, arv_api, tmp_path, unique):
    engine = keepdocker_docker26_containerd
    image = push("v1", [gzip_layer(unique + "load", 96 * KiB), {"etc/app.conf": b"load"}])
    pulled(engine, image)
    uuid = upload(keepdocker, engine, image.ref)
    name, data = keep_bytes(arv_api, uuid)
    assert name == image.config_digest + ".tar"
    members = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert "index.json" in members and "manifest.json" in members  # Docker 25+'s layout

    # Classic stores (Docker 20.10 and 26): crunch-run's check, the id is the tar's name.
    for classic in (keepdocker_docker_engine, keepdocker_docker26):
        try:
            assert load_from_keep(arv_api, uuid, classic) == image.config_digest
        finally:
            classic.docker("rmi", "-f", image.config_digest, check=False)
    # The containerd store: its Id is the manifest digest the tar's index.json
    # names, and the image it holds has the config the tar is named after.
    engine.docker("rmi", "-f", image.ref)
    loaded_id, config, printed = load_into_containerd_store(arv_api, uuid, engine)
    assert (loaded_id, config) == (image.manifest_digest, image.config_digest)
    # Exported by id (as 3.2.1 does), the tar names no tag: loaded by id.
    assert printed.strip() == "Loaded image ID: " + image.manifest_digest
    # podman loads the same bytes with the config digest as its id.
    archive = tmp_path / "from-keep.tar"
    archive.write_bytes(data)
    try:
        keepdocker_podman_store.podman("load", "-q", "-i", str(archive))
        assert keepdocker_podman_store.image_id(image.config_digest[7:]) == image.config_digest
    finally:
        keepdocker_podman_store.podman("rmi", "-f", image.config_digest[7:], check=False)


def test_tar_stored_from_a_classic_store_loads_in_the_containerd_store(
        keepdocker, keepdocker_docker26_containerd, keepdocker_docker_engine, push, pulled,
        arv_api, arvados_state, unique):
    image = push("v1", [gzip_layer(unique + "classic", 80 * KiB), {"classic.txt": b"c"}])
    assert pulled(keepdocker_docker_engine, image) == image.config_digest
    uuid = upload(keepdocker, keepdocker_docker_engine, image.ref)
    assert tar_names(arv_api, uuid) == [image.config_digest + ".tar"]
    engine = keepdocker_docker26_containerd
    loaded_id, config, _ = load_into_containerd_store(arv_api, uuid, engine)
    try:
        # Docker 20.10's classic archive has no index.json: the containerd store
        # makes a manifest of its own (with uncompressed layers) to name it by.
        assert config == image.config_digest
        assert loaded_id not in (image.config_digest, image.manifest_digest)
        # arv keepdocker cannot know that digest: it exports the image to learn
        # the config digest, then hands back the stored copy. Measured: 111104
        # bytes read, 92160 reused (the aligned layer), 18944 uploaded (tar
        # headers, JSON documents and the small layer, in blocks Keep already
        # has), no record written.
        before = arvados_state.snapshot()
        proc = keepdocker("--batch-progress", loaded_id, env=on(engine))
        assert uploaded_uuid(proc) == uuid
        counts = progress_counts(proc.stderr)
        assert counts["reused"] >= 80 * KiB and counts["uploaded"] < 32 * KiB
        assert arvados_state.snapshot() == before
    finally:
        engine.docker("rmi", "-f", loaded_id, check=False)


# -- arv-keepdocker 3.2.1's uploads from the containerd store -----------------------------

def test_3_2_1_upload_from_the_containerd_store_is_never_our_answer(
        keepdocker, arv_keepdocker_321, keepdocker_docker26_containerd, push, pulled, arv_api,
        arvados_state, unique):
    engine = keepdocker_docker26_containerd
    image = push("v1", [gzip_layer(unique + "old", 48 * KiB), {"old.txt": b"3.2.1"}])
    pulled(engine, image)
    # 3.2.1 takes the engine's Id for the image id: its tar and hash link are
    # named after the manifest digest, and a classic store would load that tar
    # as another id (the config digest).
    old = uploaded_uuid(arv_keepdocker_321("--no-resume", image.ref, env=on(engine)))
    assert tar_names(arv_api, old) == [image.manifest_digest + ".tar"]
    assert hash_link(arv_api, old)["name"] == image.manifest_digest

    ours = upload(keepdocker, engine, image.ref)
    assert ours != old
    assert tar_names(arv_api, ours) == [image.config_digest + ".tar"]
    assert hash_link(arv_api, ours)["properties"]["image_manifest_digest"] == \
        image.manifest_digest
    # 3.2.1 once more, so that its copy is the newest by name too.
    newer_old = uploaded_uuid(arv_keepdocker_321("--no-resume", "--force", image.ref,
                                                 env=on(engine)))
    assert tar_names(arv_api, newer_old) == [image.manifest_digest + ".tar"]

    before = arvados_state.snapshot()
    asks = ([image.ref], [image.repo, "v1"], [image.manifest_digest], [image.config_digest])
    for args in asks:
        assert upload(keepdocker, engine, *args) == ours, args
    # With the image gone from the engine, the answer comes from Arvados alone:
    # still our copy, never the <manifest digest>.tar one.
    engine.docker("rmi", "-f", image.ref)
    for args in asks:
        assert upload(keepdocker, engine, *args) == ours, args
    assert arvados_state.snapshot() == before


# -- a new version uploads only its new layer --------------------------------------------

def test_new_version_on_the_containerd_store_uploads_only_its_new_layer(
        keepdocker, keepdocker_docker26_containerd, push, pulled, arv_api, arv_cluster, unique):
    engine = keepdocker_docker26_containerd
    base, mid = gzip_layer(unique + "base", 1 * MiB), gzip_layer(unique + "mid", 2 * MiB)
    tops = [gzip_layer(unique + "top%d" % n, 512 * KiB) for n in (1, 2)]
    v1, v2 = (push("v%d" % (n + 1), [base, mid, top]) for n, top in enumerate(tops))
    for image in (v1, v2):
        pulled(engine, image)
    first = keepdocker("--batch-progress", v1.ref, env=on(engine))
    uploaded_uuid(first)
    before = block_files(arv_cluster)
    second = keepdocker("--batch-progress", v2.ref, env=on(engine))
    uuid2 = uploaded_uuid(second)
    assert tar_names(arv_api, uuid2) == [v2.config_digest + ".tar"]
    added = sum(size for key, size in block_files(arv_cluster).items() if key not in before)
    counts = progress_counts(second.stderr)
    # Measured: v1 3682304 bytes written and uploaded; v2 3682304 written and
    # read (docker save streams every byte), 3147048 reused (exactly the two
    # shared gzip layers), 535256 uploaded (its 524649-byte layer and about
    # 10 KiB of tar headers, manifests, config and index), 533720 new in Keep.
    assert counts["read"] == counts["written"] == progress_counts(first.stderr)["written"]
    assert counts["reused"] == base.size + mid.size  # the shared layers, as pulled (gzip)
    assert counts["uploaded"] + counts["reused"] == counts["written"]
    assert tops[1].size < counts["uploaded"] < tops[1].size + 16 * KiB
    assert added <= counts["uploaded"]


# -- one image, pulled into several stores, stored once -----------------------------------

class Store:
    """A place ``arv keepdocker`` reads images from, with what it takes to pull into it."""

    def __init__(self, name, engine):
        self.name, self.engine = name, engine

    def pull(self, image):
        if self.name == "podman":
            self.engine.podman("pull", "-q", "--tls-verify=false", image.ref)
            return self.engine.image_id(image.ref)
        self.engine.docker("pull", "-q", image.ref)
        return self.engine.image_id(image.ref)

    def remove(self, image):
        if self.name == "podman":
            self.engine.podman("rmi", "-f", image.ref, check=False)
        else:
            for ref in (image.ref, image.digest, image.config_digest):
                self.engine.docker("rmi", "-f", ref, check=False)

    def run(self, keepdocker, *args):
        if self.name == "podman":
            return keepdocker("--source", "containers-storage", *args, env={
                "CONTAINERS_STORAGE_CONF": self.engine.storage_conf})
        return keepdocker(*args, env=on(self.engine))


@pytest.fixture
def stores(keepdocker_docker26_containerd, keepdocker_docker26, keepdocker_docker_engine,
           keepdocker_podman_store):
    return {"containerd": Store("containerd", keepdocker_docker26_containerd),
            "docker26": Store("docker26", keepdocker_docker26),
            "docker20": Store("docker20", keepdocker_docker_engine),
            "podman": Store("podman", keepdocker_podman_store)}


@pytest.mark.parametrize("first, second", [
    ("docker20", "containerd"), ("docker26", "containerd"), ("podman", "containerd"),
    ("containerd", "docker26"), ("containerd", "podman")])
def test_stored_from_one_store_reused_from_the_other(
        first, second, keepdocker, stores, push, arv_api, arvados_state, unique):
    image = push("v1", [gzip_layer(unique + "shared", 256 * KiB), {"who.txt": b"both"}])
    try:
        ids = {name: stores[name].pull(image) for name in (first, second)}
        assert ids["containerd"] == image.digest
        uuid = uploaded_uuid(stores[first].run(keepdocker, "--no-progress", image.ref))
        assert tar_names(arv_api, uuid) == [image.config_digest + ".tar"]
        # The registry's digest, whatever the store exported (Docker 26's classic
        # store writes an index.json naming a manifest of its own).
        assert hash_link(arv_api, uuid)["properties"]["image_manifest_digest"] == image.digest
        before = arvados_state.snapshot()
        again = stores[second].run(keepdocker, "--batch-progress", image.ref)
        assert uploaded_uuid(again) == uuid
        assert " written " not in again.stderr  # nothing was even exported
        assert arvados_state.snapshot() == before
    finally:
        for name in (first, second):
            stores[name].remove(image)


# -- a multi-platform image ----------------------------------------------------------------

def test_multi_platform_pull_into_the_containerd_store(
        keepdocker, keepdocker_docker26_containerd, keepdocker_docker_engine, push, pulled,
        arv_api, arvados_state, unique):
    engine = keepdocker_docker26_containerd
    amd = imagebuild.build_image([{"arch": b"amd64 " + unique.encode()}], architecture="amd64",
                                 compression="gzip")
    arm = imagebuild.build_image([{"arch": b"arm64 " + unique.encode()}], architecture="arm64",
                                 variant="v8", compression="gzip")
    index = imagebuild.build_index([amd, arm])
    native = arm if HOST_ARCH == "arm64" else amd
    image = push("multi", index)
    assert image.digest == index.digest
    assert pulled(engine, image) == index.digest  # the containerd store's Id: the index
    proc = keepdocker("--batch-progress", image.ref, env=on(engine))
    uuid = uploaded_uuid(proc)
    # Measured: 9216 bytes written, read and uploaded (one small layer).
    assert progress_counts(proc.stderr)["uploaded"] < 16 * KiB
    assert tar_names(arv_api, uuid) == [native.image_id + ".tar"]
    link = hash_link(arv_api, uuid)
    assert link["name"] == native.image_id
    assert link["properties"]["image_index_digest"] == index.digest
    assert link["properties"]["image_manifest_digest"] == native.manifest_digest

    before = arvados_state.snapshot()
    for args in ([image.ref], [index.digest]):
        again = keepdocker("--batch-progress", *args, env=on(engine))
        assert uploaded_uuid(again) == uuid, args
        assert " written " not in again.stderr, args
    assert arvados_state.snapshot() == before
    # The stored tar is this machine's image, for a classic store too.
    try:
        assert load_from_keep(arv_api, uuid, keepdocker_docker_engine) == native.image_id
    finally:
        keepdocker_docker_engine.docker("rmi", "-f", native.image_id, check=False)
