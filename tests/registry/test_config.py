"""registries.conf: files, drop-ins, prefixes, rewrites, mirrors, blocking."""

import os
import textwrap

import pytest

from arv_keepdocker_plugin.distribution.config import config_files, load_registries_conf, parse_file
from arv_keepdocker_plugin.distribution.reference import parse_reference
from arv_keepdocker_plugin.distribution.registry_errors import RegistryBlocked, RegistryConfigError

D = "sha256:" + "cd" * 32


def write(path, text):
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return path


@pytest.fixture
def layout(tmp_path):
    """System and user paths under tmp_path, and an env pointing at them."""
    system = str(tmp_path / "etc" / "registries.conf")
    user = str(tmp_path / "home" / ".config" / "containers" / "registries.conf")
    env = {"HOME": str(tmp_path / "home")}
    return system, user, env


def load(layout, path=None, extra_env=None):
    system, user, env = layout
    return load_registries_conf(path, system_path=system, env=dict(env, **(extra_env or {})))


def sources(conf, text):
    return [(s.reference.name, s.reference.manifest_reference, s.insecure, s.mirror)
            for s in conf.pull_sources(parse_reference(text))]


def test_which_files_are_read(layout, tmp_path):
    system, user, env = layout
    write(system + ".d/b.conf", "")
    write(system + ".d/a.conf", "")
    write(system + ".d/ignored.txt", "")
    write(user + ".d/z.conf", "")
    assert config_files(system_path=system, env=env) == [
        system, system + ".d/a.conf", system + ".d/b.conf", user + ".d/z.conf"]
    write(user, "")  # the user's file replaces the system's, and its drop-ins go
    assert config_files(system_path=system, env=env) == [user, user + ".d/z.conf"]
    override = str(tmp_path / "override.conf")
    assert config_files(system_path=system, env=dict(env, CONTAINERS_REGISTRIES_CONF=override)) \
        == [override, user + ".d/z.conf"]
    assert config_files(override, system_path=system, env=env)[0] == override
    assert config_files(system_path=system, env=dict(env, XDG_CONFIG_HOME=str(tmp_path / "x"))) \
        == [system, system + ".d/a.conf", system + ".d/b.conf"]


def test_no_files_means_no_rules(layout):
    conf = load(layout)
    assert conf.files == () and conf.entries == ()
    assert sources(conf, "debian:12") == [("docker.io/library/debian", "12", False, False)]


def test_longest_prefix_rewrite_mirrors_and_other_keys_ignored(layout):
    system, _, _ = layout
    write(system, """
        unqualified-search-registries = ["example.com"]
        short-name-mode = "enforcing"
        [aliases]
        "foo" = "example.com/foo"

        [[registry]]
        prefix = "docker.io"
        location = "127.0.0.1:5000"
        insecure = true

        [[registry]]
        prefix = "docker.io/library/busybox"
        location = "mirror.example/bb"

        [[registry]]
        location = "example.com"
        [[registry.mirror]]
        location = "m1.example/ex"
        [[registry.mirror]]
        location = "m2.example"
        insecure = true
        pull-from-mirror = "digest-only"
        [[registry.mirror]]
        location = "m3.example"
        pull-from-mirror = "tag-only"
    """)
    conf = load(layout)
    assert conf.files == (system,)
    assert sources(conf, "debian:12") == [("127.0.0.1:5000/library/debian", "12", True, False)]
    assert sources(conf, "busybox") == [("mirror.example/bb", "latest", False, False)]
    assert sources(conf, "busyboxes") == [("127.0.0.1:5000/library/busyboxes", "latest", True,
                                           False)]
    assert sources(conf, "example.com/app:1") == [
        ("m1.example/ex/app", "1", False, True), ("m3.example/app", "1", False, True),
        ("example.com/app", "1", False, False)]
    assert sources(conf, "example.com/app@" + D) == [
        ("m1.example/ex/app", D, False, True), ("m2.example/app", D, True, True),
        ("example.com/app", D, False, False)]
    # Whole components only.
    assert sources(conf, "example.community/app") == [
        ("example.community/app", "latest", False, False)]
    assert sources(conf, "example.com:5000/app") == [
        ("example.com:5000/app", "latest", False, False)]


