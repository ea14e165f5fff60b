"""certs.d lookup and CA bundles, with no registry."""

import os

import pytest
import trustme

from arv_keepdocker_plugin.distribution.registry_errors import RegistryConfigError
from arv_keepdocker_plugin.distribution.tls import (
    CABundle,
    TLSOptions,
    default_certs_d_roots,
    host_tls,
    read_cert_dir,
    system_ca_file,
)

HOST = "reg.example:5000"


def touch(path, data=b"x\n"):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "wb") as f:
        f.write(data)
    return str(path)


def test_default_roots_user_first():
    assert default_certs_d_roots({"HOME": "/h"}) == (
        "/h/.config/containers/certs.d", "/etc/containers/certs.d", "/etc/docker/certs.d")


def test_first_existing_host_directory_wins(tmp_path):
    roots = tuple(str(tmp_path / n) for n in ("user", "etc-containers", "etc-docker"))
    options = TLSOptions(certs_d_roots=roots)
    assert host_tls(HOST, options).directory is None
    ca = touch(os.path.join(roots[2], HOST, "ca.crt"))
    assert host_tls(HOST, options).ca_files == (ca,)
    touch(os.path.join(roots[1], HOST, "other.crt"))
    assert host_tls(HOST, options).directory == os.path.join(roots[1], HOST)
    assert host_tls("other.example", options).directory is None
    # --src-cert-dir replaces the lookup for every host.
    own = tmp_path / "own"
    touch(own / "mine.crt")
    assert host_tls("any.example", TLSOptions(cert_dir=str(own), certs_d_roots=roots)) \
        .ca_files == (str(own / "mine.crt"),)


def test_directory_contents(tmp_path):
    for name in ("b.crt", "a.crt", "client.cert", "client.key", "z.cert", "z.key", "README"):
        touch(tmp_path / name)
    cas, client = read_cert_dir(str(tmp_path))
    assert cas == (str(tmp_path / "a.crt"), str(tmp_path / "b.crt"))
    assert client == (str(tmp_path / "client.cert"), str(tmp_path / "client.key"))
    os.unlink(str(tmp_path / "z.key"))
    with pytest.raises(RegistryConfigError, match="z.cert has no key z.key"):
        read_cert_dir(str(tmp_path))
    os.unlink(str(tmp_path / "z.cert"))
    touch(tmp_path / "lonely.key")
    with pytest.raises(RegistryConfigError, match="lonely.key has no client certificate"):
        read_cert_dir(str(tmp_path))


def test_verify_off_when_insecure_or_asked():
    options = TLSOptions(certs_d_roots=())
    assert host_tls(HOST, options).verify is True
    assert host_tls(HOST, options, insecure=True).verify is False
    assert host_tls(HOST, TLSOptions(verify=False, certs_d_roots=())).verify is False


def test_ca_bundle(tmp_path):
    plain = CABundle()
    assert plain.path == system_ca_file() and plain._temporary is None
    ca = trustme.CA()
    extra = str(tmp_path / "ca.crt")
    ca.cert_pem.write_to_path(extra)
    with CABundle([extra]) as bundle:
        path = bundle.path
        with open(path, "rb") as f:
            content = f.read()
        assert ca.cert_pem.bytes().strip() in content
        with open(system_ca_file(), "rb") as f:
            assert f.read().strip() in content
        assert os.stat(path).st_mode & 0o077 == 0
    assert not os.path.exists(path)
    with pytest.raises(RegistryConfigError, match="cannot read CA certificate"):
        CABundle([str(tmp_path / "missing.crt")])
