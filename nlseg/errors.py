"""Errors about what a user passed in, reported as one line without a traceback.

Library code names the *parameter* that is wrong (``param="calib_data"``), never a command-line
flag; the command line turns the parameter into its flag (``--calib-data``) when it prints the
error, and a Python caller sees the parameter name it passed.
"""

from __future__ import annotations

from collections.abc import Mapping


class InputError(ValueError):
    """Bad user input: an argument value, a missing or malformed file.

    ``param`` is the name of the offending parameter (a keyword of the API, a ``ModelConfig``
    field), or None when the message already names the file it is about.
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.flag: str | None = None  # set by a command whose flag for ``param`` is not the usual one

    def __str__(self) -> str:
        return self.message if self.param is None else f"{self.param}: {self.message}"

    def as_flag(self, flags: Mapping[str, str]) -> str:
        """The message with ``param`` shown as the command-line flag ``flags`` maps it to (or ``--param``)."""
        if self.param is None:
            return self.message
        flag = self.flag or flags.get(self.param, "--" + self.param.replace("_", "-"))
        return f"{flag}: {self.message}"


def os_error_line(exc: OSError) -> str:
    """'PATH: No space left on device' for an OSError: the file it is about and the system's reason."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename2 if exc.filename2 is not None else exc.filename
    return f"{where}: {reason}" if where is not None else reason
