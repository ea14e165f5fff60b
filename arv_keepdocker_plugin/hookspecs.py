"""The hook specifications: the whole contract for plugin authors.

Every hook is prefixed ``keepdocker_``. Implement any of them in a module or
class marked with :data:`arv_keepdocker_plugin.hookimpl` and register it under
the ``arv_keepdocker`` entry-point group. Implementations may accept any
subset of a hook's arguments, by name.

Order of calls during an upload::

    keepdocker_add_arguments      (once, building the command line)
    keepdocker_image_sources      (once, collecting sources)
    keepdocker_default_source     (bare NAME[:TAG] only)
    keepdocker_check_format       (before anything is written to Arvados)
    keepdocker_collection_properties
    keepdocker_links
    keepdocker_after_upload
"""

from __future__ import annotations

import argparse
from typing import Any, Optional, Sequence

import pluggy

from . import PROJECT_NAME
from .image import Image, ImageSource

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def keepdocker_add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add command-line options to ``arv keepdocker``.

    :param parser: the command's parser. Add only long options that carry your
        plugin's name or purpose, so that they cannot shadow an
        arv-keepdocker 3.2.1 flag.

    Called once for every plugin (not firstresult); results are ignored.
    Options appear in the ``options`` namespace passed to sources and to the
    other hooks.
    """


@hookspec
def keepdocker_image_sources() -> Sequence[ImageSource]:
    """Return the image sources this plugin provides.

    :returns: a list of :class:`~arv_keepdocker_plugin.image.ImageSource`
        instances. Each source's ``name`` is the transport users type
        (``NAME:DETAILS``) and the value of ``--source``.

    All results are collected (not firstresult). When two plugins offer the same name, the one
    registered later (a third-party plugin rather than a default) wins, and
    ``--list-plugins`` shows which.
    """


@hookspec(firstresult=True)
def keepdocker_default_source(
    reference: str, sources: dict, options: argparse.Namespace
) -> Optional[str]:
    """Choose the source for a reference typed without a transport.

    :param reference: the image argument as typed (``repo:tag``, an id...).
    :param sources: ``{name: ImageSource}`` of every loaded source.
    :param options: the parsed command line.
    :returns: a source name, or ``None`` to let another plugin decide.

    firstresult: the first non-``None`` answer wins. The default plugin answers
    last: ``docker-daemon`` when a Docker engine answers, else
    ``containers-storage`` when podman is available, else ``docker-daemon``
    (whose error then says the engine is missing).
    """


@hookspec(firstresult=True)
def keepdocker_check_format(
    image: Image, supported_formats: Optional[list], options: argparse.Namespace
) -> Optional[tuple]:
    """Decide whether this cluster may store ``image``.

    :param image: the resolved image (``image.image_id``, ``image.format``).
    :param supported_formats: the discovery document's ``dockerImageFormats``
        (``None`` when the key is absent).
    :param options: the parsed command line.
    :returns: ``(ok, message)``: ``ok`` a bool; ``message`` the warning or
        error text to log (or ``None``). Return ``None`` to defer to the next
        implementation.

    firstresult. The default (trylast) reproduces arv-keepdocker 3.2.1: an
    empty or missing list is refused with "server does not specify supported
    image formats"; otherwise ``image.format`` must be in the list.
    ``--force-image-format`` turns a refusal into a warning; that is the
    pipeline's business, not the hook's.
    """


@hookspec
def keepdocker_collection_properties(
    image: Image, repo_tag: Optional[str], options: argparse.Namespace
) -> Optional[dict]:
    """Return properties to merge into the image collection's properties.

    :param image: the image being stored (``image.labels``, ``image.config``).
    :param repo_tag: ``repo:tag`` as typed, or ``None`` when given by id.
    :param options: the parsed command line.
    :returns: a dict (or ``None``). Every result is merged into one dict, the
        defaults first and third-party plugins after them, so a plugin can
        override a default key. Properties already on the collection (for
        instance managed properties set by the server) are never dropped.

    Every implementation is called (not firstresult).

    The default sets ``docker-image-repo-tag`` to ``repo_tag`` (null when
    given by id), as arv-keepdocker 3.2.1 does.
    """


@hookspec
def keepdocker_links(
    image: Image, repo_tag: Optional[str], options: argparse.Namespace
) -> Optional[list]:
    """Return the links that make the stored image findable.

    :param image: the image being stored.
    :param repo_tag: ``repo:tag`` as typed, or ``None`` when given by id.
    :param options: the parsed command line.
    :returns: a list of ``{"link_class": str, "name": str, "properties": dict}``
        dicts (or ``None``). The pipeline fills in ``head_uuid`` (the image
        collection) and ``owner_uuid`` (``--project-uuid`` when given). All
        results are collected (not firstresult), defaults first; when a link
        fails to be created, every link and the collection created by this
        run are removed again.

    The defaults return a ``docker_image_hash`` link named ``image.image_id``
    and, when ``repo_tag`` is set, a ``docker_image_repo+tag`` link, both with
    ``properties.image_timestamp`` = ``image.created`` when known.
    """


@hookspec
def keepdocker_after_upload(
    image: Image, collection: dict, links: list, api: Any
) -> None:
    """Called once the collection and its links exist (notification only).

    :param image: the stored image.
    :param collection: the collection record (``uuid``, ``portable_data_hash``...).
    :param links: the link records created by this run (possibly empty when an
        existing collection was reused).
    :param api: the Arvados API client, for plugins that record more.

    Every implementation is called (not firstresult); results are ignored.
    An exception here is reported but does not undo the upload.
    """
