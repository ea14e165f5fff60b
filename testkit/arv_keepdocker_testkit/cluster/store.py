"""Metadata storage: SQLite on disk, a dict per table in memory.

Each resource table holds ``(uuid, owner_uuid, created_at, data)`` where
``data`` is the record as JSON. All records are loaded at start and every
change is written through in its own transaction, so the server reads from
memory and a restart finds everything again. Records handed out are never
mutated in place: an update stores a new dict, so snapshots taken with
:meth:`Store.records` stay consistent without holding the lock.
"""

import json
import secrets
import sqlite3
import string
import threading

from . import timestamps

#: table name -> UUID type infix (``services/api/lib/has_uuid.rb``)
INFIXES = {
    "users": "tpzed",
    "api_client_authorizations": "gj3su",
    "groups": "j7d0g",
    "collections": "4zz18",
    "links": "o0j2j",
    "keep_services": "bi6l4",
}
TABLE_BY_INFIX = {infix: table for table, infix in INFIXES.items()}
#: table name -> ``kind`` of its records
KINDS = {
    "users": "arvados#user",
    "api_client_authorizations": "arvados#apiClientAuthorization",
    "groups": "arvados#group",
    "collections": "arvados#collection",
    "links": "arvados#link",
    "keep_services": "arvados#keepService",
}
#: the built-in users, each with its own token
BUILTIN_USERS = ("admin", "alice", "bob")
_ALPHABET = string.digits + string.ascii_lowercase


