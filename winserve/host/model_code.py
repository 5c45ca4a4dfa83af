"""The Python code a model file needs besides the installed packages.

A pipeline often holds a function or a class the data scientist wrote: in a module of their
own (``features.py``), or in the notebook or script that trained it, which pickle records as
``__main__.name``. Neither exists in winserve's model host, and the load fails with a message
about pickle internals. So, before a model file is loaded:

- its folder is on the import path (at the end: it never shadows an installed package), so
  ``features.py`` next to ``model.joblib`` is found;
- ``model_code.py`` next to ``model.joblib``, when there is one, is run and what it defines is made
  visible as the training session's ``__main__``: the notebook's definitions, copied there.
  It is run as a module of its own, so an ``if __name__ == "__main__":`` block in it does not.

``explain`` turns the two load failures this is about into what to do. The code is trusted as
the model file is: it is the operator's, from the folder the operator chose.
"""

from __future__ import annotations

import re
import sys
import traceback
import types
from pathlib import Path

from winserve.errors import ModelLoadError

MODULE_NAME = "winserve_model_code"
MAIN_ATTRIBUTE = re.compile(r"Can't get attribute '([^']+)' on <module '(__main__|__mp_main__)'")


def code_file(model_path: Path) -> Path:
    """``churn.joblib`` → ``churn_code.py`` (not ``churn.py``: that is often the script that
    trained the model, and running it again on every load would train it again)."""
    return model_path.with_name(f"{model_path.stem}_code.py")


def prepare(model_path: Path) -> str:
    """Make the model's code available; the name of the code file that ran, or ``""``."""
    folder = str(model_path.parent.resolve())
    if folder not in sys.path:
        sys.path.append(folder)
    code = code_file(model_path)
    if not code.is_file():
        return ""
    _run_as_main(code)
    return code.name


def _run_as_main(code: Path) -> None:
    module = types.ModuleType(MODULE_NAME)
    module.__file__ = str(code)
    sys.modules[MODULE_NAME] = module  # so that its classes can be pickled again
    try:
        source = code.read_text(encoding="utf-8-sig")
        exec(compile(source, str(code), "exec"), vars(module))  # the operator's code, as above
    except Exception as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(code)]
        where = f" (line {frames[-1].lineno})" if frames else ""
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelLoadError(
            f"{code.name}, which runs before the model loads, failed{where}: "
            f"{type(exc).__name__}: {reason}"
        ) from None
    main = sys.modules["__main__"]
    for name, value in vars(module).items():
        if not name.startswith("__"):
            setattr(main, name, value)


def explain(exc: BaseException, model_path: Path) -> str | None:
    """What to do about a load failure caused by missing code; None for other failures."""
    code = code_file(model_path)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return (
            f"the model needs the Python module {exc.name!r}: it is not installed here, and "
            f"there is no {exc.name.split('.')[0]}.py next to {model_path.name}"
        )
    match = MAIN_ATTRIBUTE.search(str(exc)) if isinstance(exc, AttributeError) else None
    if match is None:
        return None
    name = match.group(1)
    if code.is_file():
        return (
            f"the model uses {name!r}, which {code.name} next to {model_path.name} does not define"
        )
    return (
        f"the model uses {name!r}, which was defined in the notebook or script that trained it; "
        f"put that definition (with the imports it needs) in {code.name} next to "
        f"{model_path.name}: winserve runs that file before loading the model"
    )
