"""``python -m unet_lesson ...``: see :mod:`unet_lesson.course.cli`."""

import sys

from .course.cli import main

sys.exit(main())
