"""Errors that the CLI reports as one line and a non-zero exit, never a traceback."""


class OtarenaError(Exception):
    """A problem the user can fix (bad flag, missing file, unknown name)."""


class DataError(OtarenaError):
    """A data file is missing, corrupt or unreadable."""


class UnknownNameError(OtarenaError):
    """A pair, solver, suite or budget name that does not exist."""


_warned: set[str] = set()


def warn(message: str) -> None:
    """A problem otarena works around (a skipped line, a dropped checkpoint): one line on
    stderr, once per process, so a store read at every step does not repeat itself."""
    import sys

    if message not in _warned:
        _warned.add(message)
        print(f"otarena: warning: {message}", file=sys.stderr)
