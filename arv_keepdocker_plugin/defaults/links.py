"""The Arvados links and properties that make an image findable (3.2.1's; essential).

* property ``docker-image-repo-tag`` = ``repo:tag`` (null when given by id);
* link ``docker_image_hash`` named after the image id;
* link ``docker_image_repo+tag`` named ``repo:tag`` when given by name;
* both links carry ``properties.image_timestamp`` = the config's ``created``.

This is what ``sdk/python/arvados/commands/keepdocker.py`` (3.2.1) makes and
what the API server's ``Collection.find_all_for_docker_image``
(``services/api/app/models/collection.rb``) looks images up by. Besides, the
manifest digest is recorded on the hash link when a source knows it (podman,
OCI layouts, pulled images, Docker's containerd store), so that either digest
finds the image.
"""

from typing import Any

from .. import hookimpl
from ..hooktypes import (
    HASH_LINK,
    INDEX_DIGEST_PROPERTY,
    MANIFEST_DIGEST_PROPERTY,
    REPO_TAG_LINK,
    LinkSpec,
)
from ..image import Image

#: The collection property 3.2.1 sets.
REPO_TAG_PROPERTY = "docker-image-repo-tag"


def link_properties(image: Image) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    if image.created is not None:
        properties["image_timestamp"] = image.created
    if image.manifest_digest and image.manifest_digest != image.image_id:
        properties[MANIFEST_DIGEST_PROPERTY] = image.manifest_digest
    if image.index_digest and image.index_digest not in (image.image_id,
                                                         image.manifest_digest):
        properties[INDEX_DIGEST_PROPERTY] = image.index_digest
    return properties


@hookimpl(trylast=True)
def keepdocker_collection_properties(repo_tag: str | None) -> dict[str, Any]:
    return {REPO_TAG_PROPERTY: repo_tag}


@hookimpl(trylast=True)
def keepdocker_links(image: Image, repo_tag: str | None) -> list[LinkSpec]:
    properties = link_properties(image)
    links: list[LinkSpec] = [
        {"link_class": HASH_LINK, "name": image.image_id, "properties": properties}]
    if repo_tag:
        links.append({"link_class": REPO_TAG_LINK, "name": repo_tag,
                      "properties": dict(properties)})
    return links
