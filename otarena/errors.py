"""Errors that the CLI reports as one line and a non-zero exit, never a traceback."""


class OtarenaError(Exception):
    """A problem the user can fix (bad flag, missing file, unknown name)."""


class DataError(OtarenaError):
    """A data file is missing, corrupt or unreadable."""


class UnknownNameError(OtarenaError):
    """A pair, solver, suite or budget name that does not exist."""
