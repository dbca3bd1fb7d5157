"""argparse from the option table (:mod:`segbench.options`): arguments whose type and choices come from their
row, and a parser whose errors are one line and exit code 2."""

from __future__ import annotations

import argparse
import sys

from segbench.options import OPTIONS


class UsageError(SystemExit):
    """A bad command line, its one line already printed: ``SystemExit(2)``, which :func:`segbench.cli.main`
    turns into its return value."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr, ``segbench: error: MESSAGE (see segbench
    COMMAND --help)``, and exit code 2 (the same form as every other bad input); subparsers inherit it.

    Raises:
        UsageError: from :meth:`error` (``--help`` still exits with SystemExit(0)).
    """

    def error(self, message: str):
        message = " ".join(message.split())
        print(f"segbench: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise UsageError(2)


def table_type(name: str):
    """The argparse ``type`` of the row ``name``: converts one string and checks it against the row, the
    refusal being argparse's one-line error naming the flag."""
    rule = OPTIONS[name]

    def convert(text: str):
        try:
            return rule.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = rule.type.__name__  # argparse names the type in some of its messages
    convert.option = rule  # the generated test of the table finds the arguments that use it
    return convert


def add_option(parser, flag: str, **kwargs) -> argparse.Action:
    """``parser.add_argument(flag, ...)`` with ``type`` or ``choices`` (and ``nargs`` for rows of several values)
    from the table's row ``flag``; any other keyword as add_argument's."""
    rule = OPTIONS[flag]
    if rule.choices is not None:
        kwargs.setdefault("choices", list(rule.choices))
    else:
        kwargs.setdefault("type", table_type(flag))
    if rule.length is not None:
        kwargs.setdefault("nargs", rule.length)
    return parser.add_argument(flag, **kwargs)
