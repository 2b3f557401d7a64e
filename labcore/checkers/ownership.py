"""Is it the student's own work? What a student's function or class *reaches*: the objects its
code names (globals, attributes of modules it names, imports inside it, closures, defaults,
decorated functions, partials, bound methods), the classes it builds on, and, recursively, the code
of every function or class of the student's own it reaches. A grade must mean the student wrote
the exercise, so reaching labcore's implementation of that exercise (``REFERENCES``) is the
mistake ``<exercise>.uses_reference``: "labcore's solution, not yours".

Judged on code objects, not text: a comment or a string that names ``decode_step`` is fine, a call
to ``labcore.decoding.decode_step`` through any alias is not. The model's own methods the exercise
is meant to call (``vqgan.encode``) and the helpers its text offers (``gumbel``) are allowed; a
method of a checker's own object that is the answer (``vqgan.encode_to_indices``,
``model.param_groups``) is caught at run time by ``Tripwire``.
"""

from __future__ import annotations

import builtins
import dis
import functools
import importlib
import inspect
import sys
import sysconfig
import types
from pathlib import Path

_LABCORE = str(Path(__file__).resolve().parents[1])
# where code is not the student's: labcore, installed packages, the standard library
_NOT_STUDENTS = (_LABCORE, *{str(Path(sysconfig.get_paths()[k]).resolve())
                              for k in ("stdlib", "platstdlib", "purelib", "platlib")})

# exercise -> dotted names of labcore's implementation of it (and what wraps that implementation)
REFERENCES: dict[str, tuple[str, ...]] = {
    "encode": ("labcore.checkers.tokens.reference_encode_to_z", "labcore.maskgit.MaskGit.encode_to_z",
               "labcore.vqgan.VQGAN.encode_to_indices"),
    "attention": ("labcore.attention.MultiHeadAttention", "torch.nn.MultiheadAttention",
                  "torch.nn.functional.multi_head_attention_forward", "labcore.checkers.attention.copy_into_torch_mha",
                  "labcore.checkers.attention_math.explicit_attention"),
    "gamma": ("labcore.schedules.gamma", "labcore.schedules.as_gamma", "labcore.schedules._SCHEDULE_FORMULAS",
              "labcore.decoding.DecodingSettings.gamma_fn"),
    "masking": ("labcore.checkers.masking.reference_mask_tokens", "labcore.checkers.masking.reference_masked_loss",
                "labcore.maskgit.mvtm_loss", "labcore.maskgit.MaskGit.mvtm_loss"),
    "loop": ("labcore.checkers.training.reference_configure_optimizers",
             "labcore.checkers.training.reference_train_one_epoch", "labcore.training.stage2.forward_backward",
             "labcore.training.stage2.optimizer_step", "labcore.training.stage2.train",
             "labcore.transformer.BidirectionalTransformer.param_groups", "labcore.maskgit.mvtm_loss"),
    "decode": ("labcore.decoding.decode_step", "labcore.decoding.decode", "labcore.maskgit.MaskGit.decode_tokens",
               "labcore.maskgit.MaskGit.inpaint", "labcore.decoding.masked_count_after_step",
               "labcore.decoding_variants"),
    "frechet": ("labcore.fid.frechet_distance", "labcore.fid.pytorch_fid_distance", "labcore.fid.trace_sqrt_product",
                "labcore.checkers.frechet.reference_frechet_distance",
                "pytorch_fid.fid_score.calculate_frechet_distance"),
}


