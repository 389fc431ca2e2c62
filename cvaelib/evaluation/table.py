"""The metrics of :func:`cvaelib.evaluation.evaluate_checkpoint` as a plain-text table."""

from __future__ import annotations

from typing import Any

_ROWS = [  # key, label, format
    ("recon_mse", "reconstruction MSE", "{:.5f}"),
    ("recon_psnr", "reconstruction PSNR (dB)", "{:.2f}"),
    ("recon_ssim", "reconstruction SSIM", "{:.4f}"),
    ("sample_cfid", "classifier-FID samples vs test", "{:.3f}"),
    ("real_cfid", "classifier-FID real train vs test", "{:.3f}"),
    ("sample_fid", "Inception FID samples vs test", "{:.2f}"),
    ("real_fid", "Inception FID real train vs test", "{:.2f}"),
    ("cond_acc_mean", "conditional accuracy (mean)", "{:.1%}"),
    ("label_swap_acc", "label swap: judged as the new class", "{:.1%}"),
    ("prompt_acc_mean", "prompt accuracy (mean)", "{:.1%}"),
    ("clip_score", "CLIP score (cosine)", "{:.4f}"),
    ("clip_score_other_class", "  same samples, another class's prompt", "{:.4f}"),
    ("judge_accuracy", "judge's own test accuracy", "{:.1%}"),
]


def format_table(metrics: dict[str, Any]) -> str:
    """A plain-text table of :func:`evaluate_checkpoint`'s result (per-class accuracies indented, notes below)."""
    head = (f"{metrics.get('model', '?')} on {metrics.get('dataset', '?')} "
            f"(condition: {metrics.get('condition', 'none')}, n={metrics.get('n', '?')})")
    rows: list[tuple[str, str]] = []
    for key, label, fmt in _ROWS:
        if key not in metrics:
            continue
        value = metrics[key]
        text = "n/a" if value is None else fmt.format(value)
        if key == "recon_ssim" and metrics.get("ssim_window", 11) != 11:
            text += f"  ({metrics['ssim_window']}x{metrics['ssim_window']} window: images are small)"
        if f"{key}_n" in metrics:
            text += f"  (n={metrics[f'{key}_n'][0]}/{metrics[f'{key}_n'][1]})"
        rows.append((label, text))
        for per in ("cond_acc_per_class", "prompt_acc_per_class"):
            if key == per.replace("_per_class", "_mean") and isinstance(metrics.get(per), dict):
                rows.extend((f"  {name}", f"{acc:.1%}") for name, acc in metrics[per].items())
    width = max([len(label) for label, _ in rows] + [len("metric")])
    lines = [head, f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 12}"]
    lines += [f"{label:<{width}}  {text}" for label, text in rows]
    lines += [f"note: {note}" for note in metrics.get("notes", [])]
    return "\n".join(lines)
