"""The hook specifications: the whole contract for plugin authors.

Every hook is prefixed ``keepdocker_``. Implement any of them in a module or
class marked with :data:`arv_keepdocker_plugin.hookimpl` and register it under
the ``arv_keepdocker`` entry-point group. Implementations may accept any
subset of a hook's arguments, by name.

Order of calls in one run (see :mod:`arv_keepdocker_plugin.steps.pipeline`)::

    keepdocker_add_arguments          building the command line
    keepdocker_register_sources       once: the source registry
    keepdocker_default_source         a bare NAME[:TAG] only
    keepdocker_check_format           before anything is written to Arvados
    keepdocker_stored_layers          uploads only: layers already in Keep
    keepdocker_collection_properties  upload, or copy into another project
    keepdocker_links                  upload and reuse alike
    keepdocker_after_upload           once everything exists

Third parties can add but never weaken: every format verdict counts and any
refusal wins; the default links and the default properties' keys cannot be
removed or changed by a plugin; a stored layer is used unread only if the core
trusts the record (this user wrote it, for content still stored), whatever
plugin found it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pluggy

from . import PROJECT_NAME
from .hooktypes import FormatVerdict, LayerRecord, LinkSpec
from .image import Image, ImageSource

hookspec = pluggy.HookspecMarker(PROJECT_NAME)

#: An Arvados API client (``arvados.api("v1")``); typed loosely because the
#: SDK's client class is generated from the discovery document at run time.
ArvadosAPI = Any


@hookspec
def keepdocker_add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add command-line options to ``arv keepdocker``: the one way a plugin does so.

    :param parser: the command's parser. Add only long options that carry your
        plugin's name or purpose, so that they cannot shadow an
        arv-keepdocker 3.2.1 flag; group them with
        ``parser.add_argument_group(...)``.

    Called once for every plugin (not firstresult); results are ignored.
    Options appear in the ``options`` namespace passed to sources and to the
    other hooks.
    """


@hookspec
def keepdocker_register_sources(register: Callable[[ImageSource], None]) -> None:
    """Register the image sources this plugin provides.

    :param register: call ``register(source)`` once per
        :class:`~arv_keepdocker_plugin.image.ImageSource` instance. Its
        ``name`` is the transport users type (``NAME:DETAILS``) and the value
        of ``--source``; its ``syntax`` and ``description`` appear in
        ``--help`` and ``--list-plugins``.

    Called once per run for every plugin (not firstresult), each plugin's
    implementation on its own with a ``register`` of its own, so every
    source is credited to the plugin that registered it (however the
    implementation is decorated); results are ignored. An implementation
    that raises is reported among broken plugins and registers nothing.
    Names are unique: a source whose name is already registered (default
    sources register first) is refused and its plugin reported among broken
    plugins, as containers/image's transport registry refuses a second
    transport of one name. To replace a default source, disable it
    (``ARV_KEEPDOCKER_DISABLE_PLUGINS=docker_daemon``).
    """


@hookspec(firstresult=True)
def keepdocker_default_source(
    reference: str, sources: Mapping[str, ImageSource], options: argparse.Namespace
) -> str | None:
    """Choose the source for a reference typed without a transport.

    :param reference: the image argument as typed (``repo:tag``, an id...).
    :param sources: ``{name: ImageSource}`` of every registered source.
    :param options: the parsed command line.
    :returns: a source name, or ``None`` to let another plugin decide.

    firstresult: the first non-``None`` answer wins. The default plugin
    (essential) answers last: ``docker-daemon`` when a Docker engine answers,
    else ``containers-storage`` when podman is available, else
    ``docker-daemon`` (whose error then says the engine is missing).
    """


@hookspec
def keepdocker_check_format(
    image: Image, supported_formats: Sequence[str] | None, options: argparse.Namespace
) -> FormatVerdict | None:
    """Decide whether this cluster may store ``image``.

    :param image: the resolved image (``image.image_id``, ``image.format``).
    :param supported_formats: the discovery document's ``dockerImageFormats``
        (``None`` when the key is absent).
    :param options: the parsed command line.
    :returns: a :class:`~arv_keepdocker_plugin.FormatVerdict` ``(ok,
        message)``, or ``None`` for no opinion.

    Every implementation is called (not firstresult) and every verdict
    counts: any refusal refuses the image, so a plugin can tighten the
    cluster's rule but never loosen it. Only ``--force-image-format`` turns
    refusals into warnings. The default (essential) is arv-keepdocker 3.2.1's
    rule: an empty or missing list is refused with "server does not specify
    supported image formats"; otherwise ``image.format`` must be in the list.
    """


