"""A local Arvados-compatible cluster: API server and Keep over HTTPS, in one process.

Unmodified Arvados 3.2.1 tools (``arv-put``, ``arv-get``, ``arv-ls``,
``arv-keepdocker``, ``arvados.collection.Collection``) work against it.

* :class:`Cluster` (:mod:`.cluster`) - start/stop one in a directory, get
  tokens, environment and API clients for the built-in users admin, alice, bob.
* ``arv-keepdocker-cluster`` (:mod:`.cli`) - the same from a shell.
* :mod:`.fixtures` - pytest fixtures (``arv_cluster``, ``arv_env``, ...).

Inside: :mod:`.server` (HTTPS, routing), :mod:`.routes` (served methods),
:mod:`.store` (SQLite), :mod:`.filters` (list semantics),
:mod:`.permissions`, the resources (:mod:`.collections_api`,
:mod:`.links_api`, :mod:`.groups_api`, :mod:`.users_api`),
:mod:`.discovery`, and Keep: :mod:`.keepstore`, :mod:`.signing`,
:mod:`.manifest`, :mod:`.faults`.
"""

__all__ = ["Cluster", "ClusterError"]


def __getattr__(name):
    # Imported on first use: pytest loads the fixtures module of this package
    # in every run, and that should not pull in ssl, sqlite3 and urllib.
    if name in __all__:
        from . import cluster

        return getattr(cluster, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
