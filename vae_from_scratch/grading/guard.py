"""Reject answers that are, wrap or call the package's own solution of an exercise.

An exercise's ``reference`` is the package function that solves it. An answer that simply returns
``reference(...)`` would pass every graded test, so both :func:`~vae_from_scratch.grading.check` and
the grader refuse it with zero points. Two layers:

* a **static** look at the answer before any test runs: the object itself, then everything its
  code names, resolved exactly -- globals and attribute chains in its bytecode
  (``distributions.log_normal_diag``, ``vae_from_scratch.numpy.distributions.log_normal_diag``),
  ``from ... import`` inside it, closures, default values, ``functools.partial``/``__wrapped__``,
  methods of answer classes, helper functions the notebook defines (recursively);
* a **runtime** profile hook while the tests call the answer: entering the code of a forbidden
  function while the answer is on the call stack (e.g. after ``importlib.import_module`` tricks)
  is recorded as a violation.

Forbidden are the exercise's ``reference``, its ``forbidden`` extras, and every function or class of a
``vae_from_scratch`` module (outside ``vae_from_scratch.grading``) with the reference's name -- the
same concept in the other backend. Other package functions stay allowed: later chapters build on
earlier ones (an ELBO answer may call the package's ``log_normal_diag``).

Limits, stated plainly: this guards against a student reaching for the package's solution, not against
deliberate sabotage of the grading process itself (as with nbgrader or otter-grader, student code runs
with the grader's permissions).
"""

import functools
import inspect
import os
import sys
import sysconfig
import types

PACKAGE = "vae_from_scratch"
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIBRARY_DIRS = tuple(
    sorted({os.path.abspath(p) for key in ("stdlib", "platstdlib", "purelib", "platlib")
            if (p := sysconfig.get_paths().get(key))} | {_PACKAGE_DIR})
)
_MAX_OBJECTS = 20000  # bound the static walk; the runtime hook covers what lies beyond
_MAX_CONTAINER = 1000


def _module_of(obj):
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str):
        module = getattr(type(obj), "__module__", None)
    return module if isinstance(module, str) else ""


def _is_package(obj):
    """True for modules, functions, classes and instances that belong to the package (not grading)."""
    module = _module_of(obj)
    return (module == PACKAGE or module.startswith(PACKAGE + ".")) and not module.startswith(
        PACKAGE + ".grading")


def _is_student_code(code):
    """Code objects written by the user: neither the standard library, site-packages nor the package."""
    filename = code.co_filename
    if filename.startswith("<"):  # "<cell 3>", "<ipython-input-...>", "<string>"
        return not filename.startswith("<frozen")
    filename = os.path.abspath(filename)
    return not any(filename == d or filename.startswith(d + os.sep) for d in _LIBRARY_DIRS)


def _is_student_class(cls):
    """A class with at least one method written by the user."""
    for value in vars(cls).values():
        value = getattr(value, "__func__", value)
        if isinstance(value, property):
            value = value.fget
        if isinstance(value, types.FunctionType) and _is_student_code(value.__code__):
            return True
    return False


