"""Helpers for the cluster's own tests: raw HTTPS requests next to the SDK clients."""

import json
import ssl
import urllib.parse
import urllib.request

import pytest


class Raw:
    """Plain HTTPS requests to a cluster, for what the SDK cannot send."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.context = ssl.create_default_context(cafile=str(cluster.ca_file))

    def __call__(self, method, path, user="alice", token=None, params=None, body=None,
                 headers=None, form=None):
        """Return ``(status, decoded JSON or None, headers)``."""
        url = "https://%s%s" % (self.cluster.api_host, path)
        if params:
            url += "?" + urllib.parse.urlencode(
                {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()})
        all_headers = dict(headers or {})
        if token is None and user is not None:
            token = self.cluster.token(user)
        if token:
            all_headers["Authorization"] = "Bearer " + token
        data = None
        if form is not None:
            data = urllib.parse.urlencode(
                {k: v if isinstance(v, str) else json.dumps(v) for k, v in form.items()}).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=60) as response:
                raw = response.read()
                return response.status, (json.loads(raw) if raw else None), response.headers
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, (json.loads(raw) if raw else None), err.headers


@pytest.fixture
def raw(arv_cluster):
    """``raw(method, path, user=..., params=..., body=...) -> (status, json, headers)``."""
    return Raw(arv_cluster)
