"""Challenges, token requests and the token cache, with no registry."""

import pytest

from arv_keepdocker_plugin.distribution.auth import (
    Challenge,
    TokenCache,
    choose_challenge,
    parse_challenges,
    parse_token_response,
    pull_scope,
    token_request,
)
from arv_keepdocker_plugin.distribution.credentials import Credential
from arv_keepdocker_plugin.distribution.retry import RetryPolicy, parse_retry_after


def test_parse_challenges():
    header = ('Bearer realm="https://auth.example/token",service="registry.example",'
              'scope="repository:a/b:pull", Basic realm="x \\"quoted\\"", '
              'Custom token68value')
    bearer, basic, custom = parse_challenges(header)
    assert bearer.scheme == "bearer"
    assert bearer.get("realm") == "https://auth.example/token"
    assert bearer.get("service") == "registry.example"
    assert bearer.get("scope") == "repository:a/b:pull"
    assert basic == Challenge("basic", (("realm", 'x "quoted"'),))
    assert custom == Challenge("custom", (("", "token68value"),))
    assert choose_challenge([basic, bearer]) is bearer
    assert choose_challenge([custom]) is None
    assert parse_challenges("") == [] and parse_challenges(None) == []
    assert parse_challenges("BASIC realm=unquoted")[0].get("realm") == "unquoted"


def test_token_requests():
    challenge = Challenge("bearer", (("realm", "https://t.example/token"), ("service", "svc")))
    scope = pull_scope("team/app")
    assert scope == "repository:team/app:pull"
    anonymous = token_request(challenge, scope, None)
    assert (anonymous.method, anonymous.basic) == ("GET", None)
    assert anonymous.params == (("service", "svc"), ("scope", scope))
    user = Credential("bob", "pw")
    with_user = token_request(challenge, scope, user)
    assert with_user.basic is user and ("account", "bob") in with_user.params
    refresh = token_request(challenge, scope, Credential("", "", "refresh-secret"))
    assert refresh.method == "POST" and ("refresh_token", "refresh-secret") in refresh.data
    assert ("grant_type", "refresh_token") in refresh.data


def test_token_responses():
    assert parse_token_response(b'{"token": "t", "expires_in": 300}') == ("t", 300.0)
    assert parse_token_response(b'{"access_token": "a"}') == ("a", 60.0)
    assert parse_token_response(b'{"token": "t", "expires_in": "x"}')[1] == 60.0
    for bad in (b"not json secret", b"[]", b'{"nothing": 1}'):
        with pytest.raises(ValueError) as info:
            parse_token_response(bad)
        assert "secret" not in str(info.value)


def test_token_cache_expiry_and_repr():
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    token = cache.put("r", "s", "very-secret-token", 300)
    assert cache.get("r", "s") is token and cache.get("r", "other") is None
    assert "very-secret-token" not in repr(token) + str(token) + repr(cache)
    now[0] += 296
    assert cache.get("r", "s") is None
    cache.put("r", "s", "short", 1)  # a lifetime under 60 s counts as 60 s
    now[0] += 50
    assert cache.get("r", "s").value == "short"
    cache.forget("r", "s")
    assert cache.get("r", "s") is None


def test_retry_policy():
    waited = []
    policy = RetryPolicy(attempts=4, initial_delay=0.5, max_delay=3, sleep=waited.append)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3, 3]
    assert policy.delay(1, retry_after=100) == 3 and policy.delay(1, retry_after=0) == 0
    policy.wait(2)
    policy.wait(1, retry_after=0)
    assert waited == [1.0]
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_token_responses_of_any_depth_or_size_are_one_line():
    for body, reason in ((b"[" * 100_000 + b"]" * 100_000, "is nested more than 100 levels"),
                         (b'{"token": ' + b"[" * 101 + b"]" * 101 + b"}", "is nested more"),
                         (b'{"token": "%s"}' % (b"x" * (1 << 20)), "is larger than 1048576")):
        with pytest.raises(ValueError) as info:
            parse_token_response(body)
        assert str(info.value).startswith("the token server's answer " + reason)
        assert len(str(info.value)) < 200
