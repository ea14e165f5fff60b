"""The pytest fixtures shipped for hook authors point at the session cluster as promised."""

import os

import arvados


def test_arv_env_points_the_sdk_at_alice(arv_env, arv_cluster, tmp_path):
    assert arv_env == arv_cluster.env("alice")
    for name, value in arv_env.items():
        assert os.environ[name] == value
    assert os.environ["HOME"].startswith(str(tmp_path))
    assert os.environ["XDG_CACHE_HOME"].startswith(str(tmp_path))
    me = arvados.api("v1", num_retries=0).users().current().execute()
    assert me["uuid"] == arv_cluster.user_uuid("alice")


def test_clients_are_the_three_users(arv_api, arv_api_bob, arv_api_admin, arv_cluster):
    for api, user in ((arv_api, "alice"), (arv_api_bob, "bob"), (arv_api_admin, "admin")):
        record = api.users().current().execute()
        assert record["uuid"] == arv_cluster.user_uuid(user)
        assert record["username"] == user
        assert record["is_admin"] is (user == "admin")


def test_arv_project_is_fresh_and_alices(arv_project, arv_api, arv_cluster):
    assert arv_project["group_class"] == "project"
    assert arv_project["owner_uuid"] == arv_cluster.user_uuid("alice")
    inside = arv_api.collections().list(
        filters=[["owner_uuid", "=", arv_project["uuid"]]]).execute()
    assert inside["items"] == [] and inside["items_available"] == 0
