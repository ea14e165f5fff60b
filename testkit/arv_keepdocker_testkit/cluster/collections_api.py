"""Collections: manifests checked, stored unsigned, served signed for the caller.

On create/update the manifest is validated (422), its ``+A`` signatures are
checked against the caller's token (403; skipped for admins), the hints are
stripped and the portable data hash computed. Responses carry the manifest
re-signed for the caller's token until ``now + TTL`` (capped at
``trash_at``). ``delete`` moves a collection to the trash.

Versions, as Arvados keeps them (``manage_versioning`` in
``services/api/app/models/collection.rb``, ``CollectionVersioning: true`` and
``PreserveVersionIfIdle: 10s`` in ``lib/config/config.default.yml``): an
update that changes the manifest, name, description or properties of a
collection last modified more than 10 s before (or with ``preserve_version``
set) first saves the previous state as a past version: a record of its own
UUID, ``current_version_uuid`` naming the collection, its writer and time
left as they were. The collection keeps its UUID and counts ``version`` up.
Past versions are listed only with ``include_old_versions``, can be read by
UUID (and by portable data hash), never updated, and follow the collection's
owner and trash times.
"""

import re
import time

from . import filters, manifest, timestamps
from .httperrors import ApiError, invalid, not_found
from .resources import Resource, Trashable, is_past, name_conflict

PDH_RE = re.compile(r"^([0-9a-f]{32})\+([0-9]+)$")
#: what ``collections.list`` returns when the caller selects nothing
LIST_DEFAULT_EXCLUDES = ("manifest_text", "unsigned_manifest_text")
#: changes that make a new version (``versionable_updates?``)
VERSIONED_ATTRS = ("manifest_text", "description", "properties", "name")
#: attributes past versions take from the collection (``syncable_attrs``)
SYNCED_ATTRS = ("owner_uuid", "delete_at", "trash_at", "replication_desired",
                "storage_classes_desired")
#: ``Collections.PreserveVersionIfIdle``, seconds
PRESERVE_VERSION_IF_IDLE = 10


def is_past_version(record):
    return record.get("current_version_uuid") not in (None, record["uuid"])