def _nested_codes(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _nested_codes(const)


def _qualified(obj):
    module = _module_of(obj)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__
    return f"{module}.{name}" if module else name


def forbidden_objects(exercise):
    """``{id(obj): (obj, qualified name)}`` of everything an answer to ``exercise`` may not use."""
    found = {}
    for obj in (exercise.reference, *getattr(exercise, "forbidden", ())):
        found[id(obj)] = (obj, _qualified(obj))
    name = getattr(exercise.reference, "__name__", None)
    if name:
        for module_name, module in list(sys.modules.items()):
            if module is None or not _is_package(module):
                continue
            candidate = getattr(module, name, None)
            if candidate is not None and callable(candidate) and _is_package(candidate):
                found.setdefault(id(candidate), (candidate, _qualified(candidate)))
    return found


def _codes_of(obj):
    """Code objects executed when ``obj`` (a function, method or class) is called."""
    obj = inspect.unwrap(obj) if callable(obj) else obj
    if isinstance(obj, types.MethodType):
        obj = obj.__func__
    if isinstance(obj, types.FunctionType):
        return [obj.__code__]
    if isinstance(obj, type):
        codes = []
        for value in vars(obj).values():
            value = getattr(value, "__func__", value)
            if isinstance(value, types.FunctionType):
                codes.append(value.__code__)
        return codes
    return []


def forbidden_codes(exercise):
    """``{code object: qualified name}`` for the runtime hook."""
    codes = {}
    for obj, name in forbidden_objects(exercise).values():
        for code in _codes_of(obj):
            codes[code] = name
    return codes


_TRANSPARENT = {"PUSH_NULL", "NOP", "EXTENDED_ARG", "CACHE", "RESUME", "COPY_FREE_VARS", "PRECALL"}
_MISSING = object()


def _static_attribute(obj, name):
    try:
        return inspect.getattr_static(obj, name)
    except Exception:  # noqa: BLE001 -- AttributeError or an exotic object: unresolved
        return _MISSING


def _resolved_references(function):
    """Objects the bytecode of ``function`` (and its nested code) names, resolved statically.

    Follows ``global.attr.attr`` chains (``LOAD_GLOBAL``/``LOAD_DEREF`` then ``LOAD_ATTR``/
    ``LOAD_METHOD``) and ``from module import name`` inside the function; what is computed at run time
    (locals, subscripts, ``getattr`` with strings) is left to the runtime hook.
    """
    import builtins
    import dis

    globals_ = function.__globals__
    cells = dict(zip(function.__code__.co_freevars,
                     (c for c in function.__closure__ or ())))
    found = []
    for code in _nested_codes(function.__code__):
        chain, imported = _MISSING, _MISSING
        for instruction in dis.get_instructions(code):
            op, name = instruction.opname, instruction.argval
            if op in _TRANSPARENT:
                continue
            if op in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(name, str):
                chain = globals_.get(name, _MISSING)
                if chain is _MISSING:
                    chain = getattr(builtins, name, _MISSING)
            elif op in ("LOAD_DEREF", "LOAD_CLASSDEREF") and isinstance(name, str) and name in cells:
                try:
                    chain = cells[name].cell_contents
                except ValueError:
                    chain = _MISSING
            elif op in ("LOAD_ATTR", "LOAD_METHOD") and isinstance(name, str) and chain is not _MISSING:
                chain = _static_attribute(chain, name)
            elif op == "IMPORT_NAME" and isinstance(name, str):
                imported = chain = sys.modules.get(name, _MISSING)
            elif op == "IMPORT_FROM" and isinstance(name, str) and imported is not _MISSING:
                value = _static_attribute(imported, name)
                if value is not _MISSING:
                    found.append(value)
                chain = _MISSING
                continue
            else:
                chain = _MISSING
                if op != "STORE_FAST" and op != "STORE_NAME" and op != "POP_TOP":
                    imported = _MISSING
                continue
            if chain is not _MISSING:
                found.append(chain)
    return found


class _Walk:
    """The static walk over what an answer can reach by name."""

    def __init__(self, exercise):
        self.forbidden = forbidden_objects(exercise)
        self.ref_name = getattr(exercise.reference, "__name__", None)
        self.seen = set()
        self.student_codes = set()
        self.queue = []

    def push(self, obj):
        if id(obj) not in self.seen:
            self.queue.append(obj)

    def run(self, obj):
        self.push(obj)
        while self.queue:
            obj = self.queue.pop()
            if id(obj) in self.seen:
                continue
            self.seen.add(id(obj))
            if len(self.seen) > _MAX_OBJECTS:
                break
            found = self.visit(obj)
            if found:
                return found
        return None

    def visit(self, obj):  # noqa: C901 -- one case per kind of object
        hit = self.forbidden.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        if isinstance(obj, (str, bytes, int, float, complex, bool, type(None), types.ModuleType)):
            return None
        if _is_package(obj) and getattr(obj, "__name__", None) == self.ref_name and callable(obj):
            return _qualified(obj)
        if isinstance(obj, functools.partial):
            self.push(obj.func)
            for value in (*obj.args, *obj.keywords.values()):
                self.push(value)
            return None
        if isinstance(obj, types.MethodType):
            self.push(obj.__func__)
            self.push(obj.__self__)
            return None
        if isinstance(obj, (staticmethod, classmethod)):
            self.push(obj.__func__)
            return None
        if isinstance(obj, property):
            for f in (obj.fget, obj.fset, obj.fdel):
                if f is not None:
                    self.push(f)
            return None
        if isinstance(obj, types.FunctionType):
            wrapped = getattr(obj, "__wrapped__", None)
            if wrapped is not None:
                self.push(wrapped)
            if not _is_student_code(obj.__code__):
                return None
            self.student_codes.update(_nested_codes(obj.__code__))
            for value in _resolved_references(obj):
                self.push(value)
            for cell in obj.__closure__ or ():
                try:
                    self.push(cell.cell_contents)
                except ValueError:  # empty cell
                    pass
            for value in (*(obj.__defaults__ or ()), *(obj.__kwdefaults__ or {}).values()):
                self.push(value)
            return None
        if isinstance(obj, type):
            if _is_student_class(obj):
                for value in list(vars(obj).values()):
                    self.push(value)
                for base in obj.__bases__:
                    self.push(base)
            return None
        if _is_package(obj):
            return None  # a package instance: its attributes are reached through attribute chains
        if isinstance(obj, dict):
            if len(obj) <= _MAX_CONTAINER:
                for value in list(obj.values()):
                    self.push(value)
            return None
        if isinstance(obj, (list, tuple, set, frozenset)):
            if len(obj) <= _MAX_CONTAINER:
                for value in list(obj):
                    self.push(value)
            return None
        # any other instance: a callable object is searched through its class and attributes
        # (numpy.vectorize keeps the wrapped function in ``pyfunc``)
        if callable(obj):
            self.push(type(obj))
        attributes = getattr(obj, "__dict__", None)
        if isinstance(attributes, dict) and len(attributes) <= _MAX_CONTAINER:
            for value in list(attributes.values()):
                self.push(value)
        return None


def static_check(obj, exercise):
    """Return ``(name of the forbidden object the answer reaches or None, the answer's code objects)``."""
    walk = _Walk(exercise)
    try:
        found = walk.run(obj)
    except Exception:  # noqa: BLE001 -- never let a strange object crash grading
        found = None
    return found, walk.student_codes


class RuntimeGuard:
    """Profile hook recording a call into forbidden code made on behalf of the answer.

    Use :meth:`wrap` on the answer (plain callables; classes are covered by their own code objects)
    and run the tests inside ``with guard:``. ``guard.violation`` then names the forbidden function
    reached, or is ``None``.
    """

    def __init__(self, exercise, student_codes=()):
        self.codes = forbidden_codes(exercise)
        self.student_codes = set(student_codes)
        self.depth = 0
        self.violation = None
        self._previous = None

    def wrap(self, obj):
        if isinstance(obj, type) or not callable(obj):
            return obj

        @functools.wraps(obj)
        def answer(*args, **kwargs):
            self.depth += 1
            try:
                return obj(*args, **kwargs)
            finally:
                self.depth -= 1

        return answer

    def _hook(self, frame, event, arg):
        if event == "call" and self.violation is None:
            name = self.codes.get(frame.f_code)
            if name is not None and (self.depth > 0 or self._answer_on_stack(frame.f_back)):
                self.violation = name
        if self._previous is not None:
            self._previous(frame, event, arg)

    def _answer_on_stack(self, frame):
        while frame is not None:
            if frame.f_code in self.student_codes:
                return True
            frame = frame.f_back
        return False

    def __enter__(self):
        self._previous = sys.getprofile()
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self._previous)
        return False
