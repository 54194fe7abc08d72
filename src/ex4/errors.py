"""The one exception type that user-facing code raises for bad input."""


class Ex4Error(Exception):
    """A problem with something the user supplied (file, row, parameter, directory).

    The message is a single line that names the culprit; the CLI prints it as-is and exits non-zero.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
