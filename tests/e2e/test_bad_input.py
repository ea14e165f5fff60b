"""Bad input: one clear line on stderr, exit 1, nothing written to Arvados.

Each case says what the user gets. Progress output is off (--no-progress) so
that stderr holds only what the tool has to say.
"""

import re

import pytest

from .conftest import error_lines

LOG_LINE = re.compile(r"^\S+ \S+ arvados\.keepdocker\[\d+\] ERROR: (.*)$")


def one_error(proc):
    """The single error line's message, after checking exit status 1."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    match = LOG_LINE.match(lines[0])
    assert match, lines[0]
    return match.group(1)


pytestmark = pytest.mark.usefixtures("nothing_written")


def test_unknown_image(keepdocker, unique):
    message = one_error(keepdocker("--no-progress", unique + ":nope"))
    assert unique + ":nope" in message and "no matching image" in message


def test_no_docker_engine_falls_to_podman_which_lacks_the_image(keepdocker, unique):
    message = one_error(keepdocker("--no-progress", unique,
                                   env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}))
    assert message == (f"no matching image found for {unique}:latest (looked in containers-storage "
                       "since no Docker engine answers)")


def test_no_engine_at_all_and_not_in_arvados(keepdocker, unique, tmp_path):
    # No docker and no podman on PATH (the command itself runs by absolute path).
    message = one_error(keepdocker("--no-progress", unique, env={"PATH": str(tmp_path)}))
    assert "docker" in message.lower(), message


@pytest.mark.parametrize("typed", ["Bad Name", "repo::tag", "x/-y", "a//b:c"])
def test_malformed_reference(keepdocker, typed):
    assert "invalid image reference" in one_error(keepdocker("--no-progress", typed))


def test_tag_given_twice(keepdocker):
    message = one_error(keepdocker("--no-progress", "myrepo:mytag", "extratag"))
    assert message == ("image 'myrepo:mytag' already includes a tag, "
                       "cannot add tag argument 'extratag'")


def test_unknown_transport_with_source_flag(keepdocker):
    message = one_error(keepdocker("--no-progress", "--source", "nosuch", "x"))
    assert "unknown image source 'nosuch'" in message


def test_missing_archive(keepdocker, tmp_path):
    message = one_error(keepdocker("--no-progress", f"docker-archive:{tmp_path}/none.tar"))
    assert "none.tar" in message


def test_truncated_archive(keepdocker, tmp_path):
    from arv_keepdocker_testkit import imagebuild
    path = tmp_path / "image.tar"
    image = imagebuild.build_image([{"a.txt": b"x" * 100000}], repo_tags=["trunc:1"])
    imagebuild.write_docker_archive(str(path), [image])
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    message = one_error(keepdocker("--no-progress", f"docker-archive:{path}"))
    assert str(path) in message


def test_not_an_archive(keepdocker, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n" * 100)
    assert str(path) in one_error(keepdocker("--no-progress", f"docker-archive:{path}"))


def test_wrong_token(keepdocker, unique):
    message = one_error(keepdocker(
        "--no-progress", unique,
        env={"ARVADOS_API_TOKEN": "v2/zzzzz-gj3su-000000000000000/nope"}))
    assert "401" in message


def test_missing_token(keepdocker, docker_user_env, unique):
    env = dict(docker_user_env)
    del env["ARVADOS_API_TOKEN"]
    from .conftest import Runner
    message = one_error(Runner(env)("--no-progress", unique))
    assert "ARVADOS_API_TOKEN" in message


def test_unreachable_api_host(keepdocker, unique):
    from arv_keepdocker_testkit.engines import free_port
    message = one_error(keepdocker("--no-progress", "--retries", "0", unique,
                                   env={"ARVADOS_API_HOST": f"127.0.0.1:{free_port()}"}))
    assert "cannot reach the Arvados API server" in message


def test_invalid_project_uuid(keepdocker, unique):
    assert "Not a valid project UUID" in one_error(
        keepdocker("--no-progress", "--project-uuid", "not-a-uuid", unique))


def test_unsupported_argument_is_a_usage_error(keepdocker):
    proc = keepdocker("-x=unknown")
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr
