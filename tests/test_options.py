"""segbench.options: one table of ranges and choices, the same refusal from argparse, recipes and the API.

The generated tests walk the table: every flag row, on every command that takes it, with each value just
outside its range; every recipe row through ``train RECIPE --set``. A property test (hypothesis) throws random
argument lists at every command's parser and its checks and finds no traceback."""

import argparse
import contextlib
import io
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segbench.cli import SUBCOMMANDS, build_parser, main
from segbench.cli.args import UsageError
from segbench.compare import CompareOptions
from segbench.errors import UserError
from segbench.metrics.intervals import check_confidence
from segbench.metrics.per_image import ScoreOptions
from segbench.options import API_NAMES, OPTIONS, check, option, recipe_keys

PENDING: set[str] = set()  # rows whose flag another change has yet to wire


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _table_actions(sp: argparse.ArgumentParser):
    for action in sp._actions:
        flag = next((s for s in action.option_strings if s.startswith("--")), None)
        if flag in OPTIONS and (getattr(action.type, "option", None) is not None or action.choices is not None):
            yield flag, action


def _stub(sp: argparse.ArgumentParser) -> list[str]:
    """Values for a command's required arguments (they are never used: the bad option stops the parse)."""
    argv = []
    for action in sp._actions:
        if not action.option_strings and action.nargs in (None, "+"):
            argv.append("x")
        elif action.option_strings and action.required:
            argv += [action.option_strings[0], "x"]
    return argv


CASES = [
    (command, flag, value)
    for command, sp in _subparsers().items()
    for flag, action in _table_actions(sp)
    for value in OPTIONS[flag].outside()
]


def test_the_table_is_walked():
    flags = {flag for _, flag, _ in CASES}
    assert {"--bootstrap", "--boundary-ratio", "--window", "--threads", "--batch", "--mode"} <= flags
    # every flag row is an argument of some command (but the pending ones)
    assert {n for n in OPTIONS if n.startswith("--")} - PENDING == flags


def test_every_numeric_argument_comes_from_the_table():
    """No command declares an int or float option of its own: its range would not be in the table."""
    for command, sp in _subparsers().items():
        for action in sp._actions:
            assert action.type not in (int, float), (command, action.option_strings)


@pytest.mark.parametrize(("command", "flag", "value"), CASES, ids=[f"{c} {f} {v}" for c, f, v in CASES])
def test_a_value_just_outside_is_one_line_and_exit_2(command, flag, value, capsys):
    sp = _subparsers()[command]
    nargs = dict(_table_actions(sp))[flag].nargs
    count = nargs if isinstance(nargs, int) else 1
    rc = main([command, *_stub(sp), flag, *[str(value)] * count])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith("segbench: error: ") and f"argument {flag}" in lines[0], lines[0]
    assert "Traceback" not in err


def test_the_bounds_themselves_pass():
    for name, rule in OPTIONS.items():
        for bound, is_open in ((rule.low, rule.low_open), (rule.high, rule.high_open)):
            if bound is not None and not is_open:
                value = rule.type(bound)
                assert check(name, [value] * rule.length if rule.length else value) is not None, name


RECIPE_CASES = [(key, value) for key in recipe_keys() for value in OPTIONS[key].outside()]


@pytest.mark.parametrize(("key", "value"), RECIPE_CASES, ids=[f"{k}={v}" for k, v in RECIPE_CASES])
def test_a_recipe_value_just_outside_is_one_line_and_exit_2(key, value, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("iters: 1\n")
    rule = OPTIONS[key]
    text = ".nan" if isinstance(value, float) and math.isnan(value) else repr(value)
    if rule.length:
        text = "[" + ", ".join([text] * rule.length) + "]"
    rc = main(["train", str(recipe), "--set", f"{key}={text}"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"segbench: error: {key}"), lines


def test_set_value_that_is_not_yaml_names_the_key(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("iters: 1\n")
    rc = main(["train", str(recipe), "--set", "data.crop_size=[32, 48"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "--set data.crop_size: the value '[32, 48' is not YAML" in lines[0]


def test_the_api_refuses_what_the_flags_refuse():
    with pytest.raises(UserError, match=r"bootstrap \(--bootstrap\): must be within 0..100000, got 100000000"):
        ScoreOptions(bootstrap=100_000_000)
    with pytest.raises(UserError, match=r"dilation_ratio \(--boundary-ratio\): must be within 0..0.5 \(0 excluded\)"):
        ScoreOptions(dilation_ratio=2.0)
    with pytest.raises(UserError, match=r"batch \(--batch\): must be at least 1, got 0"):
        CompareOptions(batch=0)
    with pytest.raises(UserError, match=r"input_size \(--size\): expected 2 whole numbers at least 1"):
        CompareOptions(input_size=(0, 64))
    with pytest.raises(UserError, match="confidence: must be within 0..1"):
        check_confidence(1.0)
    assert ScoreOptions(bootstrap=100_000, dilation_ratio=0.5).bootstrap == 100_000


def test_table_choices_are_the_engines():
    from segbench.engine.inference import MODES
    from segbench.engine.optim import OPTIMIZERS
    from segbench.engine.prepare import AMP_DTYPES, CLASS_WEIGHTING

    assert option("--mode").choices == tuple(MODES) and option("optim.name").choices == tuple(OPTIMIZERS)
    assert option("amp").choices == tuple(AMP_DTYPES) and option("class_weighting").choices == tuple(CLASS_WEIGHTING)
    assert API_NAMES <= set(OPTIONS)


def _validate(args) -> None:
    """The checks a command makes of its options before any work (not the work itself)."""
    from segbench.cli import common

    if hasattr(args, "bootstrap"):
        common.score_options(args)
    if hasattr(args, "mode"):
        common.inference_config(args)
    if hasattr(args, "crf"):
        common.crf_config(args)
    if hasattr(args, "corruptions"):
        common.corruption_plan(args)


TOKENS = st.one_of(
    st.sampled_from(["-1", "0", "1", "2", "0.5", "1e9", "100000001", "nan", "inf", "-inf", "x", "", "--", "-",
                     "fast_scnn", "none", "1,2", "32x32", "whole", "slide", "eager"]),
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=8),
)


@pytest.mark.parametrize("command", [m.__name__.rsplit(".", 1)[-1] for m in SUBCOMMANDS])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_arguments_never_end_in_a_traceback(command, data):
    sp = _subparsers()[command]
    flags = sorted({s for a in sp._actions for s in a.option_strings if s not in ("-h", "--help")})
    argv = data.draw(st.lists(st.one_of(st.sampled_from(flags), TOKENS), max_size=8))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            args = build_parser().parse_args([command, *argv])
            _validate(args)
        except UsageError as exc:
            assert exc.code == 2 and len(err.getvalue().strip().splitlines()) == 1, err.getvalue()
        except SystemExit as exc:  # --help
            assert exc.code == 0
        except UserError:
            pass
