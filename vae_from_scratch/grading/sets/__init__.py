"""Exercise sets, one module per chapter: ``chNN_<slug>.py`` declares exercises ``"N.k"``.

Importing this package imports every module in it, so every exercise registers itself in
:data:`vae_from_scratch.grading.core.REGISTRY`; adding a set needs no list to update. A set that fails
to import does not take the others down: its error is kept in :data:`IMPORT_ERRORS` (the test suite
asserts it is empty) and reported by ``check`` when an exercise cannot be found.
"""

import importlib
import pkgutil
import traceback
import warnings

IMPORT_ERRORS = {}  # module name -> formatted traceback
MODULES = []  # names of the imported set modules, in sorted order

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
    if _info.name.startswith("_"):
        continue
    try:
        importlib.import_module(f"{__name__}.{_info.name}")
    except Exception as _error:  # noqa: BLE001 -- one broken set must not hide the others
        IMPORT_ERRORS[_info.name] = traceback.format_exc()
        warnings.warn(f"exercise set {_info.name} failed to import: {_error!r}", stacklevel=2)
    else:
        MODULES.append(_info.name)
