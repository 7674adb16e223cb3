"""``python -m accel``: the CLI, for when the ``accel`` script is not on PATH."""

from accel.commands import main

raise SystemExit(main())
