"""The third-party CLIP packages: OpenAI's ``clip`` (imported around setuptools' ``pkg_resources`` removal) and
``open_clip``.

A module of its own so that the tokenizer (:mod:`cvaelib.clip.text`) and the loader (:mod:`cvaelib.clip.load`) both
use it without importing each other: ``text`` <- ``encoder`` <- ``load``, and ``packages`` below all three.
"""

from __future__ import annotations

import importlib
import sys
import types

from ..errors import KitError

CLIP_INSTALL_HINT = ("pip install git+https://github.com/openai/CLIP.git (Colab) or pip install openai-clip; "
                     "or pip install open_clip_torch")


def _drop_modules(prefix: str) -> None:
    """Forget ``prefix`` and its submodules, so a failed, half-done import can be retried cleanly."""
    for key in [k for k in sys.modules if k == prefix or k.startswith(prefix + ".")]:
        del sys.modules[key]


def _packaging_module() -> types.ModuleType:
    """``packaging`` with ``packaging.version`` loaded (pip vendors a copy if the package itself is missing)."""
    for name in ("packaging", "pip._vendor.packaging"):
        try:
            mod = importlib.import_module(name)
            importlib.import_module(name + ".version")
            return mod
        except ImportError:
            continue
    raise KitError("importing `clip` needs the `packaging` package: pip install packaging")


def import_clip_module() -> types.ModuleType:
    """Import OpenAI's ``clip`` package, working around the ``pkg_resources`` removal of setuptools >= 81.

    Raises :class:`KitError` with install hints when ``clip`` is not installed, is another PyPI package that happens
    to be called ``clip``, or cannot be imported.
    """
    try:
        module = importlib.import_module("clip")
    except ModuleNotFoundError as exc:
        if exc.name != "pkg_resources":
            _drop_modules("clip")
            raise KitError(f"OpenAI's CLIP is not installed ({exc}); {CLIP_INSTALL_HINT}") from None
        module = _import_clip_with_packaging_shim()
    except Exception as exc:  # noqa: BLE001 - any import-time crash of a third-party package
        _drop_modules("clip")
        raise KitError(f"`import clip` failed ({type(exc).__name__}: {exc}); "
                       f"reinstall it: {CLIP_INSTALL_HINT}") from None
    if not (hasattr(module, "load") and hasattr(module, "tokenize")):
        raise KitError("the installed `clip` package is not OpenAI's CLIP; "
                       f"pip uninstall clip, then {CLIP_INSTALL_HINT}")
    return module


def _import_clip_with_packaging_shim() -> types.ModuleType:
    # `clip/clip.py` only does `from pkg_resources import packaging` and later calls `packaging.version.parse`,
    # so a stand-in `pkg_resources` exposing `packaging` is enough.  It is removed again right after the import,
    # so no other library is fooled into thinking setuptools' pkg_resources exists.
    _drop_modules("clip")  # the failed attempt left `clip` half-imported
    had, previous = "pkg_resources" in sys.modules, sys.modules.get("pkg_resources")
    shim = types.ModuleType("pkg_resources")
    shim.packaging = _packaging_module()  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = shim
    try:
        return importlib.import_module("clip")
    except Exception as exc:  # noqa: BLE001
        _drop_modules("clip")
        raise KitError(f"`import clip` failed even with a pkg_resources stand-in ({type(exc).__name__}: {exc}); "
                       f"{CLIP_INSTALL_HINT}") from None
    finally:
        if had:
            sys.modules["pkg_resources"] = previous  # type: ignore[assignment]
        else:
            sys.modules.pop("pkg_resources", None)


def import_open_clip() -> types.ModuleType:
    """Import ``open_clip`` (raises :class:`KitError` with the install command when it is missing or broken)."""
    try:
        return importlib.import_module("open_clip")
    except Exception as exc:  # noqa: BLE001
        raise KitError(f"open_clip is not available ({exc}); pip install open_clip_torch") from None
