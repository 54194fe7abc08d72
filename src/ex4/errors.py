"""The one exception type that user-facing code raises for bad input."""


class Ex4Error(Exception):
    """A problem with something the user supplied (file, row, parameter, directory).

    The message is a single line that names the culprit; the CLI prints it as-is and exits non-zero.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class Ex4Warning(UserWarning):
    """Something surprising but usable in what the user supplied (a class with no rows, ...).

    The CLI prints it as one line `ex4: warning: ...`; its message names the file or parameter.
    """


def warn(message: str) -> None:
    """Issue an Ex4Warning (one line; the CLI shows it as `ex4: warning: <message>`)."""
    import warnings

    warnings.warn(Ex4Warning(" ".join(str(message).split())), stacklevel=2)


def torch_load_detail(error: BaseException) -> str:
    """Why `torch.load(..., weights_only=True)` refused a file, in one line, without torch's advice.

    torch's message suggests retrying with `weights_only=False`, which executes whatever the file holds; ex4
    never does that, so that advice is dropped and only the reason (e.g. the offending global) is kept.
    """
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text) or re.search(r"Unsupported operand (\d+)", text)
    if "weights_only" in text or "Weights only load failed" in text or found:
        what = f" ({found.group(1)})" if found else ""
        return (f"the file holds Python objects other than tensors{what}; ex4 reads weights only and never "
                "runs code from a file")
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first[:200]
