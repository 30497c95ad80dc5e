"""Errors that the CLI reports as one plain line (no traceback unless --debug)."""


class UserError(Exception):
    """Something the user can fix: a missing file, a bad option, an unknown name."""


class DataError(UserError):
    """An input file exists but is not what it should be (layout, shape, checksum)."""
