"""Progress on a terminal is a bar; in a log file it is a plain line now and then."""

import io

from artnet.progress import LineProgress, progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_file_gets_lines_not_redraws():
    log = io.StringIO()
    bar = progress_bar(total=800, initial=100, description="train", unit="it", file=log)
    assert isinstance(bar, LineProgress)
    bar.interval = 0.0  # a line for every update
    for _ in range(3):
        bar.set_postfix({"loss": 1.5})
        bar.update()
    bar.write("iteration 103: validation ...")
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines[0].startswith("train: 101/800 it (13%)") and lines[0].endswith("loss 1.5")
    assert "iteration 103: validation ..." in lines
    assert lines[-1].startswith("train: 103/800 it")


def test_lines_are_spaced_by_the_interval():
    log = io.StringIO()
    items = list(LineProgress(range(1000), total=1000, description="check", file=log, interval=3600))
    assert items == list(range(1000))
    assert log.getvalue().splitlines() == [log.getvalue().splitlines()[-1]]  # only the closing line
    assert log.getvalue().startswith("check: 1000/1000 it (100%)")


def test_a_terminal_gets_a_bar_and_silence_is_silent():
    from tqdm import tqdm

    assert isinstance(progress_bar(total=3, file=Terminal()), tqdm)
    quiet = io.StringIO()
    assert list(progress_bar(range(3), total=3, show=False, file=quiet)) == [0, 1, 2]
    assert quiet.getvalue() == ""
