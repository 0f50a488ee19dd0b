"""The one exception type ganforge raises for problems a user can fix."""


class GanforgeError(Exception):
    """Bad input (config, data, checkpoint, CLI): the message is one sentence a person can act on.

    The CLI prints it on one line and exits with code 2.
    """


class DivergedError(Exception):
    """Training produced NaN/Inf and could not be rolled back further; the CLI exits 1 with the message.

    The last good checkpoint is intact.
    """


class StorageError(Exception):
    """A write into a run dir or an output file failed (disk full, read-only filesystem, I/O error).

    Nothing was replaced: the previous checkpoint is intact and loadable, the temp file is removed.
    The CLI exits 1 with the message; ``--resume`` continues once the disk is writable again.
    """


class RunLockedError(GanforgeError):
    """Another process is training in this run dir (it holds the run's lock)."""


class CollectiveTimeout(Exception):
    """A process of a distributed run stopped waiting in a collective (past ``dist_timeout``, or a peer's
    connection was lost). The CLI exits 1 with the one line; the last checkpoint is intact, and torchrun
    --max-restarts restarts the group, which resumes from it."""


class ExportMismatch(Exception):
    """An exported generator does not reproduce ganforge's own samples within tolerance; nothing was
    written. The CLI exits 1 with the message."""
