"""May this cluster store this image? arv-keepdocker 3.2.1's rule.

The discovery document's ``dockerImageFormats`` lists the accepted formats;
``sha256:`` ids are ``v2``, bare 64-hex ids ``v1``. A missing or empty list
is refused, as 3.2.1 does (and as the API server's image lookup would fail).
"""

from .. import hookimpl

NO_FORMATS = ("server does not specify supported image formats "
              "(see docker_image_formats in server config).")


@hookimpl(trylast=True)
def keepdocker_check_format(image, supported_formats):
    if not supported_formats:
        return (False, NO_FORMATS)
    if image.format in supported_formats:
        return (True, None)
    return (False, "image format is {!r} but server supports only {!r}".format(
        image.format, supported_formats))
