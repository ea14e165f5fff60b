"""Generic resource behaviour shared by every table: present, read, list, write.

A :class:`Resource` knows its table, its ``kind``, its attribute types (taken
from the discovery document's schema) and which attributes a client may set.
Subclasses (:mod:`.groups_api`, :mod:`.links_api`, :mod:`.collections_api`,
:mod:`.users_api`) add their own validation.
"""

import hashlib
import json

from . import filters, timestamps
from .httperrors import ApiError, invalid, not_found
from .store import table_of

#: attributes clients may send but that are always ignored (Rails resource_attrs)
IGNORED_ATTRS = {"created_at", "modified_at", "modified_by_user_uuid", "modified_by_client_uuid",
                 "kind", "etag", "href", "is_trashed", "head_kind", "tail_kind"}
#: the name collision suffix keeps the name within Arvados' 255 characters
UNIQUE_NAME_PREFIX = 237
#: attributes an update stamps; a change of these alone is no change
STAMPED_ATTRS = ("modified_at", "modified_by_user_uuid", "modified_by_client_uuid")


class Context:
    """Everything one API request needs: who asks, and the cluster it asks."""

    def __init__(self, cluster, user, token, request_id):
        self.cluster = cluster
        self.store = cluster.store
        self.user = user
        self.token = token
        self.request_id = request_id
        self._access = None

    @property
    def access(self):
        if self._access is None:
            from .permissions import Access

            self._access = Access(self.store, self.user)
        return self._access

    @property
    def is_admin(self):
        return bool(self.user.get("is_admin"))


def etag(record):
    """A stable etag that changes whenever the record does."""
    return hashlib.md5(json.dumps(record, sort_keys=True).encode()).hexdigest()[:25]


def is_past(stamp):
    """True when the timestamp string is set and not in the future."""
    return stamp is not None and stamp <= timestamps.now()


