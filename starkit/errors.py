"""The base of every error starkit reports to users as a message rather than a traceback."""


class StarkitError(Exception):
    """A user-facing error: the message names the file, line, field or name at fault.

    The CLI prints these as ``Error: <message>`` and exits with status 1.
    """
