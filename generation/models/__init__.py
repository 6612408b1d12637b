"""Generation models, one module per concern: prompt templates, jobs and images."""

from .jobs import *  # noqa: F403
from .templates import *  # noqa: F403
