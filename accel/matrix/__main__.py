"""python -m accel.matrix"""

import sys

from accel.matrix.runner import main

sys.exit(main())
