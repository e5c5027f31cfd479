"""What train and test write: never over a user's file unless asked, never after the work when the place
cannot take it, with the permissions any other file of the user gets. Real runs of the tiny recipe."""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from artnet.cli import main
from artnet.engine.checkpoint import load_checkpoint
from artnet.engine.config import load_config, save_config
from artnet.engine.monitor import read_log

from .conftest import ROOT, TINY_CONFIG, tiny_overrides


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def finished_run(reference_run, tmp_path) -> Path:
    """A copy of a finished run of the tiny recipe (the session's reference run stays untouched)."""
    return Path(shutil.copytree(reference_run, tmp_path / "finished"))


def test_a_finished_run_is_not_trained_over_unless_asked(synthetic, finished_run, capsys):
    before = _snapshot(finished_run)
    args = ["train", TINY_CONFIG, *tiny_overrides(synthetic, finished_run)]
    assert main([*args, "train.resume=never"]) == 2
    assert capsys.readouterr().err == (
        f"artnet train: error: {finished_run}: holds a trained run (config.yaml, log.jsonl, best.pt and 2 more); train.resume=never"
        " would write over it: add train.overwrite=true to replace it, or choose another output_dir\n"
    )
    shutil.rmtree(finished_run / "checkpoints")  # weights, and no iteration checkpoint to resume from
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"artnet train: error: {finished_run}: holds a trained run and no iteration checkpoint to resume (config.yaml, log.jsonl,"
        " best.pt and 1 more); add train.overwrite=true to train it again there, or choose another output_dir\n"
    )
    assert _snapshot(finished_run) == {k: v for k, v in before.items() if not k.startswith("checkpoints/")}


