"""A registry client for pulling images with no daemon (Docker Registry HTTP API V2).

It follows skopeo's and podman's rules for references, credentials,
registries.conf and certs.d, verifies every byte it hands over, and reports
every failure as one line (a :class:`~.registry_errors.RegistryError`, which is a
:class:`~arv_keepdocker_plugin.errors.SourceError`) without secrets.

The image source uses :class:`RegistrySession`::

    with RegistrySession(PullOptions(...)) as session:
        image = session.resolve("debian:12")          # -> ResolvedImage
        image.familiar                                 # "debian:12"
        image.manifest_digest, image.config, image.layers
        with session.blob(image, image.layers[0]) as stream:
            for chunk in decompress(stream, compression_of(image.layers[0].media_type)):
                ...

Modules, one concern each: :mod:`.reference` (parsing names),
:mod:`.credentials` (auth files, helpers), :mod:`.config` (registries.conf),
:mod:`.tls` (certs.d), :mod:`.auth` (challenges, tokens), :mod:`.retry`,
:mod:`.netfailures` (network errors in words), :mod:`.client` (HTTP),
:mod:`.manifests` (formats, platforms),
:mod:`.lookup` (manifest and config fetching), :mod:`.blobs` (verified
streams), :mod:`.layer_compression` (gzip, zstd), :mod:`.session` (all together).
"""

import importlib
from typing import TYPE_CHECKING, Any

from .config import PullSource, RegistriesConf, load_registries_conf
from .credentials import Credential, CredentialOptions, find_credential, parse_creds
from .layer_compression import compression_of, decompress, layer_decompressor, zstd_available
from .manifests import Descriptor
from .reference import RegistryReference, parse_reference
from .registry_errors import (
    CredentialError,
    DecompressionError,
    DigestMismatch,
    ManifestRefused,
    ManifestUnknown,
    PlatformNotFound,
    RegistryAuthError,
    RegistryBlocked,
    RegistryConfigError,
    RegistryError,
    RegistryUnreachable,
)
from .retry import RetryPolicy
from .tls import TLSOptions

if TYPE_CHECKING:
    from .blobs import CHUNK_SIZE, BlobStream
    from .lookup import ResolvedImage
    from .session import PullOptions, RegistrySession

#: Names whose modules import ``requests`` (about 70 ms): loaded on first use
#: (PEP 562), so a run that never touches a registry does not pay for them at
#: start-up (every run registers the ``docker://`` source and its options).
_ON_FIRST_USE = {"CHUNK_SIZE": "blobs", "BlobStream": "blobs", "ResolvedImage": "lookup",
                 "PullOptions": "session", "RegistrySession": "session"}


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("." + module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "BlobStream", "CHUNK_SIZE", "Credential", "CredentialError", "CredentialOptions",
    "DecompressionError", "Descriptor", "DigestMismatch", "ManifestRefused", "ManifestUnknown",
    "PlatformNotFound", "PullOptions", "PullSource", "RegistriesConf", "RegistryAuthError",
    "RegistryBlocked", "RegistryConfigError", "RegistryError", "RegistryReference",
    "RegistrySession", "RegistryUnreachable", "ResolvedImage", "RetryPolicy", "TLSOptions",
    "compression_of", "decompress", "find_credential", "layer_decompressor",
    "load_registries_conf", "parse_creds", "parse_reference", "zstd_available",
]
