"""The Arvados links and properties that make an image findable (3.2.1's).

* property ``docker-image-repo-tag`` = ``repo:tag`` (null when given by id);
* link ``docker_image_hash`` named after the image id;
* link ``docker_image_repo+tag`` named ``repo:tag`` when given by name;
* both links carry ``properties.image_timestamp`` = the config's ``created``.
"""

from .. import hookimpl
# The manifest digest is recorded beside the config digest when a source knows
# it (podman, OCI layouts, pulled images, Docker's containerd store), so that
# either finds the image.
from ..listing import MANIFEST_DIGEST_PROPERTY


def link_properties(image):
    properties = {}
    if image.created is not None:
        properties["image_timestamp"] = image.created
    if image.manifest_digest and image.manifest_digest != image.image_id:
        properties[MANIFEST_DIGEST_PROPERTY] = image.manifest_digest
    return properties


@hookimpl(trylast=True)
def keepdocker_collection_properties(repo_tag):
    return {"docker-image-repo-tag": repo_tag}


@hookimpl(trylast=True)
def keepdocker_links(image, repo_tag):
    properties = link_properties(image)
    links = [{"link_class": "docker_image_hash", "name": image.image_id,
              "properties": properties}]
    if repo_tag:
        links.append({"link_class": "docker_image_repo+tag", "name": repo_tag,
                      "properties": dict(properties)})
    return links
