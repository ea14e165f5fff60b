"""``containers-storage:NAME[:TAG]`` - images in podman's local store.

Uses the ``podman`` CLI with no daemon. The user's containers configuration
(``CONTAINERS_STORAGE_CONF``, ``storage.conf``, rootless stores) applies by
itself; ``--podman-root``, ``--podman-runroot`` and
``--podman-storage-driver`` select another store for one run.

podman prints ids as bare hex and tags fully qualified
(``localhost/name:tag``); this source hands over ``sha256:<hex>`` ids and the
``name:tag`` the user typed. The image is exported with
``podman save --format docker-archive <id>`` streamed from podman's stdout.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from collections.abc import Sequence

from .. import hookimpl
from ..errors import EngineUnavailable, ImageNotFound, SourceError
from ..image import Image, ImageSource, Reference
from ..names import checked_image_id, parse_engine_reference, split_domain
from .engine_cli import exporting, first_line, image_from_inspect, inspected

#: How long ``available()`` waits for ``podman version``.
PROBE_TIMEOUT = 10
#: How long an ``image inspect`` may take (podman may wait for a store lock).
INSPECT_TIMEOUT = 120

#: Registries pulled from without TLS verification: loopback only.
_LOOPBACK_REGISTRY = re.compile(r"^(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$")


def podman_binary() -> str | None:
    return shutil.which("podman")


def is_loopback_registry(name: str) -> bool:
    """Whether ``name`` (``host[:port]/path``) lives in a loopback registry."""
    registry, _path = split_domain(name)
    return registry is not None and bool(_LOOPBACK_REGISTRY.match(registry))


class ContainersStorageSource(ImageSource):
    """Images in podman's (containers-storage) local store."""

    name = "containers-storage"
    description = "images in podman's local store: podman CLI, no daemon"
    syntax = "NAME[:TAG]"
    serves_bare_names = True

    # -- the CLI ----------------------------------------------------------

    @staticmethod
    def store_args(options: argparse.Namespace | None) -> list[str]:
        """podman's global options from ``--podman-*`` (unset ones omitted)."""
        args: list[str] = []
        for flag, dest in (("--root", "podman_root"), ("--runroot", "podman_runroot"),
                           ("--storage-driver", "podman_storage_driver")):
            value = getattr(options, dest, None)
            if value:
                args += [flag, value]
        return args

    def _command(self, options, *args: str) -> list[str]:
        binary = podman_binary()
        if binary is None:
            raise EngineUnavailable("cannot find the podman command in PATH")
        return [binary, *self.store_args(options), *args]

    def _run(self, options, args: Sequence[str], timeout) -> subprocess.CompletedProcess:
        argv = self._command(options, *args)
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EngineUnavailable(f"podman did not answer `podman {args[0]}` within {timeout}s"
                                    ) from None

    # -- ImageSource ------------------------------------------------------

    def parse(self, details: str, tag: str | None) -> Reference:
        return parse_engine_reference(details, details, tag, transport=self.name)

    def available(self, options: argparse.Namespace) -> bool:
        if podman_binary() is None:
            return False
        try:
            probe = self._run(options, ["version", "--format", "{{.Client.Version}}"],
                              PROBE_TIMEOUT)
        except EngineUnavailable:
            return False
        return probe.returncode == 0

    def resolve(self, reference: Reference, options: argparse.Namespace) -> Image:
        target = reference.engine_target
        if reference.image_id and target.startswith("sha256:"):
            # podman takes full or short bare hex, but not "sha256:<short>".
            target = target[len("sha256:"):]
        result = self._run(options, ["image", "inspect", target], INSPECT_TIMEOUT)
        if result.returncode != 0:
            message = first_line(result.stderr.decode("utf-8", "replace"))
            if "image not known" in message or "no such image" in message.lower():
                raise ImageNotFound("no matching image found for "
                                    f"{reference.image_id or reference.repo_tag}")
            raise SourceError(f"podman image inspect failed: {message}")
        info = inspected(result.stdout, target, "podman image inspect")
        # podman prints the id as bare hex; the image's id is the config digest.
        hex_id = checked_image_id(info.get("Id")).rpartition(":")[2]
        image_id = "sha256:" + hex_id
        save = self._command(options, "save", "--format", "docker-archive", hex_id)
        return image_from_inspect(
            info, self.name, reference, image_id,
            lambda: exporting(save, "podman save " + hex_id),
            manifest_digest=info.get("Digest") or None)

    def pull(self, reference: Reference, options: argparse.Namespace) -> None:
        if reference.repo_tag is None or reference.name is None:
            raise SourceError(f"cannot pull {reference.image_id}: an image id is not a pullable "
                              "name"
                              )
        args = ["pull", "--quiet"]
        if is_loopback_registry(reference.name):
            args.append("--tls-verify=false")
        result = self._run(options, args + [reference.repo_tag], timeout=None)
        if result.returncode != 0:
            raise SourceError("podman pull {} failed: {}".format(
                reference.repo_tag, first_line(result.stderr.decode("utf-8", "replace"))))


@hookimpl
def keepdocker_add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("containers-storage (podman) source")
    group.add_argument("--podman-root", metavar="DIR", dest="podman_root",
                       help="podman store root (podman --root)")
    group.add_argument("--podman-runroot", metavar="DIR", dest="podman_runroot",
                       help="podman run root (podman --runroot)")
    group.add_argument("--podman-storage-driver", metavar="NAME",
                       dest="podman_storage_driver",
                       help="podman storage driver (podman --storage-driver)")


@hookimpl
def keepdocker_register_sources(register):
    register(ContainersStorageSource())
