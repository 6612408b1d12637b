"""Generation models, one module per concern: prompt templates, jobs and images, review,
uploads."""

from .jobs import *  # noqa: F403
from .review import *  # noqa: F403
from .templates import *  # noqa: F403
from .uploads import *  # noqa: F403
