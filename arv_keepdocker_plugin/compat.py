"""Drop-in replacements for ``arvados.commands.keepdocker`` (3.2.1) functions.

arvados-cwl-runner calls ``list_images_in_arv`` and ``main``
(``sdk/cwl/arvados_cwl/arvdocker.py`` in the Arvados repository); these
have the same signatures, return shapes and exit behaviour:

* ``list_images_in_arv(api_client, num_retries, image_name=None,
  image_tag=None, project_uuid=None)`` returns ``[(collection_uuid, info)]``
  in preference order;
* ``main(arguments=None, stdout=sys.stdout, install_sig_handlers=True,
  api=None)`` parses ``sys.argv[1:]`` when ``arguments`` is None, writes the
  listing or the collection UUID to ``stdout``, returns ``None`` after a fresh
  upload and raises ``SystemExit`` otherwise: 0 after a listing or when the
  image was already stored, 1 on errors, 2 on argument errors.
"""

from __future__ import annotations

import sys

from .cli import execute
from .steps.listing import list_images_in_arv

__all__ = ["list_images_in_arv", "main"]


def main(arguments=None, stdout=sys.stdout, stderr=sys.stderr, install_sig_handlers=True,
         api=None):
    status, outcome = execute(arguments, stdout=stdout,
                              install_sig_handlers=install_sig_handlers, api=api,
                              prog=sys.argv[0])
    if status == 0 and outcome == "uploaded":
        return None
    sys.exit(status)
