"""The API methods this cluster serves: path, HTTP method, parameters, handler.

Every entry names a method of the real discovery document
(``testkit/tests/cluster/test_conformance.py`` checks path, HTTP method and parameter
names against it). A call with a query parameter the method does not declare
is refused with 422, so the declared parameters are exactly what the server
accepts.
"""

import re
from dataclasses import dataclass

from . import users_api
from .collections_api import Collections
from .groups_api import Groups
from .httperrors import ApiError
from .links_api import Links
from .users_api import ApiClientAuthorizations, KeepServices, Users

LIST_PARAMS = frozenset({"filters", "where", "order", "select", "distinct", "limit", "offset",
                         "count", "cluster_id", "bypass_federation"})
#: parameters any method accepts (the discovery document's global ones, and tokens)
GLOBAL_PARAMS = frozenset({"alt", "fields", "key", "oauth_token", "api_token", "reader_tokens"})


@dataclass(frozen=True)
class Route:
    """One API method."""

    resource: str
    method: str
    http_method: str
    path: str  # relative to /arvados/v1/, with {uuid}
    params: frozenset
    handler: object  # callable(ctx, params, body) -> dict
    public: bool = False  # answered without a token

    @property
    def regex(self):
        return re.compile("^" + re.escape(self.path).replace(r"\{uuid\}", "(?P<uuid>[^/]+)") + "$")


def _schema(doc, name):
    return {attr: spec.get("type") for attr, spec in doc["schemas"][name]["properties"].items()}


def build_routes(doc):
    """Return the route list, resources built from the discovery document's schemas."""
    collections = Collections(_schema(doc, "Collection"))
    links = Links(_schema(doc, "Link"))
    groups = Groups(_schema(doc, "Group"))
    users = Users(_schema(doc, "User"))
    keep_services = KeepServices(_schema(doc, "KeepService"))
    tokens = ApiClientAuthorizations(_schema(doc, "ApiClientAuthorization"))

    def params_only(func):
        return lambda ctx, params, body: func(ctx, params)

    def crud(name, resource, extra_get=(), extra_list=(), extra_create=(), extra_update=()):
        return [
            Route(name, "get", "GET", name + "/{uuid}", frozenset({"uuid", "select", *extra_get}),
                  params_only(resource.get)),
            Route(name, "list", "GET", name, LIST_PARAMS | set(extra_list),
                  params_only(resource.list)),
            Route(name, "create", "POST", name,
                  frozenset({"select", "ensure_unique_name", "cluster_id", *extra_create}),
                  resource.create),
            Route(name, "update", "PUT", name + "/{uuid}",
                  frozenset({"uuid", "select", *extra_update}), resource.update),
            Route(name, "delete", "DELETE", name + "/{uuid}", frozenset({"uuid"}),
                  params_only(resource.delete)),
        ]

    replace = ("replace_files", "replace_segments")
    routes = [
        Route("users", "current", "GET", "users/current", frozenset(), params_only(users.current)),
        Route("users", "system", "GET", "users/system", frozenset(), params_only(users.system)),
        Route("users", "get", "GET", "users/{uuid}", frozenset({"uuid", "select"}),
              params_only(users.get)),
        Route("users", "list", "GET", "users", LIST_PARAMS, params_only(users.list)),
        Route("api_client_authorizations", "current", "GET", "api_client_authorizations/current",
              frozenset(), params_only(tokens.current)),
        Route("keep_services", "accessible", "GET", "keep_services/accessible", frozenset(),
              params_only(keep_services.accessible)),
        Route("keep_services", "get", "GET", "keep_services/{uuid}", frozenset({"uuid", "select"}),
              params_only(keep_services.get)),
        Route("keep_services", "list", "GET", "keep_services", LIST_PARAMS,
              params_only(keep_services.list)),
        Route("configs", "get", "GET", "config", frozenset(),
              lambda ctx, params, body: users_api.config_document(ctx.cluster), public=True),
        Route("vocabularies", "get", "GET", "vocabulary", frozenset(),
              lambda ctx, params, body: users_api.vocabulary_document(), public=True),
        Route("collections", "trash", "POST", "collections/{uuid}/trash", frozenset({"uuid"}),
              params_only(collections.trash)),
        Route("collections", "untrash", "POST", "collections/{uuid}/untrash", frozenset({"uuid"}),
              params_only(collections.untrash)),
        Route("groups", "trash", "POST", "groups/{uuid}/trash", frozenset({"uuid"}),
              params_only(groups.trash)),
        Route("groups", "untrash", "POST", "groups/{uuid}/untrash", frozenset({"uuid"}),
              params_only(groups.untrash)),
    ]
    routes += crud("collections", collections, extra_get=("include_trash",),
                   extra_list=("include_trash", "include_old_versions"),
                   extra_create=replace, extra_update=replace)
    routes += crud("links", links)
    routes += crud("groups", groups, extra_get=("include_trash",), extra_list=("include_trash",),
                   extra_create=("async",), extra_update=("async",))
    return routes


class Router:
    """Find the route for ``(HTTP method, path under /arvados/v1/)``."""

    def __init__(self, doc):
        self.routes = build_routes(doc)
        self._compiled = [(route, route.regex) for route in self.routes]

    def match(self, http_method, path):
        """Return ``(route, path_params)``; raise 404 (no such path) or 422 (wrong method)."""
        path_found = False
        for route, regex in self._compiled:
            found = regex.match(path)
            if not found:
                continue
            path_found = True
            if (route.http_method == http_method
                    or (http_method == "PATCH" and route.http_method == "PUT")):
                return route, found.groupdict()
        if path_found:
            raise ApiError(422, "Method %s not allowed on /arvados/v1/%s" % (http_method, path))
        raise ApiError(404, "Path not found: /arvados/v1/%s" % path)

    @staticmethod
    def check_params(route, params):
        """Refuse parameters the method does not declare."""
        unknown = sorted(set(params) - route.params - GLOBAL_PARAMS)
        if unknown:
            raise ApiError(422, "Unknown parameter(s) for %s.%s: %s"
                           % (route.resource, route.method, ", ".join(unknown)))
