"""Who may read or write what.

The rules of ``doc/api/permission-model.html.textile.liquid`` and
``services/api/app/models/arvados_model.rb`` (``readable_by``).

Levels: none (0) < can_read (1) < can_write (2) < can_manage (3). A user has
can_manage on itself and on everything it owns, directly or through projects
it owns (ownership is transitive). A ``permission`` link (tail = the user, or
a role the user belongs to; head = an object or a project) grants its level
on the head and, for a project, on everything inside it. can_manage on
another user grants can_manage on what that user owns. Admins have
can_manage on everything.
"""

from .store import table_of

LEVELS = {"can_read": 1, "can_write": 2, "can_manage": 3}
READ, WRITE, MANAGE = 1, 2, 3


class Access:
    """The permission view of one user, computed once per request."""

    def __init__(self, store, user):
        self.store = store
        self.user = user
        self.user_uuid = user["uuid"]
        self.is_admin = bool(user.get("is_admin"))
        self._cache = {}
        links = [rec for rec in store.records("links") if rec.get("link_class") == "permission"]
        # The user and every role group it belongs to.
        identities = {self.user_uuid}
        for link in links:
            if link.get("tail_uuid") == self.user_uuid and link.get("name") in LEVELS:
                group = store.get("groups", link.get("head_uuid"))
                if group is not None and group.get("group_class") == "role":
                    identities.add(group["uuid"])
        self.identities = identities
        self.grants = {}
        for link in links:
            if link.get("tail_uuid") in identities:
                level = LEVELS.get(link.get("name"), 0)
                head = link.get("head_uuid")
                if level > self.grants.get(head, 0):
                    self.grants[head] = level

    def level(self, uuid, record=None):
        """Return the caller's permission level (0-3) on the object ``uuid``."""
        if self.is_admin or uuid == self.user_uuid:
            return MANAGE
        if uuid in self._cache:
            return self._cache[uuid]
        if record is None:
            _table, record = self.store.find(uuid)
        level = self.grants.get(uuid, 0)
        if table_of(uuid) == "users":
            # A user record is not "inside" its owner (the system user).
            self._cache[uuid] = level
            return level
        owner = record.get("owner_uuid") if record else None
        seen = {uuid}
        while owner and owner not in seen and level < MANAGE:
            seen.add(owner)
            if owner in self.identities:
                level = MANAGE
                break
            owner_table = table_of(owner)
            if owner_table == "users":
                if self.grants.get(owner, 0) >= MANAGE:
                    level = MANAGE
                break
            if owner_table != "groups":
                break
            level = max(level, self.grants.get(owner, 0))
            group = self.store.get("groups", owner)
            owner = group.get("owner_uuid") if group else None
        self._cache[uuid] = level
        return level

    def can_read(self, uuid, record=None):
        return self.level(uuid, record) >= READ

    def can_write(self, uuid, record=None):
        return self.level(uuid, record) >= WRITE

    def can_manage(self, uuid, record=None):
        return self.level(uuid, record) >= MANAGE

    def can_own_into(self, owner_uuid):
        """May the caller create or move an object into ``owner_uuid``?"""
        if self.is_admin or owner_uuid == self.user_uuid:
            return True
        table = table_of(owner_uuid)
        if table == "users":
            return self.can_manage(owner_uuid)
        if table == "groups":
            return self.can_write(owner_uuid)
        return False
