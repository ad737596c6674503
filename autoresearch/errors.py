"""Errors the user can act on: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """Bad input or a state the user must resolve. The message says what to do."""