def _resolve(dotted: str):
    """The object a dotted name stands for, or None when it cannot be imported here."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = inspect.getattr_static(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _unwrap(obj):
    """The function behind a property, staticmethod, classmethod, bound method or partial."""
    for _ in range(8):
        if isinstance(obj, property):
            obj = obj.fget
        elif isinstance(obj, (staticmethod, classmethod, types.MethodType)):
            obj = obj.__func__
        elif isinstance(obj, functools.partial):
            obj = obj.func
        else:
            return obj
    return obj


@functools.lru_cache(maxsize=None)
def _targets(exercise: str) -> tuple[tuple[object, str], ...]:
    return tuple((_unwrap(obj), name) for name in REFERENCES.get(exercise, ()) if (obj := _resolve(name)) is not None)


def _is_students(obj) -> bool:
    """Code a student wrote: not in labcore, not in an installed package, not built in."""
    code = None if isinstance(obj, type) else getattr(obj, "__code__", None)
    if not isinstance(code, types.CodeType):
        module = sys.modules.get(getattr(obj, "__module__", None) or "")
        file = getattr(module, "__file__", None)
        return isinstance(obj, type) and (file is None or _own_file(file))
    return _own_file(code.co_filename)


def _own_file(file: str) -> bool:
    if file.startswith("<frozen") or "site-packages" in file or "dist-packages" in file:
        return False
    return not str(Path(file).resolve()).startswith(_NOT_STUDENTS) if file.startswith("/") else True


def _codes(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _belongs(item, module: types.ModuleType) -> bool:
    """``item`` is that module, or a function or class defined in it (a target that is a whole module)."""
    if isinstance(item, types.ModuleType):
        return item.__name__ == module.__name__
    return callable(item) and getattr(item, "__module__", None) == module.__name__


def _named(obj, names: set[str]) -> list:
    """What a code's names reach from ``obj`` (a module or class): its attributes of those names."""
    found = []
    for name in names:
        try:
            found.append(inspect.getattr_static(obj, name))
        except (AttributeError, TypeError):
            pass
    return found


_GLOBAL_OPS = {"LOAD_GLOBAL", "LOAD_NAME"}
_ATTR_OPS = {"LOAD_ATTR", "LOAD_METHOD", "IMPORT_FROM", "LOAD_SUPER_ATTR"}


def _names_of(code: types.CodeType) -> tuple[set[str], set[str], set[str]]:
    """(globals, attribute names, imported modules) that a code object and the code inside it name:
    ``vqgan.encode`` names the attribute ``encode``, never the global ``encode``."""
    globals_, attrs, imports = set(), set(), set()
    for c in _codes(code):
        for ins in dis.get_instructions(c):
            if ins.opname in _GLOBAL_OPS:
                globals_.add(ins.argval)
            elif ins.opname in _ATTR_OPS:
                attrs.add(ins.argval)
            elif ins.opname == "IMPORT_NAME":
                imports.add(ins.argval)
    return globals_, attrs, imports


def _reached_by_function(fn, names_seen: set[str]) -> list:
    """The objects a student's function names: its globals (or builtins), the modules it imports,
    its closures and defaults. The attribute names in its code go into ``names_seen``: they are
    looked up on the modules and classes reached (``_named``)."""
    fn = inspect.unwrap(fn)                                      # @torch.no_grad() and other decorators
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):
        return []
    globals_, attrs, imports = _names_of(code)
    names_seen |= attrs
    scope = getattr(fn, "__globals__", {})
    reached = [scope[n] if n in scope else getattr(builtins, n, None) for n in globals_]
    for module in imports:                                       # import labcore.decoding: labcore and labcore.decoding
        parts = module.split(".")
        reached += [sys.modules.get(".".join(parts[:i])) for i in range(1, len(parts) + 1)]
    reached += [c.cell_contents for c in (fn.__closure__ or ()) if _has_contents(c)]
    reached += list(fn.__defaults__ or ()) + list((fn.__kwdefaults__ or {}).values())
    return [r for r in reached if r is not None]


