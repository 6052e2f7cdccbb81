"""The one way the toolkit fails on purpose: a :class:`UserError` says what the user must fix.

The CLI prints ``snnfpga: error: <message>`` to stderr and exits with the error's
``exit_code``: 2 for a problem with the input, the options or the machine, 1 for a check that
ran and failed (:class:`Mismatch`). Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["UserError", "BadFile", "BadOption", "Unsupported", "MissingTool", "MissingExtra", "ToolFailed",
           "DoesNotFit", "Mismatch"]


class UserError(Exception):
    """A problem the user can fix; the message names the file, field, option or tool."""

    exit_code = 2


class BadFile(UserError):
    """A file that is missing, unreadable or malformed."""


class BadOption(UserError, ValueError):
    """An option or argument value that is not allowed (an unknown board, lanes < 1, ...)."""


class Unsupported(UserError, NotImplementedError):
    """A network the toolkit cannot handle (yet); the message names the layer and what is supported."""


class MissingTool(UserError):
    """A program or package the command needs is not installed (a simulator, a toolchain)."""


class MissingExtra(MissingTool):
    """A command that needs an optional part of the distribution, e.g. ``snnfpga[hardware]``."""

    def __init__(self, extra: str, command: str, module: str):
        self.extra, self.command, self.module = extra, command, module
        super().__init__(f"'snnfpga {command}' needs the {extra} extra (module {module!r} is missing): "
                         f"pip install 'snnfpga[{extra}]'")


class ToolFailed(UserError):
    """An external tool (Verilator, Icarus, yosys, nextpnr) ran and failed; the log tail is included."""


class DoesNotFit(UserError):
    """The design needs more of a resource than the board has."""


class Mismatch(UserError):
    """A check that ran and failed: the hardware disagrees with the integer reference."""

    exit_code = 1
