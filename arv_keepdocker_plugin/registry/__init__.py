"""A registry client for pulling images with no daemon (Docker Registry HTTP API V2).

It follows skopeo's and podman's rules for references, credentials,
registries.conf and certs.d, verifies every byte it hands over, and reports
every failure as one line (a :class:`~.errors.RegistryError`, which is a
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
:mod:`.resolve` (manifest and config fetching), :mod:`.blobs` (verified
streams), :mod:`.compression` (gzip, zstd), :mod:`.session` (all together).
"""

from .blobs import CHUNK_SIZE, BlobStream
from .compression import compression_of, decompress, layer_decompressor, zstd_available
from .config import PullSource, RegistriesConf, load_registries_conf
from .credentials import Credential, CredentialOptions, find_credential, parse_creds
from .errors import (CredentialError, DecompressionError, DigestMismatch, ManifestRefused,
                     ManifestUnknown, PlatformNotFound, RegistryAuthError, RegistryBlocked,
                     RegistryConfigError, RegistryError, RegistryUnreachable)
from .manifests import Descriptor
from .reference import RegistryReference, parse_reference
from .resolve import ResolvedImage
from .retry import RetryPolicy
from .session import PullOptions, RegistrySession
from .tls import TLSOptions

__all__ = [
    "BlobStream", "CHUNK_SIZE", "Credential", "CredentialError", "CredentialOptions",
    "DecompressionError", "Descriptor", "DigestMismatch", "ManifestRefused", "ManifestUnknown",
    "PlatformNotFound", "PullOptions", "PullSource", "RegistriesConf", "RegistryAuthError",
    "RegistryBlocked", "RegistryConfigError", "RegistryError", "RegistryReference",
    "RegistrySession", "RegistryUnreachable", "ResolvedImage", "RetryPolicy", "TLSOptions",
    "compression_of", "decompress", "find_credential", "layer_decompressor",
    "load_registries_conf", "parse_creds", "parse_reference", "zstd_available",
]
