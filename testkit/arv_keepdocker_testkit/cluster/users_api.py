"""Users, the caller's token, Keep services and the cluster config.

Every active user may read every user record (Arvados' default
``Users.ActivatedUsersAreVisibleToOthers``); users are created only by the
cluster itself (admin, alice, bob).
"""

from . import timestamps
from .httperrors import ApiError
from .resources import Resource


class Users(Resource):
    table = "users"
    kind = "arvados#user"
    singular = "user"

    def readable(self, ctx, record):
        return True

    def current(self, ctx, params):
        return self.present(ctx, ctx.user)

    def system(self, ctx, params):
        return self.present(ctx, ctx.store.get("users", ctx.store.system_user_uuid()))


class ApiClientAuthorizations(Resource):
    table = "api_client_authorizations"
    kind = "arvados#apiClientAuthorization"
    singular = "api_client_authorization"

    def readable(self, ctx, record):
        return ctx.access.is_admin or record["owner_uuid"] == ctx.user["uuid"]

    def current(self, ctx, params):
        record = ctx.store.token_record(ctx.token)
        if record is None:
            raise ApiError(401, "Not logged in")
        return self.present(ctx, record)


class KeepServices(Resource):
    """The one ``disk`` Keep service: this same server, over HTTPS."""

    table = "keep_services"
    kind = "arvados#keepService"
    singular = "keep_service"

    def readable(self, ctx, record):
        return True

    def accessible(self, ctx, params):
        items = [self.present(ctx, rec) for rec in ctx.store.records(self.table)]
        return {"kind": "arvados#keepServiceList", "etag": "", "self_link": "", "offset": 0,
                "limit": len(items), "items": items, "items_available": len(items)}


def ensure_keep_service(store, host, port):
    """Create or update the single keep service record to point at ``host:port``."""
    with store.lock:
        records = store.records("keep_services")
        stamp = timestamps.now()
        if records:
            record = dict(records[0])
            if record["service_host"] == host and record["service_port"] == port:
                return record
        else:
            record = {"uuid": store.new_uuid("keep_services"), "created_at": stamp,
                      "owner_uuid": store.system_user_uuid()}
        record.update({
            "service_host": host,
            "service_port": port,
            "service_ssl_flag": True,
            "service_type": "disk",
            "read_only": False,
            "modified_at": stamp,
            "modified_by_user_uuid": store.system_user_uuid(),
        })
        store.put("keep_services", record)
        return record


def config_document(cluster):
    """The subset of the cluster configuration clients read (``GET /arvados/v1/config``)."""
    settings = cluster.settings
    ttl_hours = "%dh" % (settings.ttl // 3600) if settings.ttl % 3600 == 0 else "%ds" % settings.ttl
    return {
        "ClusterID": settings.cluster_id,
        "StorageClasses": {"default": {"Default": True, "Priority": 0}},
        "Collections": {
            "DefaultReplication": settings.replication,
            "BlobSigning": True,
            "BlobSigningTTL": ttl_hours,
            "DefaultTrashLifetime": "336h",
            "CollectionVersioning": False,
            "PreserveVersionIfIdle": "-1s",
            "TrustAllContent": False,
            "ManagedProperties": {},
            "ForwardSlashNameSubstitution": "",
        },
        "Containers": {
            "SupportedDockerImageFormats": {fmt: {} for fmt in settings.docker_image_formats},
        },
        "API": {"MaxItemsPerResponse": 1000, "MaxRequestSize": 134217728},
        "Users": {"ActivatedUsersAreVisibleToOthers": True, "AnonymousUserToken": ""},
        "RemoteClusters": {},
        "Services": {
            "Controller": {"ExternalURL": "https://%s/" % cluster.api_host},
            "Keepstore": {"InternalURLs": {"https://%s/" % cluster.api_host: {}}},
        },
        "Volumes": {},
    }


def vocabulary_document():
    """An empty, non-strict metadata vocabulary."""
    return {"strict_tags": False, "tags": {}}


