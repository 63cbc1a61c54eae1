class SeriesError(Exception):
    """An expected failure: reported to the operator without a traceback.

    ``exit_code`` follows the command's contract: 1 for a failure of the
    operation itself (a conflict, a version mismatch), 2 for a usage error.
    """

    exit_code = 1


class UsageError(SeriesError):
    exit_code = 2


class PatchFormatError(SeriesError):
    pass


class ConflictError(SeriesError):
    pass