def _has_contents(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def reaches(obj, exercise: str) -> list[str]:
    """The dotted names of labcore's implementation of ``exercise`` that ``obj`` (the student's
    function, class, instance or a container of them) reaches; [] when none. Never raises."""
    try:
        return _reaches(obj, exercise)
    except Exception:  # noqa: BLE001 - an odd object must not crash a checker; it is then judged by its behaviour
        return []


def _reaches(obj, exercise: str) -> list[str]:
    """One walk from ``obj``; again while the student's code names new attributes (the modules and
    classes already reached are then searched for them too)."""
    names: set[str] = set()
    for _ in range(6):
        known = len(names)
        hit = _walk(obj, _targets(exercise), names)
        if len(names) == known:
            return hit
    return hit


def _walk(obj, targets, names: set[str]) -> list[str]:
    hit: list[str] = []
    seen: set[int] = set()
    todo = [obj]
    while todo and len(seen) < 20000:
        item = _unwrap(todo.pop())
        if id(item) in seen:
            continue
        seen.add(id(item))
        for target, name in targets:
            if item is target or (isinstance(item, type) and isinstance(target, type) and issubclass(item, target)) \
                    or (isinstance(target, types.ModuleType) and _belongs(item, target)):
                hit.append(name)
        if isinstance(item, types.ModuleType) or (isinstance(item, type) and not _is_students(item)):
            todo += _named(item, names)        # labcore.decoding.decode_step, attention.MultiHeadAttention.forward
        elif isinstance(item, type):           # the student's class: its bases and its own methods
            todo += list(item.__mro__[1:]) + list(vars(item).values())
        elif callable(item) and _is_students(inspect.unwrap(item)):
            todo += _reached_by_function(item, names)
        elif isinstance(item, (list, tuple, set, frozenset)):
            todo += list(item)
        elif isinstance(item, dict):
            todo += list(item.values())
        elif not isinstance(item, (int, float, str, bytes, bool, type(None))) and _is_students(type(item)):
            todo.append(type(item))            # an instance of the student's class, a callable object
    return sorted(set(hit))


def _functions_of(target) -> list:
    """The Python functions that make up a target: itself, a class's methods, a module's functions
    and classes' methods, a dict's values."""
    if isinstance(target, types.ModuleType):
        own = [v for v in vars(target).values() if getattr(v, "__module__", None) == target.__name__]
        return [f for v in own for f in _functions_of(v)]
    if isinstance(target, type):
        return [_unwrap(v) for v in vars(target).values()]
    if isinstance(target, dict):
        return list(target.values())
    return [target]


@functools.lru_cache(maxsize=None)
def reference_codes(exercise: str) -> dict:
    """code object -> dotted name, for every code object of labcore's implementation of ``exercise``
    (nested functions included): what ``Watch`` looks for."""
    found = {}
    for target, name in _targets(exercise):
        for fn in _functions_of(target):
            fn = inspect.unwrap(fn) if callable(fn) and hasattr(fn, "__wrapped__") else fn
            code = getattr(fn, "__code__", None)
            if isinstance(code, types.CodeType):
                found.update({c: name for c in _codes(code) if c not in found})
    return found


class Watch:
    """``with Watch("decode") as watch: <run the student's code>``; then ``watch.ran`` names the parts
    of labcore's implementation of the exercise that ran, however the code reached them (a name
    built at run time, getattr, exec): the run-time half of ``reaches``. ``Watch(None)`` watches nothing."""

    def __init__(self, exercise: str | None):
        self.codes = reference_codes(exercise) if exercise else {}
        self.ran: list[str] = []

    def _profile(self, frame, event, arg):
        if event == "call" and frame.f_code in self.codes:
            self.ran.append(self.codes[frame.f_code])

    def __enter__(self):
        self._previous = sys.getprofile()
        if self.codes:
            sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self._previous)
        return False


class Tripwire:
    """Record calls of methods of a checker's own object that are labcore's answer to the exercise
    (the VQGAN's ``encode_to_indices``, the transformer's ``param_groups``): patched on that one
    instance, still working, so the student's code runs as before; ``tripped`` names what it called."""

    def __init__(self, obj, *attrs: str):
        self.tripped: list[str] = []
        for attr in attrs:
            original = getattr(obj, attr)

            def spy(*args, _original=original, _name=f"{type(obj).__name__}.{attr}", **kwargs):
                self.tripped.append(_name)
                return _original(*args, **kwargs)

            setattr(obj, attr, spy)
