"""The one exception type ganforge raises for problems a user can fix."""


class GanforgeError(Exception):
    """Bad input (config, data, checkpoint, CLI): the message is one sentence a person can act on.

    The CLI prints it on one line and exits with code 2.
    """


class DivergedError(Exception):
    """Training produced NaN/Inf and could not be rolled back further; the CLI exits 1 with the message.

    The last good checkpoint is intact.
    """
