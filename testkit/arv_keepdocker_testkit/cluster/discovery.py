"""The discovery document: Arvados 3.2.1's own, plus the keys a server fills in.

The static document ships in this package (``arvados-v1-discovery.json``, a
copy of the real one); :func:`document` merges the runtime keys that
``schema_controller.rb`` adds
(``services/api/app/controllers/arvados/v1/schema_controller.rb``). ``revision`` stays the
document's own.
"""

import copy
import json
from functools import lru_cache
from pathlib import Path

DOC_PATH = Path(__file__).with_name("arvados-v1-discovery.json")
PACKAGE_VERSION = "3.2.1"
MAX_REQUEST_SIZE = 134217728
MAX_ITEMS_PER_RESPONSE = 1000
TRASH_LIFETIME = 1209600


@lru_cache(maxsize=1)
def static_document():
    """The packaged discovery document (parsed once; do not mutate)."""
    return json.loads(DOC_PATH.read_text())


def document(api_host, settings, generated_at):
    """Return the discovery document for a cluster served at ``api_host`` (host:port)."""
    doc = copy.deepcopy(static_document())
    root = "https://%s/" % api_host
    doc.update({
        "rootUrl": root,
        "baseUrl": root + "arvados/v1/",
        "uuidPrefix": settings.cluster_id,
        "dockerImageFormats": settings.docker_image_formats,
        "defaultCollectionReplication": settings.replication,
        "blobSignatureTtl": settings.ttl,
        "maxRequestSize": MAX_REQUEST_SIZE,
        "maxItemsPerResponse": MAX_ITEMS_PER_RESPONSE,
        "defaultTrashLifetime": TRASH_LIFETIME,
        "source_version": "arv-keepdocker-plugin",
        "sourceVersion": "arv-keepdocker-plugin",
        "packageVersion": PACKAGE_VERSION,
        "generatedAt": generated_at,
        "crunchLogUpdatePeriod": 1800,
        "crunchLogUpdateSize": 33554432,
        "remoteHosts": {},
        "remoteHostsViaDNS": False,
        "websocketUrl": "",
        "workbenchUrl": "",
        "workbench2Url": "",
        "keepWebServiceUrl": "",
    })
    return doc
