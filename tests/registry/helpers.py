"""Small test helpers with no registry: auth files and credential helper scripts."""

import base64
import json
import os
import stat
import sys


def basic(user: str, password: str) -> str:
    """The ``auth`` value of an auths entry."""
    return base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def write_json(path, content) -> str:
    """Write ``content`` as JSON to ``path`` (parents made); return the path."""
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(content, f)
    return path


def write_credential_helper(bin_dir, name: str,
                            answers: dict[str, tuple[str, str]],
                            fail_with: str | None = None) -> str:
    """Write ``docker-credential-NAME`` into ``bin_dir``.

    It answers ``get`` for the server URLs in ``answers`` with
    ``{"Username", "Secret"}``, says "credentials not found" for others, and
    records each server URL asked for in ``NAME.log`` beside it. With
    ``fail_with`` it prints that text (a fake secret) and exits 2.
    """
    bin_dir = str(bin_dir)
    os.makedirs(bin_dir, exist_ok=True)
    path = os.path.join(bin_dir, "docker-credential-" + name)
    log = os.path.join(bin_dir, name + ".log")
    script = """#!%(python)s
import json, sys
answers = %(answers)s
fail_with = %(fail_with)r
if sys.argv[1:] != ["get"]:
    sys.exit(3)
url = sys.stdin.read().strip()
with open(%(log)r, "a") as f:
    f.write(url + "\\n")
if fail_with:
    sys.stderr.write(fail_with + "\\n")
    sys.exit(2)
if url not in answers:
    print("credentials not found in native keychain")
    sys.exit(1)
user, secret = answers[url]
print(json.dumps({"ServerURL": url, "Username": user, "Secret": secret}))
""" % {"python": sys.executable, "answers": json.dumps(answers), "fail_with": fail_with,
       "log": log}
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def helper_calls(bin_dir, name: str):
    """The server URLs helper ``name`` was asked for, in order."""
    try:
        with open(os.path.join(str(bin_dir), name + ".log")) as f:
            return f.read().split()
    except FileNotFoundError:
        return []