def parse_json_attr(name, value, kind):
    """Accept an object/array attribute given as JSON text (Rails accept_attribute_as_json)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise invalid("%s: invalid JSON" % name) from None
    if value is None:
        return None
    if not isinstance(value, kind):
        raise invalid("%s must be a JSON %s" % (name, "object" if kind is dict else "array"))
    return value


class Resource:
    """CRUD over one table. Records in the store are never mutated in place."""

    table = None
    kind = None
    singular = None
    #: attributes a client may set on create/update
    writable = ()
    #: trashable tables hide trashed rows unless include_trash
    trashable = False

    def __init__(self, schema):
        self.schema = dict(schema)

    # -- presentation ----------------------------------------------------

    def present(self, ctx, record):
        """Return the API view of a stored record (a new dict)."""
        return self.finish(ctx, self.base_view(ctx, record))

    def base_view(self, ctx, record):
        """The record with its computed, filterable attributes (cheap)."""
        view = dict(record)
        if self.trashable:
            view["is_trashed"] = self.is_trashed(ctx, record)
        return view

    def finish(self, ctx, view):
        """Complete a view for output: ``kind`` and ``etag`` first, like Arvados."""
        out = {"kind": self.kind, "etag": etag(view)}
        out.update(view)
        return out

    def is_trashed(self, ctx, record):
        if is_past(record.get("trash_at")):
            return True
        owner = record.get("owner_uuid")
        seen = set()
        while owner and owner not in seen and table_of(owner) == "groups":
            seen.add(owner)
            group = ctx.store.get("groups", owner)
            if group is None:
                break
            if is_past(group.get("trash_at")):
                return True
            owner = group.get("owner_uuid")
        return False

    def readable(self, ctx, record):
        return ctx.access.can_read(record["uuid"], record)

    def writable_by(self, ctx, record):
        return ctx.access.can_write(record["uuid"], record)

    def select_output(self, ctx, view, params, default=None):
        """Apply a ``select`` parameter to a single-object response."""
        select = filters.check_select(filters.json_param("select", params.get("select"), list),
                                      self.schema)
        return filters.project(view, select if select is not None else default)

    # -- reading -------------------------------------------------------------

    def find_readable(self, ctx, uuid, include_trash=False):
        """Return the stored record or raise 404 (missing, unreadable or trashed)."""
        record = ctx.store.get(self.table, uuid)
        if record is None or not self.readable(ctx, record):
            raise not_found(uuid)
        if self.trashable and not include_trash and self.is_trashed(ctx, record):
            raise not_found(uuid)
        return record

    def get(self, ctx, params):
        include_trash = filters.bool_param("include_trash", params.get("include_trash"))
        record = self.find_readable(ctx, params["uuid"], include_trash)
        return self.select_output(ctx, self.present(ctx, record), params)

    def listed(self, ctx, record, params):
        """Whether an index lists ``record`` at all (before filters and permissions)."""
        return True

    def list(self, ctx, params, default_select=None):
        include_trash = filters.bool_param("include_trash", params.get("include_trash"))
        views = []
        for record in ctx.store.records(self.table):
            if not self.listed(ctx, record, params) or not self.readable(ctx, record):
                continue
            view = self.base_view(ctx, record)
            if self.trashable and view["is_trashed"] and not include_trash:
                continue
            views.append(view)
        return filters.list_response(views, params, self.schema, self.kind, default_select,
                                     finish=lambda view: self.finish(ctx, view))

    # -- writing ---------------------------------------------------------------

    def attributes(self, body):
        """Pick the resource attributes out of a wrapped or bare JSON body."""
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise invalid("request body must be a JSON object")
        if isinstance(body.get(self.singular), dict):
            attrs = dict(body[self.singular])
        elif isinstance(body.get(self.singular), str):
            attrs = parse_json_attr(self.singular, body[self.singular], dict)
        else:
            attrs = dict(body)
        for name in list(attrs):
            if name in IGNORED_ATTRS:
                del attrs[name]
            elif name not in self.writable and name != "uuid":
                raise invalid("Invalid attribute '%s' for %s" % (name, self.kind))
        for name, kind in self.schema.items():
            if name in attrs and kind == "Hash":
                attrs[name] = parse_json_attr(name, attrs[name], dict)
                if attrs[name] is None:
                    attrs[name] = {}
            elif name in attrs and kind == "Array":
                attrs[name] = parse_json_attr(name, attrs[name], list)
            elif name in attrs and kind == "datetime" and attrs[name] is not None:
                try:
                    attrs[name] = timestamps.normalize(attrs[name])
                except ValueError:
                    raise invalid("%s: invalid timestamp %r" % (name, attrs[name])) from None
        return attrs

    def check_owner(self, ctx, owner_uuid):
        """Raise unless the caller may put objects into ``owner_uuid``."""
        table = table_of(owner_uuid)
        if table == "groups":
            group = ctx.store.get("groups", owner_uuid)
            if group is None:
                raise invalid("Invalid owner_uuid %r: not found" % owner_uuid)
            if group.get("group_class") != "project":
                raise invalid("Invalid owner_uuid %r: only projects and users can own objects"
                              % owner_uuid)
        elif table == "users":
            if ctx.store.get("users", owner_uuid) is None:
                raise invalid("Invalid owner_uuid %r: not found" % owner_uuid)
        else:
            raise invalid("Invalid owner_uuid %r" % owner_uuid)
        if not ctx.access.can_own_into(owner_uuid):
            raise ApiError(403, "Forbidden: cannot write to %s" % owner_uuid)

    def new_record(self, ctx, attrs):
        """Common fields of a new record; ``uuid`` may be requested if unused."""
        uuid = attrs.pop("uuid", None)
        if uuid is not None:
            if table_of(uuid) != self.table or not uuid.startswith(ctx.store.cluster_id + "-"):
                raise invalid("Invalid uuid %r for %s" % (uuid, self.kind))
            if ctx.store.get(self.table, uuid) is not None:
                raise invalid("uuid %s already exists" % uuid)
        stamp = timestamps.now()
        return {
            "uuid": uuid or ctx.store.new_uuid(self.table),
            "owner_uuid": ctx.user["uuid"],
            "created_at": stamp,
            "modified_at": stamp,
            "modified_by_user_uuid": ctx.user["uuid"],
        }

    def touch(self, ctx, record):
        record["modified_at"] = timestamps.now()
        record["modified_by_user_uuid"] = ctx.user["uuid"]
        return record

    #: attributes whose change alone leaves the writer and time alone (besides
    #: :data:`STAMPED_ATTRS`)
    unstamped_changes = ()

    def changed(self, old, record):
        """The attributes an update changes, stamps aside."""
        ignored = STAMPED_ATTRS + self.unstamped_changes
        return {name for name in set(old) | set(record)
                if name not in ignored and old.get(name) != record.get(name)}

    def save_update(self, ctx, old, record):
        """Store an update; return the record as stored.

        As Arvados, only an update that changes something is stamped with the
        caller and the time (``maybe_update_modified_by_fields`` in
        ``services/api/app/models/arvados_model.rb``): an update that changes
        nothing leaves ``modified_by_user_uuid`` and ``modified_at`` as they were.
        """
        if record == old:
            return old
        if self.changed(old, record):
            record = self.touch(ctx, record)
        ctx.store.put(self.table, record)
        return record

    def merged_update(self, ctx, params, body):
        """``(stored record, what it becomes with body's attributes)``; owner change checked."""
        old = self.find_writable(ctx, params["uuid"])
        attrs = self.attributes(body)
        attrs.pop("uuid", None)
        record = dict(old)
        record.update(attrs)
        if record["owner_uuid"] != old["owner_uuid"]:
            self.check_owner(ctx, record["owner_uuid"])
        return old, record

    def find_writable(self, ctx, uuid, include_trash=True):
        """Return the stored record for an update/delete, or 404/403."""
        record = self.find_readable(ctx, uuid, include_trash=include_trash)
        if not self.writable_by(ctx, record):
            raise ApiError(403, "Forbidden: %s is not writable by %s" % (uuid, ctx.user["uuid"]))
        return record

    # -- unique names ------------------------------------------------------

    def name_taken(self, ctx, record):
        """Override for tables with a (owner_uuid, name) uniqueness rule."""
        return False

    def settle_name(self, ctx, record, ensure_unique):
        """Apply the uniqueness rule: rename with a uuid suffix, or 422."""
        if record.get("name") is None or not self.name_taken(ctx, record):
            return
        if not ensure_unique:
            raise invalid("Duplicate name: %s already has an object named %r"
                          " (use ensure_unique_name)"
                          % (record["owner_uuid"], record["name"]))
        record["name"] = "%s (%s)" % (record["name"][:UNIQUE_NAME_PREFIX], record["uuid"][-15:])
        if self.name_taken(ctx, record):
            raise invalid("Duplicate name %r" % record["name"])

    # -- the generic methods -----------------------------------------------

    def delete(self, ctx, params):
        record = self.find_writable(ctx, params["uuid"])
        ctx.store.remove(self.table, record["uuid"])
        return self.present(ctx, record)


class Trashable:
    """``trash``/``untrash``/``delete`` for resources with ``trash_at`` (collections, projects).

    Deleting trashes, as Arvados does: the row stays, hidden from lists unless
    ``include_trash``, and ``delete_at`` is set a trash lifetime later.
    """

    #: Arvados' default Collections.DefaultTrashLifetime (2 weeks), in seconds.
    TRASH_LIFETIME = 1209600

    def trash_output(self, ctx, record):
        return self.present(ctx, record)

    def trash(self, ctx, params):
        old = self.find_writable(ctx, params["uuid"])
        record = dict(old)
        if not is_past(record.get("trash_at")):
            record["trash_at"] = timestamps.now()
            record["delete_at"] = timestamps.after_seconds(self.TRASH_LIFETIME)
        return self.trash_output(ctx, self.save_update(ctx, old, record))

    def delete(self, ctx, params):
        return self.trash(ctx, params)

    def untrash(self, ctx, params):
        old = self.find_writable(ctx, params["uuid"])
        record = dict(old)
        if not is_past(record.get("trash_at")):
            raise invalid("%s is not in the trash" % record["uuid"])
        record["trash_at"] = None
        record["delete_at"] = None
        self.settle_name(ctx, record, False)
        return self.trash_output(ctx, self.save_update(ctx, old, record))


def name_conflict(ctx, table, record, scope):
    """True if another record of ``table`` in ``scope`` has the same owner and name."""
    for other in ctx.store.records(table):
        if (other["uuid"] != record["uuid"] and other.get("owner_uuid") == record.get("owner_uuid")
                and other.get("name") == record.get("name") and scope(other)):
            return True
    return False
