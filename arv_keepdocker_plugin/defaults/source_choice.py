"""Which source serves a bare ``NAME[:TAG]``: the Docker engine, else podman (essential)."""

import argparse
from collections.abc import Mapping

from .. import hookimpl
from ..image import ImageSource


@hookimpl(trylast=True)
def keepdocker_default_source(sources: Mapping[str, ImageSource],
                              options: argparse.Namespace) -> str | None:
    engines = [source for source in sources.values() if source.serves_bare_names]
    preferred = sorted(engines, key=lambda s: s.name != "docker-daemon")
    for source in preferred:
        if source.available(options):
            return source.name
    # Nothing answers: let the Docker source report why (as arv-keepdocker would).
    if "docker-daemon" in sources:
        return "docker-daemon"
    return preferred[0].name if preferred else None
