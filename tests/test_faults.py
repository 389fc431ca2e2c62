"""Fault tolerance with real processes and files: kill -9 and resume, Ctrl-C keeps the checkpoint, unwritable or
full output folders fail before training, foreign/newer/truncated checkpoints and hostile prompts get one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cvaelib.checkpoint import load_checkpoint, save_checkpoint
from cvaelib.errors import CheckpointError
from procs import child

REPO = Path(__file__).resolve().parents[1]
TRAIN_ARGS = ["train", "--model", "cvae", "--dataset", "digits", "--quiet", "--seed", "3"]
TRAIN = ["-m", "cvaelib", *TRAIN_ARGS]


def _env() -> dict:
    return {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(REPO)}


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cvaelib", *args], capture_output=True, text=True, cwd=REPO,
                          env=_env(), timeout=600, **kw)


def _one_line_error(proc: subprocess.CompletedProcess, expect: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert expect in lines[0], lines[0]
    assert len(lines[0]) < 600, "error messages must not echo huge inputs"


def _wait_for_epoch(ckpt: Path, epoch: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training ended before epoch {epoch}: {proc.stderr.read() if proc.stderr else ''}")
        if ckpt.exists():
            try:
                if load_checkpoint(ckpt)["epoch"] >= epoch:
                    return
            except CheckpointError:
                pass  # never expected (atomic writes), but a half-read is retried rather than failed
        time.sleep(0.05)
    pytest.fail("no checkpoint appeared in time")


def test_kill_9_then_resume_reaches_same_quality(tmp_path):
    epochs = "30"
    straight = _cli(*TRAIN_ARGS, "--epochs", epochs, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    out = tmp_path / "killed"
    with child([sys.executable, *TRAIN, "--epochs", epochs, "--out", str(out)], cwd=REPO, env=_env(),
               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        _wait_for_epoch(out / "checkpoint.pt", 5, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    state = load_checkpoint(out / "checkpoint.pt")  # the file on disk is always a complete checkpoint
    assert 5 <= state["epoch"] < 30
    assert not (out / "metrics.json").exists()
    resumed = _cli(*TRAIN_ARGS, "--epochs", epochs, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    b = json.loads((out / "metrics.json").read_text())
    assert b["epochs"] == 30
    assert abs(a["val_loss"] - b["val_loss"]) < 0.02 * a["val_loss"], (a["val_loss"], b["val_loss"])


def test_ctrl_c_saves_checkpoint_and_exits_130(tmp_path):
    out = tmp_path / "run"
    # SIGINT reset to the default in the child (see tests/procs.py): the test works even when the suite itself was
    # started with SIGINT ignored (nohup ... &); the child is killed whatever happens
    with child([sys.executable, *TRAIN, "--epochs", "100000", "--out", str(out)], cwd=REPO, env=_env(),
               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        _wait_for_epoch(out / "checkpoint.pt", 2, proc)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert took < 30, f"Ctrl-C took {took:.1f} s to stop training"  # ~2 s on a quiet 2-core machine
    assert "--resume" in err and "Traceback" not in err
    assert load_checkpoint(out / "checkpoint.pt")["history"]["interrupted"] is True


def test_output_folder_that_cannot_exist_fails_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    _one_line_error(_cli(*TRAIN_ARGS, "--epochs", "1", "--out", str(blocker / "run")), "cannot write to output folder")


def test_full_disk_fails_before_training(tmp_path):
    """RLIMIT_FSIZE makes every write past 64 kB fail like a full disk (EFBIG), without needing a real full disk."""
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536)); "
            "from cvaelib.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, *TRAIN_ARGS, "--epochs", "50", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=REPO, env=_env(), timeout=300)
    _one_line_error(proc, "cannot write to output folder")
    assert not (tmp_path / "o" / "checkpoint.pt").exists()


def test_checkpoint_from_newer_kit_and_garbage(tmp_path):
    save_checkpoint(tmp_path / "new.pt", {"format": 99, "config": {"model": "cvae"}, "state_dict": {}})
    _one_line_error(_cli("generate", "--checkpoint", str(tmp_path / "new.pt"), "--out", str(tmp_path / "x.png")),
                    "newer cvaelib")
    (tmp_path / "garbage.pt").write_bytes(os.urandom(4096))
    _one_line_error(_cli("generate", "--checkpoint", str(tmp_path / "garbage.pt"), "--out", str(tmp_path / "x.png")),
                    "corrupt or truncated")


def test_loading_never_executes_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"kit": "cvaelib", "format": 1, "config": {}, "state_dict": Evil()}, tmp_path / "evil.pt")
    _one_line_error(_cli("generate", "--checkpoint", str(tmp_path / "evil.pt"), "--out", str(tmp_path / "x.png")),
                    "refused")
    assert not marker.exists()


@pytest.fixture(scope="module")
def label_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("label")
    proc = _cli(*TRAIN_ARGS, "--epochs", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_checkpoint_from_an_older_kit_is_refused(label_run, tmp_path):
    """Format-1 files (features flattened channel by channel) would load and then decode nonsense: refuse them."""
    payload = torch.load(label_run / "checkpoint.pt", weights_only=True)
    old = tmp_path / "old"
    old.mkdir()
    torch.save({**payload, "format": 1}, old / "checkpoint.pt")
    _one_line_error(_cli("generate", "--checkpoint", str(old), "--label", "3", "--out", str(tmp_path / "x.png")),
                    "earlier cvaelib (format 1)")
    _one_line_error(_cli(*TRAIN_ARGS, "--epochs", "4", "--resume", "--out", str(old)), "train it again")


@pytest.mark.parametrize("prompt,expect", [
    ("", "empty prompt"),
    ("   \t ", "empty prompt"),
    ("zzzz " * 2048, "no class found"),          # 10 kB
    ("一只手写的数字", "no class found"),           # non-Latin
    ("🚀🚀🚀", "no class found"),
    ("a handwritten sevn", "seven"),               # unknown word -> nearest suggestion
])
def test_bad_prompts_give_one_line_errors(label_run, tmp_path, prompt, expect):
    _one_line_error(_cli("generate", "--checkpoint", str(label_run), "--prompt", prompt, "--n", "2",
                         "--out", str(tmp_path / "p.png")), expect)


@pytest.mark.parametrize("prompt,classes", [("✨ a handwritten 7 ✨", [7]), ("THE DIGIT THREE!!!", [3]),
                                            ("two and nine", [2, 9])])
def test_odd_but_valid_prompts_work(label_run, tmp_path, prompt, classes):
    npy = tmp_path / "p.npy"
    proc = _cli("generate", "--checkpoint", str(label_run), "--prompt", prompt, "--n", "2", "--out",
                str(tmp_path / "p.png"), "--npy", str(npy))
    assert proc.returncode == 0, proc.stderr
    import numpy as np

    assert np.load(npy).shape[0] == 2 * len(classes)


@pytest.mark.parametrize("args,expect", [
    (["train", "--model", "cvae", "--dataset", "digits", "--batch-size", "0", "--out", "x"], "--batch-size must be"),
    (["train", "--model", "cvae", "--dataset", "digits", "--max-seconds", "-1", "--out", "x"], "--max-seconds must"),
    (["generate", "--checkpoint", "nowhere", "--n", "-4", "--out", "x.png"], "--n must be"),
    (["parse-prompt", "--dataset", "imagenet", "dog"], "unknown dataset"),
])
def test_cli_validates_before_heavy_work(args, expect):
    start = time.perf_counter()
    proc = _cli(*args)
    _one_line_error(proc, expect)
    assert time.perf_counter() - start < 60
