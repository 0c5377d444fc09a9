"""Errors the command line reports as one line naming the flag or file, without a traceback."""


class InputError(Exception):
    """Bad user input: a flag value, a missing or malformed file."""
