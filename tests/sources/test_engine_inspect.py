"""The one reader of ``docker image inspect`` and ``podman image inspect`` output.

Both engine sources go through :func:`engine_cli.inspected`; the engines'
real answers are exercised in ``test_docker_daemon.py`` and
``test_containers_storage.py``. These are the answers an engine should
never give, each a one-line error rather than a traceback.
"""

import pytest

from arv_keepdocker_plugin.errors import ImageNotFound, SourceError
from arv_keepdocker_plugin.sources.engine_cli import inspected

RECORD = b'{"Id": "sha256:' + b"a" * 64 + b'"}'


def test_the_one_record_is_returned():
    assert inspected(b"[" + RECORD + b"]", "x:1", "docker image inspect") == {
        "Id": "sha256:" + "a" * 64}


@pytest.mark.parametrize("stdout, error, message", [
    (b"[]", ImageNotFound, "no matching image found for x:1"),
    (b"[" + RECORD + b"," + RECORD + b"]", ImageNotFound, "2 images match x:1"),
    (b"not json", SourceError, "podman image inspect x:1 printed no JSON"),
    (b"[" * 100000, SourceError, "printed no JSON"),
    (RECORD, SourceError, "printed no list of images"),
    (b'["sha256:x"]', SourceError, "printed no list of images"),
])
def test_malformed_answers_are_one_line_errors(stdout, error, message):
    with pytest.raises(error, match=message) as info:
        inspected(stdout, "x:1", "podman image inspect")
    assert "\n" not in str(info.value)
