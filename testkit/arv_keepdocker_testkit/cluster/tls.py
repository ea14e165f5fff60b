"""A throw-away CA and server certificate for 127.0.0.1/localhost (made with trustme).

Created once per cluster directory and kept, so clients that trust
``DIR/ca.pem`` (``SSL_CERT_FILE``) keep working across restarts.
"""

import os
from pathlib import Path


def ensure_certificates(directory):
    """Return ``(ca_pem, server_cert_pem, server_key_pem)`` paths, creating them if needed."""
    directory = Path(directory)
    ca_path = directory / "ca.pem"
    tls_dir = directory / "tls"
    cert_path = tls_dir / "server.pem"
    key_path = tls_dir / "server.key"
    if ca_path.exists() and cert_path.exists() and key_path.exists():
        return ca_path, cert_path, key_path
    try:
        import trustme
    except ImportError:
        raise RuntimeError("the local cluster needs 'trustme' (pip install trustme)") from None
    tls_dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="arv-keepdocker-cluster test CA")
    leaf = ca.issue_cert("127.0.0.1", "localhost", "::1")
    leaf.cert_chain_pems[0].write_to_path(str(cert_path))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(leaf.private_key_pem.bytes())
    ca.cert_pem.write_to_path(str(ca_path))
    return ca_path, cert_path, key_path
