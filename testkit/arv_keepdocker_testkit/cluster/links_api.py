"""Links: typed edges (``link_class``) between objects; ``permission`` links grant access.

Non-permission links are readable like any owned object and may point at
anything the creator can read (else 422 ``'<uuid>' not found``). Permission
links need can_manage on their head, name a level (can_read, can_write,
can_manage) and are visible to their tail user and to managers of the head.
"""

from . import filters
from .httperrors import ApiError, invalid
from .permissions import LEVELS
from .resources import Resource
from .store import table_of


class Links(Resource):
    table = "links"
    kind = "arvados#link"
    singular = "link"
    writable = ("owner_uuid", "tail_uuid", "link_class", "name", "head_uuid", "properties")

    def readable(self, ctx, record):
        if record.get("link_class") == "permission":
            if ctx.access.is_admin or record.get("tail_uuid") in ctx.access.identities:
                return True
            return ctx.access.can_manage(record.get("head_uuid") or "")
        return ctx.access.can_read(record["uuid"], record)

    def writable_by(self, ctx, record):
        if record.get("link_class") == "permission":
            return ctx.access.can_manage(record.get("head_uuid") or "")
        return ctx.access.can_write(record["uuid"], record)

    def _check_ends(self, ctx, record):
        for attr in ("head_uuid", "tail_uuid"):
            uuid = record.get(attr)
            if uuid is None:
                continue
            if not isinstance(uuid, str):
                raise invalid("%s must be a string" % attr)
            table = table_of(uuid)
            if table is None:
                continue  # unknown types (or PDHs) are not checked, like Rails
            found = ctx.store.get(table, uuid)
            # Every user record and Keep service is readable by every user.
            public = table in ("users", "keep_services")
            if found is None or not (public or ctx.access.can_read(uuid, found)):
                raise invalid("'%s' not found" % uuid)
        if record.get("link_class") == "permission":
            if record.get("name") not in LEVELS:
                raise invalid("permission link name must be one of %s" % ", ".join(LEVELS))
            if not record.get("head_uuid") or not record.get("tail_uuid"):
                raise invalid("permission links need head_uuid and tail_uuid")
            if not ctx.access.can_manage(record["head_uuid"]):
                raise ApiError(403, "Forbidden: %s needs can_manage on %s"
                               % (ctx.user["uuid"], record["head_uuid"]))

    def create(self, ctx, params, body):
        attrs = self.attributes(body)
        record = self.new_record(ctx, attrs)
        record.update({"tail_uuid": None, "link_class": None, "name": None, "head_uuid": None,
                       "properties": {}})
        record.update(attrs)
        filters.bool_param("ensure_unique_name", params.get("ensure_unique_name"))
        self.check_owner(ctx, record["owner_uuid"])
        self._check_ends(ctx, record)
        ctx.store.put(self.table, record)
        return self.select_output(ctx, self.present(ctx, record), params)

    def update(self, ctx, params, body):
        old, record = self.merged_update(ctx, params, body)
        if any(record.get(a) != old.get(a)
               for a in ("head_uuid", "tail_uuid", "link_class", "name")):
            self._check_ends(ctx, record)
        record = self.save_update(ctx, old, record)
        return self.select_output(ctx, self.present(ctx, record), params)
