"""A pull session: the one object an image source needs.

::

    options = PullOptions(credentials=CredentialOptions(authfile=...),
                          tls=TLSOptions(verify=True), platform=Platform.parse("linux/amd64"))
    with RegistrySession(options) as session:
        image = session.resolve("debian:12")       # ResolvedImage
        for layer in image.layers:
            with session.blob(image, layer) as stream:
                for chunk in stream:                # verified while streaming
                    ...

:meth:`RegistrySession.resolve` applies registries.conf (blocked prefixes,
mirrors, ``location`` rewrites), finds each endpoint's credentials and TLS
settings, and tries the endpoints in order; the image's ``source`` says
which one served it, and its blobs come from that same endpoint.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from ..archive.platforms import Platform, host_platform
from .auth import TokenCache
from .blobs import CHUNK_SIZE, BlobStream
from .client import RegistryClient
from .config import PullSource, RegistriesConf, load_registries_conf
from .credentials import Credential, CredentialOptions, find_credential
from .lookup import ResolvedImage, resolve_image
from .manifests import Descriptor
from .reference import RegistryReference, parse_reference
from .registry_errors import Redactor, RegistryError, join_errors
from .retry import RetryPolicy
from .tls import TLSOptions, host_tls

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PullOptions:
    """Everything a pull can be told.

    :ivar credentials: ``--src-creds``, ``--src-authfile``, ``--src-no-creds``.
    :ivar tls: ``--src-tls-verify``, ``--src-cert-dir`` (and certs.d roots).
    :ivar platform: the platform to pick from an index (default: this machine's).
    :ivar registries_conf: a loaded configuration; ``None`` reads the usual files.
    :ivar retry: retry and resume policy.
    :ivar timeout: seconds to wait for a connection or for data.
    :ivar env: the environment for file lookups (``os.environ`` if ``None``).
    """

    credentials: CredentialOptions = CredentialOptions()
    tls: TLSOptions = TLSOptions()
    platform: Platform | None = None
    registries_conf: RegistriesConf | None = None
    retry: RetryPolicy = RetryPolicy()
    timeout: float = 60.0
    env: Mapping[str, str] | None = dataclasses.field(default=None, repr=False)


class RegistrySession:
    """Resolves images and streams their blobs; close it to free connections."""

    def __init__(self, options: PullOptions = PullOptions()) -> None:
        self.options = options
        self.redactor = Redactor()
        if options.credentials.creds is not None:
            self.redactor.add(*options.credentials.creds.secrets())
        self._tokens = TokenCache()
        self._credentials: dict[tuple[str, str], Credential | None] = {}
        self._clients: dict[tuple[str, bool, Credential | None], RegistryClient] = {}
        self._conf = options.registries_conf
        self._received_by_closed = 0

    @property
    def registries_conf(self) -> RegistriesConf:
        """The registries.conf in force (read on first use)."""
        if self._conf is None:
            self._conf = load_registries_conf(env=self.options.env)
        return self._conf

    def pull_sources(self, reference: RegistryReference) -> list[PullSource]:
        """The endpoints to try for ``reference``, in order (raises when blocked)."""
        return self.registries_conf.pull_sources(reference)

    def credential(self, registry: str, repository: str) -> Credential | None:
        """The credential for ``registry``/``repository`` (looked up once)."""
        key = (registry, repository)
        if key not in self._credentials:
            found = find_credential(registry, repository, self.options.credentials,
                                    self.options.env)
            if found is not None:
                self.redactor.add(*found.secrets())
                log.debug("credential for %s/%s: %r", registry, repository, found)
            self._credentials[key] = found
        return self._credentials[key]

    def client(self, source: PullSource) -> RegistryClient:
        """The client for ``source`` (one per registry, security and credential)."""
        registry = source.reference.registry
        credential = self.credential(registry, source.reference.repository)
        key = (registry, source.insecure, credential)
        client = self._clients.get(key)
        if client is None:
            client = RegistryClient(
                registry, insecure=source.insecure,
                tls=host_tls(registry, self.options.tls, source.insecure, self.options.env),
                credential=credential, retry=self.options.retry, timeout=self.options.timeout,
                tokens=self._tokens, redactor=self.redactor)
            self._clients[key] = client
        return client

    def resolve(self, reference: str | RegistryReference) -> ResolvedImage:
        """Resolve ``reference`` (``[REGISTRY/]NAME[:TAG][@DIGEST]``) to an image.

        Endpoints (mirrors, then the primary) are tried in order; the first
        that serves the image wins. When all fail, the error says what each
        answered, on one line, and has the class of the primary's error.

        :raises BadReference: an invalid reference.
        :raises RegistryError: blocked, unreachable, unauthorized, unknown...
        """
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        platform = self.options.platform or host_platform()
        sources = self.pull_sources(ref)
        failures: list[tuple[PullSource, RegistryError]] = []
        for source in sources:
            try:
                image = resolve_image(self.client(source), source, ref, platform)
            except RegistryError as e:
                log.info("%s: %s", source.describe(), e)
                failures.append((source, e))
                continue
            log.info("%s: resolved to %s from %s", ref.familiar, image.manifest_digest,
                     source.describe())
            return image
        if len(failures) == 1:
            raise failures[0][1]
        last = failures[-1][1]
        raise type(last)("%s: %s" % (ref, join_errors(
            "%s: %s" % (s.describe(), e) for s, e in failures)))

    def blob(self, image: ResolvedImage, descriptor: Descriptor, *, offset: int = 0,
             hasher: Any | None = None, chunk_size: int = CHUNK_SIZE) -> BlobStream:
        """A verified stream of one of ``image``'s blobs, from the endpoint that served it.

        See :class:`~.blobs.BlobStream` for ``offset`` and ``hasher``.
        """
        source = image.source
        return BlobStream(self.client(source), source.reference.repository, descriptor,
                          offset=offset, hasher=hasher, chunk_size=chunk_size)

    @property
    def bytes_received(self) -> int:
        """Bytes of manifests and blobs this session received, from every endpoint."""
        return self._received_by_closed + sum(c.bytes_received for c in self._clients.values())

    def close(self) -> None:
        """Close every client (connections, temporary CA bundles)."""
        for client in self._clients.values():
            client.close()
            self._received_by_closed += client.bytes_received
        self._clients.clear()

    def __enter__(self) -> RegistrySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "RegistrySession(%d clients)" % len(self._clients)
