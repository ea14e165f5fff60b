"""Groups: projects (which own things), roles (which hold permissions), filters."""

from . import filters
from .httperrors import invalid
from .resources import Resource, Trashable, is_past, name_conflict

GROUP_CLASSES = ("project", "role", "filter")


class Groups(Trashable, Resource):
    table = "groups"
    kind = "arvados#group"
    singular = "group"
    writable = ("owner_uuid", "name", "description", "group_class", "properties", "trash_at",
                "delete_at", "frozen_by_uuid")
    trashable = True

    def name_taken(self, ctx, record):
        return name_conflict(ctx, "groups", record,
                             lambda other: not is_past(other.get("trash_at")))

    def create(self, ctx, params, body):
        attrs = self.attributes(body)
        record = self.new_record(ctx, attrs)
        record.update({"name": None, "description": None, "group_class": None, "properties": {},
                       "trash_at": None, "delete_at": None, "frozen_by_uuid": None})
        record.update(attrs)
        if record["group_class"] not in GROUP_CLASSES:
            raise invalid("group_class must be one of %s" % ", ".join(GROUP_CLASSES))
        if not record.get("name"):
            raise invalid("name must not be empty")
        self.check_owner(ctx, record["owner_uuid"])
        self.settle_name(ctx, record,
                         filters.bool_param("ensure_unique_name", params.get("ensure_unique_name")))
        ctx.store.put(self.table, record)
        return self.select_output(ctx, self.present(ctx, record), params)

    def update(self, ctx, params, body):
        old, record = self.merged_update(ctx, params, body)
        if record["group_class"] != old["group_class"]:
            raise invalid("group_class cannot be changed")
        if record["owner_uuid"] == record["uuid"]:
            raise invalid("a group cannot own itself")
        self.settle_name(ctx, record, False)
        record = self.save_update(ctx, old, record)
        return self.select_output(ctx, self.present(ctx, record), params)

    def readable(self, ctx, record):
        return ctx.access.can_read(record["uuid"], record)