def test_prefix_with_a_tag_and_mirror_by_digest_only(layout):
    system, _, _ = layout
    write(system, """
        [[registry]]
        prefix = "example.com/app:1"
        location = "other.example/app"
        [[registry]]
        prefix = "quay.io"
        mirror-by-digest-only = true
        [[registry.mirror]]
        location = "m.example"
    """)
    conf = load(layout)
    assert sources(conf, "example.com/app:1")[0][0] == "other.example/app"
    assert sources(conf, "example.com/app:2")[0][0] == "example.com/app"
    assert [s[0] for s in sources(conf, "quay.io/a/b:1")] == ["quay.io/a/b"]
    assert [s[0] for s in sources(conf, "quay.io/a/b@" + D)] == ["m.example/a/b", "quay.io/a/b"]


def test_wildcards_and_blocking(layout):
    system, _, _ = layout
    write(system, """
        [[registry]]
        prefix = "*.evil.example"
        blocked = true
        [[registry]]
        prefix = "ok.evil.example/fine"
        [[registry]]
        prefix = "docker.io/bad"
        location = "docker.io/bad"
        blocked = true
    """)
    conf = load(layout)
    with pytest.raises(RegistryBlocked) as info:
        conf.pull_sources(parse_reference("x.evil.example/app"))
    assert "blocked by registries.conf" in str(info.value) and "\n" not in str(info.value)
    assert sources(conf, "ok.evil.example/fine/app")[0][0] == "ok.evil.example/fine/app"
    with pytest.raises(RegistryBlocked, match="docker.io/bad/app"):
        conf.pull_sources(parse_reference("bad/app"))
    assert sources(conf, "badder/app")[0][0] == "docker.io/badder/app"


def test_drop_ins_override_by_prefix(layout):
    system, user, _ = layout
    write(system, """
        [[registry]]
        prefix = "example.com"
        location = "first.example"
        [[registry]]
        prefix = "keep.example"
        insecure = true
    """)
    write(system + ".d/10-a.conf", """
        [[registry]]
        prefix = "example.com"
        location = "second.example"
    """)
    write(user + ".d/20-b.conf", """
        [[registry]]
        prefix = "example.com"
        location = "third.example"
        blocked = false
    """)
    conf = load(layout)
    assert len(conf.files) == 3
    assert sources(conf, "example.com/x")[0][0] == "third.example/x"
    assert sources(conf, "keep.example/x")[0][2] is True


@pytest.mark.parametrize("text, message", [
    ("[[registry]\n", "not valid TOML"),
    ("registry = 3\n", "array of tables"),
    ("[[registry]]\ninsecure = true\n", "needs a prefix or a location"),
    ("[[registry]]\nprefix = \"x.example\"\ninsecure = \"yes\"\n", "true or false"),
    ("[[registry]]\nprefix = \"*.x.example\"\nlocation = \"y.example\"\n", "wildcard"),
    ("[[registry]]\nprefix = \"x.example\"\nlocation = \"Bad Location\"\n", "invalid location"),
    ("[[registry]]\nprefix = \"x.example\"\n[[registry.mirror]]\ninsecure = true\n",
     "has no location"),
    ("[[registry]]\nprefix = \"x.example\"\n[[registry.mirror]]\nlocation = \"m.example\"\n"
     "pull-from-mirror = \"sometimes\"\n", "pull-from-mirror must be one of"),
    ("[[registry]]\nprefix = \"x.example\"\nmirror-by-digest-only = true\n[[registry.mirror]]\n"
     "location = \"m.example\"\npull-from-mirror = \"all\"\n", "cannot be used together"),
])
def test_invalid_files_are_one_line_errors(tmp_path, text, message):
    path = write(tmp_path / "r.conf", text)
    with pytest.raises(RegistryConfigError, match=message) as info:
        parse_file(path)
    assert "\n" not in str(info.value) and path in str(info.value)
