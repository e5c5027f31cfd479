"""The command line's numbers: each option has its range, and a number out of it (or not a number) is one
line naming the option, exit 2, before any work."""

import argparse

import pytest

from artnet.cli import build_parser, main
from artnet.cli.parsing import integer, number

PREDICT = ["predict", "v.mp4", "--checkpoint", "c.pt"]
EXPLAIN = ["explain", "v.mp4", "--checkpoint", "c.pt"]
POSITIVE_INTEGER, POSITIVE = "must be a positive integer, not", "must be a positive number, not"
OUT_OF_RANGE = [
    ([*PREDICT, "--topk", "-3"], f"argument --topk: {POSITIVE_INTEGER} '-3'"),
    ([*PREDICT, "--topk", "0"], f"argument --topk: {POSITIVE_INTEGER} '0'"),
    ([*PREDICT, "--topk", "2.5"], f"argument --topk: {POSITIVE_INTEGER} '2.5'"),
    ([*PREDICT, "--view-batch", "0"], f"argument --view-batch: {POSITIVE_INTEGER} '0'"),
    ([*PREDICT, "--workers", "-1"], "argument --workers: must be an integer of 0 or more, not '-1'"),
    ([*PREDICT, "--timeline", "--stride", "0"], f"argument --stride: {POSITIVE_INTEGER} '0'"),
    (["extract", "v", "--checkpoint", "c", "--out", "o", "--view-batch", "0"], f"argument --view-batch: {POSITIVE_INTEGER} '0'"),
    ([*EXPLAIN, "--fps", "0"], f"argument --fps: {POSITIVE} '0'"),
    ([*EXPLAIN, "--fps", "inf"], f"argument --fps: {POSITIVE} 'inf'"),
    ([*EXPLAIN, "--start", "-1"], "argument --start: must be an integer of 0 or more, not '-1'"),
    (["prepare", "a", "b", "--short-side", "-5"], f"argument --short-side: {POSITIVE_INTEGER} '-5'"),
    (["prepare", "a", "b", "--gop", "0"], f"argument --gop: {POSITIVE_INTEGER} '0'"),
    (["prepare", "a", "b", "--quality", "500"], "argument --quality: must be an integer from 1 to 100, not '500'"),
    (["prepare", "a", "b", "--crf", "99"], "argument --crf: must be an integer from 0 to 51, not '99'"),
    (["prepare", "a", "b", "--flow-bound", "nan"], f"argument --flow-bound: {POSITIVE} 'nan'"),
    (["prepare", "a", "b", "--max-missing-ratio", "2"], "argument --max-missing-ratio: must be a number from 0 to 1, not '2'"),
    (["fuse", "a.npz", "b.npz", "--weights", "1", "-1"], "argument --weights: must be a number of 0 or more, not '-1'"),
    (["check-data", "list.txt", "--jobs", "0"], f"argument --jobs: {POSITIVE_INTEGER} '0'"),
    (["synthetic", "--out", "d", "--crf", "52"], "argument --crf: must be an integer from 0 to 51, not '52'"),
    (["serve", "--checkpoint", "c", "--port", "70000"], "argument --port: must be an integer from 1 to 65535, not '70000'"),
    (["serve", "--checkpoint", "c.pt", "--timeout", "0"], f"argument --timeout: {POSITIVE} '0'"),
    (["export", "c.pt", "--format", "onnx", "--out", "m.onnx", "--opset", "0"], f"argument --opset: {POSITIVE_INTEGER} '0'"),
]


@pytest.mark.parametrize("argv, problem", OUT_OF_RANGE, ids=[" ".join(argv[:1] + argv[-2:]) for argv, _ in OUT_OF_RANGE])
def test_a_number_out_of_its_range_is_one_line_before_any_work(argv, problem, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing may be written: the folder stays empty
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"artnet {argv[0]}: error: {problem}\n")
    assert not any(tmp_path.iterdir())


def test_other_usage_errors_are_one_line_too(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["predict", "v.mp4"])
    assert exit.value.code == 2
    assert capsys.readouterr().err == "artnet predict: error: the following arguments are required: --checkpoint\n"


def test_every_numeric_option_of_every_command_has_its_range():
    """No option reads a bare int or float (which takes -3, 0, inf or nan): each goes through integer() or number()."""
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    bare = [
        f"{name} {action.option_strings[0]}"
        for name, parser in commands.items()
        for action in parser._actions
        if action.type in (int, float)
    ]
    assert bare == []


def test_values_within_the_range_are_read_as_numbers():
    assert integer(0, 51)("0") == 0 and integer(0, 51)("51") == 51 and integer(1)("7") == 7
    assert number(positive=True)("0.5") == 0.5 and number(0, 1)("1") == 1.0 and number(0)("1e-3") == 0.001
    for parse, text in ((integer(1), "x"), (integer(0, 51), "-1"), (number(positive=True), "-0.0"), (number(0), "-inf")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
