"""Image platforms (``os/arch[/variant]``), as in OCI indexes and ``--platform``."""

from __future__ import annotations

import dataclasses
import platform as _platform

from ..errors import BadReference

#: ``platform.machine()`` and common aliases -> (GOARCH, default variant).
_MACHINES = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
    "i386": ("386", None), "i686": ("386", None), "x86": ("386", None),
    "ppc64le": ("ppc64le", None), "s390x": ("s390x", None), "riscv64": ("riscv64", None),
}


@dataclasses.dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(x for x in (self.os, self.architecture, self.variant) if x)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/arm64/v8`` -> Platform; BadReference for anything else."""
        parts = (text or "").strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise BadReference(f"invalid platform {text!r}: expected OS/ARCH[/VARIANT], e.g. "
                               "linux/amd64 or linux/arm64/v8")
        arch = _MACHINES.get(parts[1].lower(), (parts[1].lower(), None))[0]
        return cls(parts[0].lower(), arch, parts[2].lower() if len(parts) == 3 else None)

    @classmethod
    def from_descriptor(cls, desc: dict | None) -> Platform | None:
        """The platform of an OCI descriptor's ``platform`` or of an image config."""
        if not isinstance(desc, dict) or not desc.get("os") or not desc.get("architecture"):
            return None
        return cls(str(desc["os"]), str(desc["architecture"]), desc.get("variant") or None)

    def matches(self, other: Platform | None) -> bool:
        """Whether an image for ``other`` (None: unknown) serves a request for ``self``.

        A request without variant accepts any variant; ``arm64`` without
        variant and ``arm64/v8`` are the same thing.
        """
        if other is None or (self.os, self.architecture) != (other.os, other.architecture):
            return False
        if self.variant is None:
            return True
        theirs = other.variant
        if theirs is None and self.architecture == "arm64":
            theirs = "v8"
        return theirs == self.variant


def host_platform() -> Platform:
    """This machine's platform, with Go's architecture names (as Docker uses)."""
    machine = _platform.machine().lower()
    arch, variant = _MACHINES.get(machine, (machine, None))
    return Platform("linux", arch, variant)
