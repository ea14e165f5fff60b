"""The error type every API handler raises, and the JSON body Arvados sends for it.

Only 401, 403, 404 and 422 (and 400/413 for malformed requests) are ever
produced on purpose: clients retry 408/409/423/429/5xx for up to half an hour
(``sdk/python/arvados/retry.py``, ``_RETRY_4XX_STATUS`` in
``sdk/python/arvados/api.py``), so a bug in the server is reported as 422 too.
"""

import secrets
import time


class ApiError(Exception):
    """An API failure: ``status`` and one human-readable message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def not_found(uuid):
    """The 404 for an object that does not exist or that the caller cannot read."""
    return ApiError(404, "Object not found (%s)" % uuid)


def invalid(message):
    """A 422 validation error."""
    return ApiError(422, message)


def error_body(message, request_id=None):
    """Return the Arvados error JSON object for one message."""
    if request_id:
        message = "%s (%s)" % (message, request_id)
    return {
        "errors": [message],
        "error_token": "%d+%s" % (int(time.time()), secrets.token_hex(4)),
    }