def test_overwrite_replaces_the_run_and_its_files_follow_the_umask(synthetic, finished_run, capsys):
    (finished_run / "notes.txt").write_text("the user's")
    previous = os.umask(0o002)  # group-writable: neither the 0600 of a temporary file nor the usual 0644
    try:
        assert main(["train", TINY_CONFIG, *tiny_overrides(synthetic, finished_run, "train.resume=never", "train.overwrite=true")]) == 0
    finally:
        os.umask(previous)
    assert "resumed from" not in capsys.readouterr().out
    assert [e["iteration"] for e in read_log(finished_run / "log.jsonl") if e["kind"] == "train"] == list(range(1, 10))  # not appended
    assert (finished_run / "notes.txt").read_text() == "the user's"  # only the run's own files are replaced
    for path in [finished_run / name for name in ("config.yaml", "log.jsonl", "best.pt", "final.pt")] + sorted((finished_run / "checkpoints").iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o664, path


def test_a_users_file_is_not_replaced_but_a_run_stopped_before_its_first_checkpoint_starts_again(synthetic, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my: own config\n")
    assert main(["train", TINY_CONFIG, *tiny_overrides(synthetic, mine)]) == 2
    assert capsys.readouterr().err == (
        f"artnet train: error: {mine}: holds files a new run would replace (config.yaml); add train.overwrite=true to replace them,"
        " or choose another output_dir\n"
    )
    assert (mine / "config.yaml").read_text() == "my: own config\n"

    stopped = tmp_path / "stopped"  # what a run killed before its first checkpoint leaves
    save_config(load_config(TINY_CONFIG, tiny_overrides(synthetic, stopped)), stopped / "config.yaml")
    (stopped / "log.jsonl").write_text(json.dumps({"kind": "train", "iteration": 1, "loss": 9.0}) + "\n" + '{"kind": "tra')
    assert main(["train", TINY_CONFIG, *tiny_overrides(synthetic, stopped)]) == 0
    assert [e["loss"] != 9.0 for e in read_log(stopped / "log.jsonl") if e["kind"] == "train"] == [True] * 9


def test_test_replaces_its_own_report_and_nothing_else(synthetic, finished_run, tmp_path, capsys):
    checkpoint = finished_run / "final.pt"
    test = ["test", TINY_CONFIG, *tiny_overrides(synthetic, finished_run), "--checkpoint", str(checkpoint)]
    assert main(test) == 0 and main(test) == 0  # the normal workflow: again, into the default report beside the checkpoint
    report = finished_run / "test_1clip"
    assert json.loads((report / "metrics.json").read_text())["checkpoint"] == str(checkpoint)
    capsys.readouterr()

    shared = tmp_path / "results"
    shared.mkdir()
    (shared / "paper.tex").write_text("the user's")
    assert main([*test, "--out", str(shared)]) == 2
    assert capsys.readouterr().err == (  # one line, before the evaluation: no "testing ..." line came first
        f"artnet test: error: {shared}: holds files that are not an artnet test report (paper.tex); --force writes the report"
        " there all the same, or choose another --out\n"
    )
    assert main([*test, "--out", str(shared), "--force"]) == 0
    assert sorted(p.name for p in shared.iterdir()) == ["confusion.png", "metrics.json", "paper.tex", "per_class.csv", "scores.npz"]
    assert (shared / "paper.tex").read_text() == "the user's"


@pytest.fixture
def blocker(tmp_path) -> Path:
    """A regular file where a folder would have to be: a real failure (ENOTDIR) for root too."""
    path = tmp_path / "blocker"
    path.write_text("a file")
    return path


def test_an_output_under_a_file_is_refused_before_the_work(synthetic, reference_run, blocker, capsys):
    cases = [
        (["train", TINY_CONFIG, *tiny_overrides(synthetic, blocker / "run")], f"{blocker / 'run'}: cannot write there ({blocker} is a file)"),
        (
            ["test", TINY_CONFIG, *tiny_overrides(synthetic, reference_run), "--checkpoint", str(reference_run / "final.pt"), "--out", str(blocker / "report")],
            f"{blocker / 'report'}: cannot write there ({blocker} is a file); choose another --out",
        ),
        (["prepare", str(synthetic.root), str(blocker / "prepared"), "--quiet"], f"{blocker / 'prepared'}: cannot write there ({blocker} is a file)"),
        (["synthetic", "--out", str(blocker / "data"), "--quiet"], f"{blocker / 'data'}: cannot write there ({blocker} is a file)"),
        (
            ["convert", "--prototxt", "p", "--caffemodel", "c", "--model", "c3d_r18", "--out", str(blocker / "model.pt")],
            f"{blocker}: not a folder",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        assert captured.err == f"artnet {argv[0]}: error: {message}\n"  # the only line: nothing was evaluated or converted
        assert not captured.out
    assert blocker.read_text() == "a file"


# Runs the CLI; as root, first drops to the user 'nobody' (root passes every permission check). The code is
# imported before, with the modules imported on first use (the packaged recipes' reader, numpy's random): the
# interpreter of this environment may live where only root can read.
AS_ANOTHER_USER = """
import os, sys
import importlib.readers, numpy.random
import artnet.cli, artnet.data.prepare, artnet.data.synthetic, artnet.engine.threads
import artnet.engine.train, artnet.engine.testing, artnet.interop.convert, artnet.interop.caffemodel
artnet.cli.build_parser()  # imports every command's module
if os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
sys.exit(artnet.cli.main(sys.argv[1:]))
"""


@pytest.mark.skipif(not hasattr(os, "setuid"), reason="POSIX permissions")
def test_a_folder_without_write_permission_is_refused_before_the_work(synthetic, reference_run, tmp_path):
    """A real EACCES: a read-only folder, for a process that is not root (as root, the child drops to
    'nobody'; as another user, it runs as that user)."""
    public = Path(tempfile.mkdtemp(prefix="artnet-readonly-"))  # outside pytest's private (0700) folder
    try:
        os.chmod(public, 0o755)
        (public / "src").mkdir()
        checkpoint = Path(shutil.copy(reference_run / "final.pt", public / "final.pt"))
        os.chmod(checkpoint, 0o644)
        readonly = public / "readonly"
        readonly.mkdir()
        os.chmod(readonly, 0o555)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HOME": str(public), "ARTNET_CACHE": str(public / "cache")}
        run = tiny_overrides(synthetic, readonly / "run")
        convert = ["convert", "--prototxt", "p", "--caffemodel", "c", "--model", "c3d_r18", "--out", str(readonly / "model.pt")]
        test = ["test", TINY_CONFIG, *run, "--checkpoint", str(checkpoint), "--out", str(readonly / "report")]
        for argv, target in (
            (["synthetic", "--out", str(readonly / "data"), "--quiet"], readonly / "data"),
            (["prepare", str(public / "src"), str(readonly / "prepared"), "--quiet"], readonly / "prepared"),
            (["train", TINY_CONFIG, *run], readonly / "run"),
            (test, readonly / "report"),
            (convert, readonly),  # the folder of the file to write
        ):
            result = subprocess.run([sys.executable, "-c", AS_ANOTHER_USER, *argv], env=env, cwd=public, capture_output=True, text=True, timeout=120, check=False)
            how = "; choose another --out" if argv[0] == "test" else ""
            refused = f"artnet {argv[0]}: error: {target}: cannot write there (Permission denied){how}\n"
            assert (result.returncode, result.stderr) == (2, refused)
        assert not any(readonly.iterdir())
    finally:
        os.chmod(public / "readonly", 0o755)
        shutil.rmtree(public)


def test_a_checkpoint_of_another_model_than_the_config_names_is_tested_as_it_is(synthetic, reference_run, tmp_path, capsys):
    checkpoint, out = reference_run / "final.pt", tmp_path / "report"
    overrides = tiny_overrides(synthetic, reference_run, "model.name=c3d_r18")
    assert main(["test", TINY_CONFIG, *overrides, "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    said = capsys.readouterr().err
    assert "final.pt holds a artnet_r18_d, not the c3d_r18 the config names: testing the checkpoint's model" in said
    assert "testing artnet_r18_d" in said
    held = load_checkpoint(checkpoint)["model"]
    assert held["name"] == "artnet_r18_d" and held["options"]["depths"] == [1, 1, 1, 1]
    assert json.loads((out / "metrics.json").read_text())["model"] == held  # its name and options, recorded with the figures


def test_the_metrics_are_printed_before_the_report_so_a_failed_write_loses_nothing(synthetic, reference_run, tmp_path):
    """The report's largest file (confusion.png) fails to write: a file size limit (RLIMIT_FSIZE) makes the write
    fail as a full disk would. The metrics are on stdout already, and the error is one line."""
    import resource

    out = tmp_path / "report"
    overrides = tiny_overrides(synthetic, reference_run, "test.num_workers=0")  # the limit would also stop the workers' shared memory
    argv = ["test", TINY_CONFIG, *overrides, "--checkpoint", str(reference_run / "final.pt"), "--out", str(out)]

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "artnet", *argv], env=env, capture_output=True, text=True, preexec_fn=limited, timeout=300, check=False)
    assert result.returncode == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"top-1 {metrics['top1']:.2f}" in result.stdout  # printed before the report was written
    assert result.stderr.strip().splitlines()[-1] == f"artnet test: error: {out / 'confusion.png'}: not written (File too large); nothing was left"
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "per_class.csv", "scores.npz"]  # no temporary file left
