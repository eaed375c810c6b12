"""Config-diff reviews of architectures: ``lucid-arch-diff OLD NEW`` and ``--review REV``.

Every reviewed file, name and revision is hostile input. trees.py reads a model directory
(working tree or git objects) into memory, bounded; sandbox.py composes it in a limited child
process running worker.py; sides.py turns a spec (name, YAML path, ``REV:path``) into a
validated side with its provenance; review.py does that for every variant of a pull request;
compare.py turns two sides into a plain report; checkpoint.py answers "does OLD's state dict
load into NEW" from meta-device shapes; render_*.py format reports; cli.py is the console
script. Only compare.py and checkpoint.py touch torch, and only for valid sides.
"""
