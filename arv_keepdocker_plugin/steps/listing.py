"""Finding images stored in Arvados, and the ``arv keepdocker`` table.

:func:`list_images_in_arv` follows the API server's own preference
(``Collection.find_all_for_docker_image`` in
``services/api/app/models/collection.rb``): newest ``image_timestamp``
first, then newest link; images whose collection the caller cannot read
are dropped. It returns the same shapes as
``arvados.commands.keepdocker.list_images_in_arv`` 3.2.1
(``sdk/python/arvados/commands/keepdocker.py``).
"""

from __future__ import annotations

import datetime
import errno
import re

import ciso8601

from ..hooktypes import HASH_LINK, INDEX_DIGEST_PROPERTY, MANIFEST_DIGEST_PROPERTY, REPO_TAG_LINK
from ..keep.api_lists import list_all

#: Sort value for links without a usable ``image_timestamp``.
EARLIEST = datetime.datetime(datetime.MINYEAR, 1, 1)

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

TABLE_ROW = "{:30}  {:10}  {:12}  {:29}  {:20}\n"


def _parse_naive(text) -> datetime.datetime | None:
    try:
        return ciso8601.parse_datetime_as_naive(text)
    except (TypeError, ValueError):
        return None


def link_sort_key(link: dict) -> tuple:
    """(image timestamp or EARLIEST, link created_at): larger is preferred."""
    stamp = _parse_naive((link.get("properties") or {}).get("image_timestamp"))
    return (stamp or EARLIEST, _parse_naive(link.get("created_at")))


def docker_links(api, num_retries: int, filters: list) -> list[dict]:
    """Every readable link matching ``filters``, most preferred first."""
    links = list(list_all(
        api.links().list, num_retries=num_retries, filters=filters))
    for link in links:
        link["_sort_key"] = link_sort_key(link)
    links.sort(key=lambda link: link["_sort_key"], reverse=True)
    return links


def _entry(link: dict, dockerhash: str, repo="<none>", tag="<none>") -> dict:
    stamp, created = link["_sort_key"]
    return {
        "_sort_key": link["_sort_key"],
        "timestamp": created if stamp is EARLIEST else stamp,
        "collection": link["head_uuid"],
        "dockerhash": dockerhash,
        "repo": repo,
        "tag": tag,
    }


def list_images_in_arv(api, num_retries: int, image_name: str | None = None,
                       image_tag: str | None = None,
                       project_uuid: str | None = None) -> list[tuple[str, dict]]:
    """``[(collection_uuid, info), ...]`` in preference order.

    ``info`` has ``dockerhash``, ``repo``, ``tag``, ``timestamp`` (a naive
    datetime), ``collection`` and ``_sort_key``. With ``image_name``, look for
    ``repo+tag`` links named ``image_name:image_tag`` (tag default ``latest``),
    else for hash links whose name starts with ``image_name``
    (case-insensitively), else, for a full ``sha256:`` digest, for hash links
    recording it as the image's manifest digest. With ``project_uuid``, only links and collections
    owned by that project count.
    """
    owner = [["owner_uuid", "=", project_uuid]] if project_uuid is not None else []
    head_filter: list = []
    repo_links = hash_links = None
    if image_name:
        found = docker_links(api, num_retries, [
            ["link_class", "=", REPO_TAG_LINK],
            ["name", "=", "{}:{}".format(image_name, image_tag or "latest")]] + owner)
        if found:
            repo_links = found
        else:
            found = hash_links = docker_links(api, num_retries, [
                ["link_class", "=", HASH_LINK],
                ["name", "ilike", image_name + "%"]] + owner)
            for prop in (MANIFEST_DIGEST_PROPERTY, INDEX_DIGEST_PROPERTY):
                if found or not _DIGEST.match(image_name):
                    break
                # A manifest or index digest (what registries and Docker's
                # containerd store call an image) recorded beside the config digest.
                found = hash_links = docker_links(api, num_retries, [
                    ["link_class", "=", HASH_LINK],
                    ["properties." + prop, "=", image_name]] + owner)
        head_filter = [["head_uuid", "in", [link["head_uuid"] for link in found]]]

    if hash_links is None:
        hash_links = docker_links(
            api, num_retries, head_filter + [["link_class", "=", HASH_LINK]] + owner)
    # The most preferred hash link of each collection names its image. Walking
    # from least to most preferred keeps each collection at the position of its
    # least preferred link, the order in which unnamed images tie-break below.
    best_hash = {}
    for link in reversed(hash_links):
        best_hash[link["head_uuid"]] = link

    if repo_links is None:
        repo_links = docker_links(
            api, num_retries, head_filter + [["link_class", "=", REPO_TAG_LINK]] + owner)
    images = []
    names_seen: dict = {}
    for link in repo_links:
        seen = names_seen.setdefault(link["head_uuid"], set())
        if link["name"] in seen:
            continue
        seen.add(link["name"])
        hash_link = best_hash.get(link["head_uuid"])
        dockerhash = hash_link["name"] if hash_link else "<unknown>"
        images.append(_entry(link, dockerhash, *link["name"].rsplit(":", 1)))

    unnamed = [_entry(link, link["name"]) for uuid, link in best_hash.items()
               if not names_seen.get(uuid)]
    if unnamed:
        images.extend(unnamed)
        images.sort(key=lambda image: image["_sort_key"], reverse=True)

    readable = {c["uuid"] for c in list_all(
        api.collections().list, num_retries=num_retries,
        filters=[["uuid", "in", [image["collection"] for image in images]]] + owner,
        select=["uuid"])}
    return [(image["collection"], image) for image in images
            if image["collection"] in readable]


def write_table(images, stdout) -> None:
    """The ``arv-keepdocker`` listing, byte for byte."""
    try:
        stdout.write(TABLE_ROW.format("REPOSITORY", "TAG", "IMAGE ID", "COLLECTION", "CREATED"))
        for uuid, info in images:
            stdout.write(TABLE_ROW.format(info["repo"], info["tag"], info["dockerhash"][0:12],
                                          uuid, info["timestamp"].strftime("%c")))
    except OSError as error:
        if error.errno != errno.EPIPE:
            raise
