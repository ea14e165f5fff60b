"""A layer already in Keep: the blocks that can stand in for its bytes."""

from __future__ import annotations

import dataclasses

from .locators import locator_size


@dataclasses.dataclass(frozen=True)
class LayerBlocks:
    """A layer whose stored blocks may stand in for its bytes.

    :ivar locators: signed, whole blocks holding exactly the layer's bytes.
    :ivar diff_id: its diff id, as recorded when the record was checked.
    """

    locators: list[str]
    diff_id: str | None

    @property
    def size(self) -> int:
        """The layer's size: its blocks hold exactly its bytes."""
        return sum(locator_size(locator) for locator in self.locators)