def random_base36(length):
    """Return ``length`` random characters from ``[0-9a-z]``."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def table_of(uuid):
    """Return the table an Arvados UUID belongs to, from its infix (or None)."""
    if isinstance(uuid, str) and len(uuid) == 27 and uuid[5] == "-" and uuid[11] == "-":
        return TABLE_BY_INFIX.get(uuid[6:11])
    return None


class Store:
    """Thread-safe record store for one cluster directory."""

    def __init__(self, path, cluster_id):
        self.cluster_id = cluster_id
        self.lock = threading.RLock()
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        # Rollback journal, not WAL: WAL files pre-grow by megabytes.
        # No fsync: a killed server loses nothing, only a machine crash could,
        # and a test cluster does not need that guarantee (3x faster writes).
        self.db.execute("PRAGMA journal_mode=DELETE")
        self.db.execute("PRAGMA synchronous=OFF")
        self.tables = {}
        self._tokens = {}  # secret -> token record
        for table in INFIXES:
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS %s (uuid TEXT PRIMARY KEY, owner_uuid TEXT,"
                " created_at TEXT, data TEXT NOT NULL)" % table
            )
            rows = self.db.execute("SELECT data FROM %s" % table).fetchall()
            self.tables[table] = {rec["uuid"]: rec for rec in (json.loads(r[0]) for r in rows)}
        for rec in self.tables["api_client_authorizations"].values():
            self._tokens[rec["api_token"]] = rec

    def close(self):
        with self.lock:
            self.db.close()

    # -- identifiers -------------------------------------------------------

    def new_uuid(self, table):
        """Return a fresh UUID ``<cluster>-<infix>-<15 base36>`` for ``table``."""
        with self.lock:
            while True:
                uuid = "%s-%s-%s" % (self.cluster_id, INFIXES[table], random_base36(15))
                if uuid not in self.tables[table]:
                    return uuid

    def system_user_uuid(self):
        return "%s-tpzed-000000000000000" % self.cluster_id

    # -- reading -----------------------------------------------------------

    def get(self, table, uuid):
        """Return the record (do not mutate it) or None."""
        return self.tables[table].get(uuid)

    def find(self, uuid):
        """Return ``(table, record)`` for any UUID, or ``(table_or_None, None)``."""
        table = table_of(uuid)
        if table is None:
            return None, None
        return table, self.tables[table].get(uuid)

    def records(self, table):
        """Return a snapshot list of every record of ``table``."""
        with self.lock:
            return list(self.tables[table].values())

    # -- writing -----------------------------------------------------------

    def put(self, table, record):
        """Insert or replace ``record`` (a new dict; stored as given)."""
        with self.lock:
            self.db.execute(
                "INSERT OR REPLACE INTO %s (uuid, owner_uuid, created_at, data) VALUES (?, ?, ?, ?)"
                % table,
                (record["uuid"], record.get("owner_uuid"), record.get("created_at"),
                 json.dumps(record, sort_keys=True)),
            )
            self.tables[table][record["uuid"]] = record
            if table == "api_client_authorizations":
                self._tokens[record["api_token"]] = record

    def remove(self, table, uuid):
        """Delete a record for good."""
        with self.lock:
            self.db.execute("DELETE FROM %s WHERE uuid = ?" % table, (uuid,))
            self.tables[table].pop(uuid, None)

    # -- users and tokens --------------------------------------------------

    def user_by_token(self, token):
        """Return the user record for a presented token (``v2/uuid/secret`` or bare secret)."""
        if not token:
            return None
        if token.startswith("v2/"):
            parts = token.split("/")
            if len(parts) != 3:
                return None
            rec = self._tokens.get(parts[2])
            if rec is None or rec["uuid"] != parts[1]:
                return None
        else:
            rec = self._tokens.get(token)
            if rec is None:
                return None
        return self.tables["users"].get(rec["owner_uuid"])

    def token_record(self, token):
        """Return the api_client_authorization record for a token string, or None."""
        secret = token.split("/")[-1] if token else None
        return self._tokens.get(secret)

    def user_by_name(self, username):
        for rec in self.records("users"):
            if rec.get("username") == username:
                return rec
        return None

    def bootstrap(self):
        """Create the system user and the built-in users with their tokens, once."""
        with self.lock:
            system = self.system_user_uuid()
            if system not in self.tables["users"]:
                self.put("users", self._user_record(system, "root", is_admin=True))
            for name in BUILTIN_USERS:
                if self.user_by_name(name) is None:
                    user = self._user_record(self.new_uuid("users"), name,
                                             is_admin=(name == "admin"))
                    self.put("users", user)
                    stamp = timestamps.now()
                    self.put("api_client_authorizations", {
                        "uuid": self.new_uuid("api_client_authorizations"),
                        "owner_uuid": user["uuid"],
                        "api_token": random_base36(50),
                        "scopes": ["all"],
                        "expires_at": None,
                        "created_at": stamp,
                        "modified_at": stamp,
                        "modified_by_user_uuid": system,
                        "created_by_ip_address": None,
                        "last_used_by_ip_address": None,
                        "last_used_at": None,
                    })

    def _user_record(self, uuid, username, is_admin):
        stamp = timestamps.now()
        return {
            "uuid": uuid,
            "owner_uuid": self.system_user_uuid(),
            "created_at": stamp,
            "modified_at": stamp,
            "modified_by_user_uuid": self.system_user_uuid(),
            "email": "%s@%s.example" % (username, self.cluster_id),
            "first_name": username.capitalize(),
            "last_name": "Test",
            "identity_url": None,
            "username": username,
            "is_active": True,
            "is_admin": is_admin,
            "prefs": {},
        }


def read_credentials(db_path):
    """Return ``{username: (user_uuid, token)}`` from a cluster database, without a server.

    Reads only the users and tokens tables, so it is cheap to call while the
    server runs (SQLite allows concurrent readers).
    """
    db = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True)
    try:
        users = [json.loads(row[0]) for row in db.execute("SELECT data FROM users")]
        tokens = [json.loads(row[0])
                  for row in db.execute("SELECT data FROM api_client_authorizations")]
    finally:
        db.close()
    by_owner = {tok["owner_uuid"]: "v2/%s/%s" % (tok["uuid"], tok["api_token"]) for tok in tokens}
    return {user["username"]: (user["uuid"], by_owner.get(user["uuid"]))
            for user in users if user["uuid"] in by_owner}