class Collections(Trashable, Resource):
    table = "collections"
    kind = "arvados#collection"
    singular = "collection"
    writable = ("owner_uuid", "name", "description", "properties", "manifest_text",
                "portable_data_hash", "replication_desired", "storage_classes_desired",
                "trash_at", "delete_at", "preserve_version", "current_version_uuid", "version",
                "unsigned_manifest_text", "replication_confirmed", "replication_confirmed_at",
                "storage_classes_confirmed", "storage_classes_confirmed_at", "file_count",
                "file_size_total")
    #: attributes computed by the server; values sent by clients are ignored
    computed = ("portable_data_hash", "current_version_uuid", "version", "unsigned_manifest_text",
                "replication_confirmed", "replication_confirmed_at", "storage_classes_confirmed",
                "storage_classes_confirmed_at", "file_count", "file_size_total")
    trashable = True
    #: Rails' Collection#maybe_update_modified_by_fields ignores these changes
    unstamped_changes = ("preserve_version",)

    def __init__(self, schema):
        schema = dict(schema)
        schema.setdefault("unsigned_manifest_text", "text")
        super().__init__(schema)

    # -- presentation ----------------------------------------------------------

    def base_view(self, ctx, record):
        view = super().base_view(ctx, record)
        view["unsigned_manifest_text"] = record["manifest_text"]
        return view

    def finish(self, ctx, view):
        out = super().finish(ctx, view)
        out["manifest_text"] = self.signed(ctx, view, view["is_trashed"])
        return out

    def signed(self, ctx, record, trashed):
        text = record["manifest_text"]
        if not text or trashed or not ctx.token:
            return text
        settings = ctx.cluster.settings
        expiry = int(time.time()) + settings.ttl
        if record.get("trash_at"):
            expiry = min(expiry, int(timestamps.to_unix(record["trash_at"])))
        return manifest.sign_manifest(text, ctx.token, settings.signing_key, settings.ttl, expiry)

    def name_taken(self, ctx, record):
        return name_conflict(ctx, "collections", record,
                             lambda other: not is_past(other.get("trash_at"))
                             and not is_past_version(other))

    def listed(self, ctx, record, params):
        return not is_past_version(record) or filters.bool_param(
            "include_old_versions", params.get("include_old_versions"))

    # -- reading ---------------------------------------------------------------

    def get(self, ctx, params):
        uuid = params["uuid"]
        if PDH_RE.match(uuid):
            return self.get_by_pdh(ctx, uuid, params)
        include_trash = filters.bool_param("include_trash", params.get("include_trash"))
        record = self.find_readable(ctx, uuid, include_trash)
        view = self.present(ctx, record)
        return self.select_output(ctx, view, params, self._single_default())

    def _single_default(self):
        return [name for name in self.schema if name != "unsigned_manifest_text"]

    def get_by_pdh(self, ctx, pdh, params):
        """A readable, untrashed collection with this content, as Arvados shows it.

        ``find_object_by_uuid`` in ``services/api/app/controllers/arvados/v1/
        collections_controller.rb``: past versions count, the one with the
        longest life wins (``trash_at desc``, none first), and the answer is
        ``{uuid: <pdh>, portable_data_hash, trash_at}`` plus ``manifest_text``
        unless a ``select`` leaves it out: never an owner or a writer.
        """
        select = filters.json_param("select", params.get("select"), list)
        found = [record for record in ctx.store.records(self.table)
                 if record["portable_data_hash"] == pdh and self.readable(ctx, record)
                 and not self.is_trashed(ctx, record)]
        if not found:
            raise not_found(pdh)
        untrashed = [r for r in found if r.get("trash_at") is None]
        record = untrashed[0] if untrashed else max(found, key=lambda r: r["trash_at"])
        view = {"kind": self.kind, "etag": "", "uuid": pdh, "portable_data_hash": pdh,
                "trash_at": record.get("trash_at")}
        if select is None or "manifest_text" in select:
            view["manifest_text"] = self.signed(ctx, record, False)
        return view

    def list(self, ctx, params, default_select=None):
        default = [name for name in self.schema if name not in LIST_DEFAULT_EXCLUDES]
        return super().list(ctx, params, default)

    # -- writing ---------------------------------------------------------------

    def _apply_manifest(self, ctx, record, text, claimed_pdh):
        if not isinstance(text, str):
            raise invalid("manifest_text must be a string")
        try:
            manifest.validate(text)
        except ValueError as err:
            raise invalid("Invalid manifest: %s" % err) from None
        if not ctx.is_admin:
            settings = ctx.cluster.settings
            try:
                manifest.check_signatures(text, ctx.token, settings.signing_key, settings.ttl,
                                          int(time.time()))
            except PermissionError as err:
                raise ApiError(403, "Forbidden: invalid signature in manifest: %s" % err) from None
        stored = manifest.strip_permission_hints(text)
        pdh = manifest.portable_data_hash(stored)
        if claimed_pdh and claimed_pdh.split("+")[0] != pdh.split("+")[0]:
            raise invalid("portable_data_hash %s does not match manifest_text (%s)"
                          % (claimed_pdh, pdh))
        files = manifest.files(stored)
        record.update({
            "manifest_text": stored,
            "portable_data_hash": pdh,
            "file_count": len(files),
            "file_size_total": sum(size for _name, size in files),
        })

    def _check_trash_times(self, record):
        if record.get("trash_at") and not record.get("delete_at"):
            record["delete_at"] = timestamps.format_ns(
                timestamps.parse_ns(record["trash_at"]) + self.TRASH_LIFETIME * 1_000_000_000)
        if record.get("trash_at") is None:
            record["delete_at"] = None
        if (record.get("delete_at") and record.get("trash_at")
                and record["delete_at"] < record["trash_at"]):
            raise invalid("delete_at must not be before trash_at")

    def _check_types(self, record):
        rep = record.get("replication_desired")
        if rep is not None and (isinstance(rep, bool) or not isinstance(rep, int) or rep < 1):
            raise invalid("replication_desired must be a positive integer or null")
        classes = record.get("storage_classes_desired")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise invalid("storage_classes_desired must be an array of strings")
        if record.get("name") is not None and not isinstance(record["name"], str):
            raise invalid("name must be a string")

    def create(self, ctx, params, body):
        attrs = self.attributes(body)
        uuid = attrs.get("uuid")
        if isinstance(uuid, str) and PDH_RE.match(uuid):
            attrs["portable_data_hash"] = attrs.pop("uuid")
        claimed_pdh = attrs.get("portable_data_hash")
        for name in self.computed:
            attrs.pop(name, None)
        record = self.new_record(ctx, attrs)
        record.update({
            "name": None, "description": None, "properties": {}, "manifest_text": "",
            "replication_desired": None, "replication_confirmed": None,
            "replication_confirmed_at": None, "storage_classes_desired": ["default"],
            "storage_classes_confirmed": [], "storage_classes_confirmed_at": None,
            "trash_at": None, "delete_at": None, "version": 1, "preserve_version": False,
        })
        text = attrs.pop("manifest_text", "")
        record["preserve_version"] = bool(attrs.pop("preserve_version", False))
        record.update(attrs)
        record["current_version_uuid"] = record["uuid"]
        if record.get("storage_classes_desired") is None:
            record["storage_classes_desired"] = ["default"]
        self._check_types(record)
        self._apply_manifest(ctx, record, text if text is not None else "", claimed_pdh)
        self._check_trash_times(record)
        self.check_owner(ctx, record["owner_uuid"])
        self.settle_name(ctx, record,
                         filters.bool_param("ensure_unique_name", params.get("ensure_unique_name")))
        self._reject_replace(params)
        ctx.store.put(self.table, record)
        view = self.present(ctx, record)
        return self.select_output(ctx, view, params, self._single_default())

    def update(self, ctx, params, body):
        old = self.find_writable(ctx, params["uuid"])
        attrs = self.attributes(body)
        attrs.pop("uuid", None)
        claimed_pdh = attrs.get("portable_data_hash")
        for name in self.computed:
            attrs.pop(name, None)
        self._reject_replace(params)
        if is_past_version(old):
            raise invalid("past versions cannot be updated")
        record = dict(old)
        text = attrs.pop("manifest_text", None)
        # Once true, true until the next version (Collection#manage_versioning).
        record["preserve_version"] = bool(attrs.pop("preserve_version", False)
                                          or old.get("preserve_version"))
        record.update(attrs)
        if record.get("storage_classes_desired") is None:
            record["storage_classes_desired"] = ["default"]
        self._check_types(record)
        if text is not None:
            self._apply_manifest(ctx, record, text, claimed_pdh)
        if "trash_at" in attrs or "delete_at" in attrs:
            self._check_trash_times(record)
        if record["owner_uuid"] != old["owner_uuid"]:
            self.check_owner(ctx, record["owner_uuid"])
        if (record.get("name"), record["owner_uuid"]) != (old.get("name"), old["owner_uuid"]) or (
                is_past(old.get("trash_at")) and not is_past(record.get("trash_at"))):
            self.settle_name(ctx, record, False)
        record = self.save_update(ctx, old, record)
        view = self.present(ctx, record)
        return self.select_output(ctx, view, params, self._single_default())

    def save_update(self, ctx, old, record):
        """Store an update: a past version first when it calls for one; sync past versions."""
        if is_past_version(old):
            raise invalid("past versions cannot be updated")
        changed = self.changed(old, record)
        snapshot = None
        if self._preserves_version(ctx, old, record, changed):
            snapshot = dict(old, uuid=ctx.store.new_uuid(self.table),
                            current_version_uuid=old["uuid"], preserve_version=False)
            record["version"] = old["version"] + 1
            record["preserve_version"] = False
        record = super().save_update(ctx, old, record)
        synced = {name: record.get(name) for name in SYNCED_ATTRS
                  if old.get(name) != record.get(name)}
        if snapshot is not None:
            snapshot.update(synced)
            ctx.store.put(self.table, snapshot)
        if synced:
            for past in ctx.store.records(self.table):
                if is_past_version(past) and past["current_version_uuid"] == record["uuid"]:
                    ctx.store.put(self.table, dict(past, **synced))
        return record

    def _preserves_version(self, ctx, old, record, changed):
        """``should_preserve_version?``: a versioned change, not in the trash, and asked
        for or after the collection was idle long enough."""
        if not any(name in changed for name in VERSIONED_ATTRS):
            return False
        if self.is_trashed(ctx, record):
            return False
        if old.get("preserve_version") or record.get("preserve_version"):
            return True
        idle = timestamps.now_ns() - timestamps.parse_ns(old["modified_at"])
        return idle > PRESERVE_VERSION_IF_IDLE * 1_000_000_000

    @staticmethod
    def _reject_replace(params):
        for name in ("replace_files", "replace_segments"):
            value = filters.json_param(name, params.get(name), dict)
            if value:
                raise invalid("%s is not supported by this test cluster" % name)

    def trash_output(self, ctx, record):
        return self.select_output(ctx, self.present(ctx, record), {}, self._single_default())