@hookspec(firstresult=True)
def keepdocker_stored_layers(
    api: ArvadosAPI, digests: Sequence[str], owner: str, num_retries: int
) -> Sequence[LayerRecord] | None:
    """Find where layers of the image being uploaded are already stored.

    :param api: the Arvados API client.
    :param digests: layer digests (``sha256:<hex>``): the digest of a layer
        as it sits in the archive, and its diff id when that differs.
    :param owner: the UUID that will own the upload (``--project-uuid`` or
        the caller), for indexes that prefer its records.
    :param num_retries: retries for API requests.
    :returns: :class:`~arv_keepdocker_plugin.LayerRecord` candidates, any
        number per digest, or ``None`` to let the next implementation answer.

    firstresult. The default, ``layer_index``, answers last from its
    ``docker_image_layer`` links. A record only says where to look: the core
    reads the link a record names (``LayerRecord.link_uuid``) and the
    collection itself, and lets the blocks stand in for the bytes unread only
    when that link was last written by the uploading user and holds the
    portable data hash the collection still has (see docs/trust.md). What a
    record says about its owner or about being checked is ignored; blocks the
    core does not trust are compared with the local bytes before any is
    reused (or, for an image that would be downloaded, read back from Keep
    and hashed).

    Changed with the writer rule: :class:`~arv_keepdocker_plugin.LayerRecord`
    gained ``link_uuid`` (optional, last); ``owner_uuid`` and ``checked`` are
    no longer used for trust. A record without ``link_uuid`` is never trusted
    unread.
    """


@hookspec
def keepdocker_collection_properties(
    image: Image, repo_tag: str | None, options: argparse.Namespace
) -> Mapping[str, Any] | None:
    """Return properties to add to the image collection's properties.

    :param image: the image being stored (``image.labels``, ``image.config``).
    :param repo_tag: ``repo:tag`` as linked, or ``None`` when given by id.
    :param options: the parsed command line.
    :returns: a mapping (or ``None``). Results are merged into one dict;
        keys the default plugin sets (``docker-image-repo-tag``) keep the
        default's value, so plugins add properties but cannot change
        3.2.1's. Properties already on the collection (for instance managed
        properties set by the server) are never dropped.

    Every implementation is called (not firstresult), on a fresh upload and
    when an image is copied into another project.
    """


@hookspec
def keepdocker_links(
    image: Image, repo_tag: str | None, options: argparse.Namespace
) -> Sequence[LinkSpec] | None:
    """Return the links that make the stored image findable.

    :param image: the image being stored or reused (on a fresh upload its
        ``layers`` carry the ``offset`` where each landed in the tar).
    :param repo_tag: ``repo:tag`` as linked, or ``None`` when given by id.
    :param options: the parsed command line.
    :returns: :class:`~arv_keepdocker_plugin.LinkSpec` dicts (or ``None``).
        The pipeline fills in ``head_uuid`` (the image collection) and
        ``owner_uuid`` (``--project-uuid`` when given).

    Every implementation is called (not firstresult), on a fresh upload and
    when an image already in Arvados is reused. On reuse a link is made only
    if the owner has none of that class and name on the collection yet, so a
    rerun writes nothing. The default (essential) returns arv-keepdocker
    3.2.1's ``docker_image_hash`` link (named ``image.image_id``) and, when
    ``repo_tag`` is set, its ``docker_image_repo+tag`` link; plugins add
    links, and a plugin's link of those two classes is refused, so they are
    never removed, renamed or doubled. When a link fails to be created,
    every link and the collection created by this run are removed again.
    """


@hookspec
def keepdocker_after_upload(
    image: Image, collection: Mapping[str, Any], links: Sequence[Mapping[str, Any]],
    api: ArvadosAPI,
) -> None:
    """Called once the collection and its links exist (notification only).

    :param image: the stored image.
    :param collection: the collection record (``uuid``, ``portable_data_hash``...).
    :param links: the link records created by this run (possibly empty when an
        existing collection was reused).
    :param api: the Arvados API client, for plugins that record more.

    Every implementation is called (not firstresult); results are ignored.
    An exception here is reported as a warning and does not undo the upload.
    """
