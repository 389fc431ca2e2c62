"""Pictures: image grids, reconstructions, loss curves, per-class sample grids (matplotlib, imported lazily)."""

from .plots import plot_history, plot_reconstructions, save_grid, show_grid, show_samples

__all__ = ["plot_history", "plot_reconstructions", "save_grid", "show_grid", "show_samples"]
