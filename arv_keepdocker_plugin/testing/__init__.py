"""Test support shipped with the product, for this project and for hook authors.

* :mod:`.cluster` - a local Arvados-compatible cluster (API + Keep over HTTPS),
  also the ``arv-keepdocker-cluster`` command.
* :mod:`.engines` - real Docker engine, podman store and registry, started
  privately (no networking, no systemd).
* :mod:`.imagebuild` - builds docker-archive and OCI images in pure Python.
* :mod:`.pytest_plugin` - fixtures over all of the above (entry point ``pytest11``).
"""
