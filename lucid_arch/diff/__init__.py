"""Config-diff reviews of architectures: ``lucid-arch-diff OLD NEW``.

sides.py resolves a side (name, YAML path, ``REV:path``) to a validated config with its
provenance; compare.py turns two sides into a plain report; checkpoint.py answers "does OLD's
state dict load into NEW" from meta-device shapes; render_*.py format the report; cli.py is
the console script. Only compare.py and checkpoint.py touch torch, and only for valid sides.
"""
