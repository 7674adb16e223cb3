"""``python -m accel``: the CLI, for when the ``accel`` script is not on PATH."""

from accel.cli import main

raise SystemExit(main())
