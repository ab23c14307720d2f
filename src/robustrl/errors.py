"""Exceptions users see. Each names what was wrong and what to do about it.

The CLI prints these as one line (exit code 2) unless ``--debug`` is given.
"""


class RobustRLError(ValueError):
    """Base class of every error robustrl raises on bad input."""


class UnknownEnvError(RobustRLError):
    """The environment id is not registered (or the backend lacks it)."""


class InvalidArgumentError(RobustRLError):
    """A numeric or named argument is out of range or malformed."""


class CheckpointError(RobustRLError):
    """A checkpoint is missing, corrupt, truncated, or does not match what it is loaded into."""


class RunDirectoryError(RobustRLError):
    """A path given as a run directory is not one."""


class NonFiniteError(RobustRLError):
    """A number that must be finite (an observation, reward, action, loss, saved tensor) is not."""


class NonFiniteObservationError(NonFiniteError):
    """The environment returned NaN or infinite observations."""


class RendererUnavailableError(RobustRLError):
    """No offscreen renderer for the environment (for MuJoCo: no EGL / OSMesa library)."""
