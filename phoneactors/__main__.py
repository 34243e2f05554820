"""``python -m phoneactors``: see :mod:`phoneactors.cli`."""

from phoneactors.cli import main

raise SystemExit(main())
