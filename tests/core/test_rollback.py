"""Rollback: a failed run deletes what it created, links first; a good run keeps all."""

import logging

import pytest
from arv_keepdocker_testkit.fakes import FakeApi

from arv_keepdocker_plugin.steps.rollback import Rollback


def test_success_keeps_everything():
    api = FakeApi()
    with Rollback(api, 0) as rollback:
        rollback.created_collection({"uuid": "zzzzz-4zz18-000000000000001"})
        rollback.link({"name": "a"})
    assert [call[0] for call in api.log] == ["create"]
    assert len(rollback.records) == 1


def test_failure_deletes_links_newest_first_then_the_collection():
    api = FakeApi()
    with pytest.raises(RuntimeError):
        with Rollback(api, 0) as rollback:
            rollback.created_collection({"uuid": "zzzzz-4zz18-000000000000009"})
            first = rollback.link({"name": "a"})
            second = rollback.link({"name": "b"})
            raise RuntimeError("a later step failed")
    deletes = [call for call in api.log if call[0] == "delete"]
    assert deletes == [("delete", "links", second["uuid"]), ("delete", "links", first["uuid"]),
                       ("delete", "collections", "zzzzz-4zz18-000000000000009")]


def test_a_link_that_fails_is_not_deleted_and_the_error_is_kept():
    api = FakeApi()
    api.failures[("create", "links")] = ValueError("422 head_uuid not found")
    with pytest.raises(ValueError, match="422"):
        with Rollback(api, 0) as rollback:
            rollback.created_collection({"uuid": "zzzzz-4zz18-000000000000003"})
            rollback.link({"name": "refused"})
    assert [c for c in api.log if c[0] == "delete"] == [
        ("delete", "collections", "zzzzz-4zz18-000000000000003")]


def test_an_undo_that_fails_is_a_warning_not_a_new_error(caplog):
    api = FakeApi()
    api.failures[("delete", "links")] = OSError("API down")
    with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
        with pytest.raises(KeyError):
            with Rollback(api, 0) as rollback:
                rollback.link({"name": "a"})
                raise KeyError("boom")
    assert "could not undo a partial upload: API down" in caplog.text
