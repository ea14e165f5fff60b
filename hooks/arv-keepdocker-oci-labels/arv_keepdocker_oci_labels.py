"""Record an image's OCI annotation labels as Arvados collection properties.

Only labels in the ``org.opencontainers.image.`` namespace are copied (they
are the standard, documented ones); keys are kept verbatim so a property filter
like ``["properties.org.opencontainers.image.revision", "=", SHA]`` finds the
images built from one commit. Values must be strings; others are skipped.
"""

from arv_keepdocker_plugin import hookimpl

PREFIX = "org.opencontainers.image."


def oci_labels(labels: dict) -> dict:
    return {key: value for key, value in sorted((labels or {}).items())
            if key.startswith(PREFIX) and isinstance(value, str)}


@hookimpl
def keepdocker_collection_properties(image):
    return oci_labels(image.labels) or None
