"""The demo: store an image in a local Arvados cluster with no Docker daemon.

1. build a two-layer image in pure Python and save it as an OCI archive
   (what `podman save --format oci-archive` or buildah would give you);
2. start the embedded local Arvados cluster (API + Keep over HTTPS) in .demo/;
3. `arv keepdocker oci-archive:...:demo/hello:1.0` stores it;
4. `arv keepdocker` lists it, exactly as arv-keepdocker 3.2.1 would;
5. check what crunch-run needs: the collection holds exactly one
   `<image id>.tar`, a docker-archive whose config digest is that id.

Run it with `dev/demo` (which sets up .venv first). It leaves the cluster
running in .demo/ so you can look around (`source .demo/cluster/env`); stop it
with `arv-keepdocker-cluster stop --dir .demo/cluster`.
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"


def say(text):
    print("\n== " + text, flush=True)


def run(*args, env):
    print("$ " + " ".join(args), flush=True)
    proc = subprocess.run(args, env=env, text=True, capture_output=True)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"demo: command failed with exit status {proc.returncode}")
    return proc.stdout


def main():
    from arv_keepdocker_testkit import imagebuild
    from arv_keepdocker_testkit.cluster import Cluster

    DEMO.mkdir(exist_ok=True)
    say("1. Build an image in pure Python and save it as an OCI archive")
    image = imagebuild.build_image(
        [{"etc/motd": b"Hello from arv-keepdocker-plugin\n"},
         {"app/hello.sh": b"#!/bin/sh\ncat /etc/motd\n"}],
        labels={"org.opencontainers.image.title": "demo hello",
                "org.opencontainers.image.version": "1.0"},
        cmd=["/bin/sh", "/app/hello.sh"])
    archive = DEMO / "hello-oci.tar"
    imagebuild.write_oci_layout(str(archive), [("demo/hello:1.0", image)], as_tar=True)
    print(f"{archive} ({archive.stat().st_size} bytes), image id {image.image_id}")

    say("2. Start the embedded local Arvados cluster")
    cluster = Cluster(str(DEMO / "cluster"))
    cluster.start()
    print(f"API + Keep at https://{cluster.api_host}/ (state kept in {cluster.dir})")
    home = DEMO / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    env = dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
               **cluster.env("alice"))
    env.pop("DOCKER_HOST", None)
    arv = [sys.executable, "-m", "arv_keepdocker_plugin"]
    if shutil.which("arv", path=str(Path(sys.executable).parent)):
        arv = [str(Path(sys.executable).parent / "arv"), "keepdocker"]

    say("3. Store it: no Docker daemon, no temporary copy of the image")
    uuid = run(*arv, "--no-progress", f"oci-archive:{archive}:demo/hello:1.0",
               env=env).strip()

    say("4. List the images in Arvados (arv-keepdocker 3.2.1's format)")
    run(*arv, env=env)
    run(*arv, "--list-plugins", env=env)

    say("5. Check what crunch-run will load")
    api = cluster.api("alice")
    import arvados.collection
    reader = arvados.collection.CollectionReader(uuid, api_client=api)
    names = list(reader.keys())
    assert names == [image.image_id + ".tar"], names
    with reader.open(names[0], "rb") as f:
        data = f.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        config = tar.extractfile(manifest[0]["Config"]).read()
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    assert digest == image.image_id, (digest, image.image_id)
    links = api.links().list(filters=[["head_uuid", "=", uuid]]).execute()["items"]
    record = api.collections().get(uuid=uuid).execute()
    print("collection {} ({})".format(uuid, record["name"]))
    print(f"  file: {names[0]} ({len(data)} bytes), config digest matches the name")
    for link in sorted(links, key=lambda l: l["link_class"]):
        print("  link: {} {}".format(link["link_class"], link["name"]))
    print("  properties: {}".format(json.dumps(record["properties"], sort_keys=True)))
    print(f"\nDemo OK. The cluster is still running: `source {cluster.dir}/env`, then "
          f"`arv keepdocker`; stop it with `arv-keepdocker-cluster stop --dir {cluster.dir}`."
          )


if __name__ == "__main__":
    main()
