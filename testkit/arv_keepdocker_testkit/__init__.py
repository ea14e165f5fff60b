"""arv-keepdocker-testkit: test support for arv-keepdocker-plugin and hook authors.

A distribution of its own (``testkit/`` in the repository), so the product
carries no test server, TLS or fixtures.

* :mod:`.cluster` - a local Arvados-compatible cluster (API + Keep over HTTPS),
  also the ``arv-keepdocker-cluster`` command.
* :mod:`.engines` - real Docker engine, podman store and registry, started
  privately (no networking, no systemd).
* :mod:`.imagebuild` - builds docker-archive and OCI images in pure Python.
* :mod:`.scripts` - console scripts installed beside the running Python.
* :mod:`.plugin_kit` - for hook authors: a checked plugin manager, a run
  helper, a known set of installed plugins.
* :mod:`.fakes` - ``FakeApi`` and ``FakeKeep``, for tests without services.
* :mod:`.pytest_plugin` - fixtures over all of the above and the markers
  ``engines``, ``cluster``, ``reliability`` (entry point ``pytest11``).
"""
