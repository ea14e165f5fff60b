"""Replace one ``## heading`` section of a Markdown file, keeping every other section."""

from __future__ import annotations

import os


def replace_section(path: str, heading: str, body: str) -> None:
    """Put ``heading`` + ``body`` in ``path`` in place of the section of that heading.

    A section runs from its ``## `` heading line to the next ``## `` heading
    (or the end). A missing section is appended; a missing file is created
    with a ``# Benchmarks`` title.
    """
    heading = heading.rstrip()
    section = heading + "\n\n" + body.strip("\n") + "\n"
    try:
        with open(path) as f:
            lines = f.read().splitlines(keepends=True)
    except FileNotFoundError:
        lines = ["# Benchmarks\n", "\n"]
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        text = "".join(lines).rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        after = "".join(lines[end:])
        text = "".join(lines[:start]) + section + ("\n" + after if after else "")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
