"""Training beyond one process: the same `train` command under torchrun (DDP, gloo on CPU), on the CelebA fixture.

Checks: two processes train together and only rank 0 writes files; gradients really are synchronised (after a few
steps on different shards both ranks hold the same weights, equal to one process trained on the union of their
batches); one process under torchrun gives bit-identical weights to a plain run; each rank sees its own disjoint share
of every epoch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cvaelib.checkpoint import load_checkpoint
from cvaelib.data import ImageData, TensorBatches
from cvaelib.distributed import ShardedBatches, is_main_process, launched
from fixtures.celeba_fixture import make_celeba_fixture
from procs import kill_group, popen

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--model", "attr-cvae", "--image-size", "32", "--width", "8", "--latent-dim", "8",
         "--epochs", "2", "--batch-size", "4", "--quiet"]


@pytest.fixture(scope="module")
def celeba_prepared(tmp_path_factory) -> Path:
    from data_prep.celeba import prepare_celeba

    root = tmp_path_factory.mktemp("celeba-ddp")
    src = make_celeba_fixture(root / "src", n=40, layout="official")
    prepare_celeba(src, root / "prepared", sizes=(32,), variants=("zoom",), workers=1, verify=False)
    return root / "prepared"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    # one thread per process: the same arithmetic in every run, and no oversubscription of a small CPU
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
    return env


def _torchrun_cmd(nproc: int, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "cvaelib", *args]


def _run(*cmds: list[str]) -> list[subprocess.CompletedProcess]:
    """Run commands side by side (each is a whole training run) and wait for all."""
    procs = [popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cmd in cmds]
    results = []
    try:
        for cmd, p in zip(cmds, procs):
            out, err = p.communicate(timeout=240)
            results.append(subprocess.CompletedProcess(cmd, p.returncode, out, err))
    finally:  # a hung or failed run never leaves torchrun's workers behind
        for p in procs:
            kill_group(p)
    return results


def test_two_processes_train_together_and_only_rank0_writes(celeba_prepared, tmp_path):
    out = tmp_path / "ddp2"
    (proc,) = _run(_torchrun_cmd(2, TRAIN + ["--dataset", f"celeba:{celeba_prepared}", "--out", str(out)]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trained attr-cvae") == 1  # rank 1 prints nothing
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.json", "samples.png"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["epochs"] == 2
    state = load_checkpoint(out)
    # 28 training faces -> 14 per rank -> 3 batches of 4 per rank (drop_last) -> 24 images per epoch in all
    assert state["history"]["images"] == 2 * 24
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_gradients_are_synchronised_across_ranks(data_root, tmp_path):
    """Two ranks train on disjoint shards; DDP's all-reduce averages their gradients every step, so both end with
    identical weights, equal (to float rounding) to one process whose batches are the union of the ranks' batches.

    Checked by switching the all-reduce off (``cvaelib.distributed.wrap`` returning the bare loss module instead of
    the DDP wrapper): each rank then follows its own shard, the ranks' weights differ by up to 1.1e-2 (7.3e-3 from
    the single-process run) and this test fails; with DDP they are bit-identical and within 1.2e-7 of the
    single-process run (measured on a 2-core CPU).
    """
    import ddp_worker

    (proc,) = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(REPO / "tests" / "ddp_worker.py"), str(tmp_path), str(data_root)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    start = ddp_worker.new_model().state_dict()
    assert any(not torch.equal(ranks[0][k], start[k]) for k in start), "the ranks did not train"
    for k in start:
        assert torch.equal(ranks[0][k], ranks[1][k]), f"{k}: the ranks hold different weights (no gradient sync)"

    # the same steps in one process: step k sees rank 0's k-th batch and rank 1's k-th batch together
    data = ddp_worker.train_data(str(data_root))
    shards = [ShardedBatches(data, ddp_worker.BATCH, seed=ddp_worker.SEED, rank=r, world_size=2, drop_last=True)
              for r in (0, 1)]
    union = [(torch.cat([x0, x1]), torch.cat([c0, c1])) for (x0, c0), (x1, c1) in zip(*shards)]
    assert len(union) == 6
    single = ddp_worker.new_model()
    from cvaelib.train import fit

    fit(single, union, epochs=1, lr=ddp_worker.LR, precision="fp32", progress=False, seed=ddp_worker.SEED)
    for k, v in single.state_dict().items():
        moved = float((ranks[0][k] - start[k]).abs().max())
        assert torch.allclose(ranks[0][k], v, rtol=0, atol=1e-5), \
            f"{k}: DDP and the single-process run differ by {float((ranks[0][k] - v).abs().max()):.2e} " \
            f"(training moved it by {moved:.2e})"


def test_one_process_under_torchrun_equals_a_plain_run(celeba_prepared, tmp_path):
    args = TRAIN + ["--dataset", f"celeba:{celeba_prepared}"]
    ddp, plain = _run(_torchrun_cmd(1, args + ["--out", str(tmp_path / "ddp1")]),
                      [sys.executable, "-m", "cvaelib", *args, "--out", str(tmp_path / "plain")])
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert plain.returncode == 0, plain.stderr[-3000:]
    a, b = load_checkpoint(tmp_path / "ddp1"), load_checkpoint(tmp_path / "plain")
    assert a["history"]["train"] == b["history"]["train"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


def test_sharded_batches_split_each_epoch_between_ranks():
    n = 22
    data = ImageData(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous(),
                     torch.arange(n), [], "ids")

    def ids(batches) -> list[list[int]]:
        return [y.tolist() for _, y in batches]

    one = ShardedBatches(data, 4, seed=3, rank=0, world_size=1)
    assert ids(one) == ids(TensorBatches(data, 4, seed=3)) and len(one) == 6
    r0, r1 = (ShardedBatches(data, 4, seed=3, rank=r, world_size=2, drop_last=True) for r in (0, 1))
    e0, e1 = ids(r0), ids(r1)
    assert len(e0) == len(e1) == len(r0) == 2  # 11 items per rank -> 2 full batches each: same step count
    flat0, flat1 = sum(e0, []), sum(e1, [])
    assert not set(flat0) & set(flat1)  # disjoint shares of the same shuffled order
    order = torch.randperm(n, generator=torch.Generator().manual_seed(3)).tolist()
    assert flat0 == order[0::2][:8] and flat1 == order[1::2][:8]
    assert ids(r0) != e0  # a new shuffle every epoch
    with pytest.raises(ValueError, match="rank"):
        ShardedBatches(data, 4, rank=2, world_size=2)


def test_outside_torchrun_everything_is_rank0(monkeypatch):
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert not launched() and is_main_process()
