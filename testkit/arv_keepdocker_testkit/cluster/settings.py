"""The persistent configuration of one cluster directory (``DIR/config.json``).

Everything a restart must keep lives in DIR: this file (cluster id, last port,
signing key, Docker image formats), the SQLite database, the Keep blocks and
the TLS files. Layout::

    DIR/config.json     this configuration
    DIR/cluster.db      metadata (users, tokens, groups, collections, links)
    DIR/keep/           Keep blocks
    DIR/ca.pem          the throw-away CA (usable as SSL_CERT_FILE)
    DIR/tls/            server certificate and key
    DIR/env             eval-able ARVADOS_* lines for alice
    DIR/cluster.log     server log;  DIR/cluster.pid  its process id
"""

import json
import os
import re
import secrets
from pathlib import Path

DEFAULT_CLUSTER_ID = "zzzzz"
DEFAULT_IMAGE_FORMATS = ["v2"]
DEFAULT_TTL = 1209600
CLUSTER_ID_RE = re.compile(r"^[0-9a-z]{5}$")
IMAGE_FORMAT_RE = re.compile(r"^[0-9A-Za-z._-]+$")


def parse_image_formats(text):
    """Turn ``"v1,v2"`` into ``["v1", "v2"]``; ``""`` gives ``[]``. Raises ValueError."""
    formats = [part.strip() for part in text.split(",") if part.strip()]
    for fmt in formats:
        if not IMAGE_FORMAT_RE.match(fmt):
            raise ValueError("invalid docker image format %r" % fmt)
    return formats


class Settings:
    """Load, adjust and save ``DIR/config.json``."""

    def __init__(self, directory):
        self.dir = Path(directory).absolute()
        self.path = self.dir / "config.json"
        self.data = {}
        if self.path.exists():
            self.data = json.loads(self.path.read_text())

    @property
    def cluster_id(self):
        return self.data.get("cluster_id", DEFAULT_CLUSTER_ID)

    @property
    def port(self):
        return self.data.get("port")

    @property
    def docker_image_formats(self):
        return list(self.data.get("docker_image_formats", DEFAULT_IMAGE_FORMATS))

    @property
    def signing_key(self):
        return self.data["signing_key"]

    @property
    def ttl(self):
        return int(self.data.get("blob_signature_ttl", DEFAULT_TTL))

    @property
    def replication(self):
        return int(self.data.get("default_replication", 2))

    def prepare(self, cluster_id=None, docker_image_formats=None):
        """Fill in defaults (a new signing key on first use) and apply overrides."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if cluster_id is not None:
            if not CLUSTER_ID_RE.match(cluster_id):
                raise ValueError("cluster id must be 5 characters [0-9a-z], got %r" % cluster_id)
            if "cluster_id" in self.data and self.data["cluster_id"] != cluster_id:
                raise ValueError(
                    "%s already holds cluster %s; cannot change it to %s"
                    % (self.dir, self.data["cluster_id"], cluster_id)
                )
            self.data["cluster_id"] = cluster_id
        self.data.setdefault("cluster_id", DEFAULT_CLUSTER_ID)
        self.data.setdefault("signing_key", secrets.token_hex(32))
        self.data.setdefault("blob_signature_ttl", DEFAULT_TTL)
        self.data.setdefault("default_replication", 2)
        if docker_image_formats is not None:
            self.data["docker_image_formats"] = list(docker_image_formats)
        self.data.setdefault("docker_image_formats", list(DEFAULT_IMAGE_FORMATS))
        return self

    def set_port(self, port):
        self.data["port"] = int(port)

    def save(self):
        """Write the file atomically (readable only by its owner: it holds the key)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(self.data, out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(tmp, self.path)
