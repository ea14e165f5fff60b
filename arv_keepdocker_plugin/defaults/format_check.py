"""May this cluster store this image? arv-keepdocker 3.2.1's rule (essential).

The discovery document's ``dockerImageFormats`` lists the accepted formats
(the cluster's ``Containers.SupportedDockerImageFormats``, see
``lib/config/config.default.yml`` and
``sdk/python/arvados/commands/keepdocker.py``, ``docker_image_compatible``);
``sha256:`` ids are ``v2``, bare 64-hex ids ``v1``. A missing or empty list is
refused, as 3.2.1 does (and as the API server's image lookup would fail).
"""

from collections.abc import Sequence

from .. import hookimpl
from ..hooktypes import FormatVerdict
from ..image import Image

NO_FORMATS = ("server does not specify supported image formats "
              "(see docker_image_formats in server config).")


@hookimpl(trylast=True)
def keepdocker_check_format(image: Image,
                            supported_formats: Sequence[str] | None) -> FormatVerdict:
    if not supported_formats:
        return FormatVerdict(False, NO_FORMATS)
    if image.format in supported_formats:
        return FormatVerdict(True)
    return FormatVerdict(False, f"image format is {image.format!r} but server supports only "
                                f"{supported_formats!r}")
