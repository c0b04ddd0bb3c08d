"""Messages for fuzzing, built from ROS 2 message definitions: hypothesis strategies and targeted edge cases.

Everything here is read off a generated message class (``SLOT_TYPES``, the rosidl definition of each field), so
any msg, srv request or action goal works without writing a generator for it. No rclpy: only message classes.

- :func:`message_strategy` draws whole messages: numbers including NaN, +-Inf and the type's extremes, strings
  with control characters and huge ones, sequences of any length (wrong for whatever the receiver expects),
  nested messages, stamps in the past, present and future.
- :func:`edge_cases` lists the targeted cases a receiver must survive, each with a label for reports: the empty
  message, all NaN, all Inf, all extremes, huge, control characters, stamps far in the future or the past, and
  per-type ones (images of 1x1, a wrong encoding, data that does not match the size; joint states whose lists
  disagree).
- :func:`describe` turns a message into a short, exact-enough text for a report (long sequences summarised).

``now`` (a callable returning seconds on the receivers' clock, sim time under use_sim_time) is read when a
message is drawn, so "fresh" stamps are fresh when they are sent.
"""
from __future__ import annotations

import array
import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import rosidl_parser.definition as idl
from hypothesis import strategies as st

Now = Callable[[], float]

# Sizes: hypothesis lists stay small (fast to draw and send); huge values come as ready-made arrays.
MAX_LIST = 16
HUGE_LIST = 100_000
HUGE_TEXT = 100_000
# Offsets (s) of generated stamps from now: fresh, slightly stale, far past and far future.
STAMP_OFFSETS = (0.0, -0.05, -0.6, -5.0, -3600.0, 0.5, 10.0, 1e6)
# Text that has broken receivers: terminal escapes, NUL-free control characters, line breaks, bidi overrides.
CONTROL_TEXT = "go\x1b[2J\x07\x08\r\nto\tthe\x0b\x0c\x7f\u202eblock\u0085"

_INT_BITS = {"int8": (True, 8), "uint8": (False, 8), "int16": (True, 16), "uint16": (False, 16),
             "int32": (True, 32), "uint32": (False, 32), "int64": (True, 64), "uint64": (False, 64),
             "short": (True, 16), "unsigned short": (False, 16), "long": (True, 32), "unsigned long": (False, 32),
             "long long": (True, 64), "unsigned long long": (False, 64)}
_TYPECODES = {"float": "f", "double": "d", "long double": "d", "int8": "b", "uint8": "B", "int16": "h",
              "uint16": "H", "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q", "short": "h",
              "unsigned short": "H", "long": "i", "unsigned long": "I", "long long": "q", "unsigned long long": "Q"}
FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class Case:
    """One targeted input: ``label`` names it in reports; ``bad`` says a careful receiver must reject it."""
    label: str
    message: Any
    bad: bool = False


# ---- definitions -----------------------------------------------------------------------------------------------

def message_class(t: idl.NamespacedType) -> type:
    """The Python class of a nested message type, e.g. std_msgs/msg/Header."""
    return getattr(importlib.import_module(".".join(t.namespaces)), t.name)


def fields(msg_cls: type) -> list[tuple[str, idl.AbstractType]]:
    """(field name, rosidl type) of every field, in definition order."""
    return list(zip(msg_cls.get_fields_and_field_types(), msg_cls.SLOT_TYPES))


def type_name(msg_cls: type) -> str:
    """'pkg/msg/Name' (or srv/action) from the class's module, e.g. geometry_msgs/msg/Twist."""
    parts = msg_cls.__module__.split(".")
    return f"{parts[0]}/{parts[1]}/{msg_cls.__name__}"


def _is_time(t) -> bool:
    return isinstance(t, idl.NamespacedType) and t.namespaces == ["builtin_interfaces", "msg"] and t.name == "Time"


def _int_range(typename: str) -> tuple[int, int]:
    signed, bits = _INT_BITS[typename]
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


def to_time(seconds: float, time_cls: type) -> Any:
    """builtin_interfaces/Time for ``seconds`` (clamped to what the message can carry)."""
    seconds = min(max(seconds, -(2 ** 31)), 2 ** 31 - 1)
    sec = math.floor(seconds)
    return time_cls(sec=int(sec), nanosec=min(int((seconds - sec) * 1e9), 999_999_999))


# ---- hypothesis strategies --------------------------------------------------------------------------------------

def _basic(typename: str) -> st.SearchStrategy:
    if typename in ("float", "double", "long double"):
        width = 32 if typename == "float" else 64
        big = FLOAT32_MAX if width == 32 else 1.7976931348623157e308
        return st.one_of(st.floats(width=width), st.sampled_from([math.nan, math.inf, -math.inf, big, -big, 0.0]))
    if typename in _INT_BITS:
        lo, hi = _int_range(typename)
        return st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0]))
    if typename == "boolean":
        return st.booleans()
    if typename == "octet":
        return st.binary(min_size=1, max_size=1)
    if typename in ("char", "wchar"):
        return st.characters(max_codepoint=255 if typename == "char" else 0xFFFF, exclude_categories=("Cs",))
    raise TypeError(f"no strategy for the basic type '{typename}'")


def _text(maximum: int | None) -> st.SearchStrategy:
    # Surrogates cannot be encoded as UTF-8 (the publisher itself would refuse them); NUL ends a C string.
    chars = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
    small = st.text(chars, max_size=min(MAX_LIST * 4, maximum if maximum is not None else MAX_LIST * 4))
    if maximum is not None:
        return small
    # Built when drawn (a strategy holding a 100 kB string would carry it in its repr).
    huge = st.sampled_from([1, 1000]).map(lambda k: CONTROL_TEXT * k) | st.just(HUGE_TEXT).map(lambda n: "x" * n)
    return st.one_of(small, huge)


def _huge_array(value_type) -> st.SearchStrategy | None:
    if isinstance(value_type, idl.BasicType) and value_type.typename in _TYPECODES:
        code = _TYPECODES[value_type.typename]
        return st.builds(lambda v: array.array(code, [v]) * HUGE_LIST, _basic(value_type.typename))
    return None


def field_strategy(t: idl.AbstractType, now: Now) -> st.SearchStrategy:
    """A strategy for one field of rosidl type ``t``."""
    if _is_time(t):
        time_cls = message_class(t)
        fresh = st.builds(lambda off: to_time(now() + off, time_cls), st.sampled_from(STAMP_OFFSETS))
        raw = st.builds(time_cls, sec=st.integers(-(2 ** 31), 2 ** 31 - 1), nanosec=st.integers(0, 2 ** 32 - 1))
        return st.one_of(fresh, raw)
    if isinstance(t, idl.NamespacedType):
        return message_strategy(message_class(t), now)
    if isinstance(t, idl.BasicType):
        return _basic(t.typename)
    if isinstance(t, (idl.BoundedString, idl.BoundedWString)):
        return _text(t.maximum_size)
    if isinstance(t, (idl.UnboundedString, idl.UnboundedWString)):
        return _text(None)
    if isinstance(t, idl.Array):
        return st.lists(field_strategy(t.value_type, now), min_size=t.size, max_size=t.size)
    if isinstance(t, idl.BoundedSequence):
        return st.lists(field_strategy(t.value_type, now), max_size=min(t.maximum_size, MAX_LIST))
    if isinstance(t, idl.UnboundedSequence):
        small = st.lists(field_strategy(t.value_type, now), max_size=MAX_LIST)
        huge = _huge_array(t.value_type)
        return small if huge is None else st.one_of(small, small, small, huge)
    raise TypeError(f"no strategy for the field type {t!r}")


def message_strategy(msg_cls: type, now: Now = lambda: 0.0) -> st.SearchStrategy:
    """Whole messages of ``msg_cls`` (a msg, a service request or an action goal) with every field drawn."""
    return st.builds(msg_cls, **{name: field_strategy(t, now) for name, t in fields(msg_cls)})


# ---- targeted edge cases ----------------------------------------------------------------------------------------

def _fill(msg_cls: type, leaf: Callable[[idl.AbstractType], Any], stamp: Callable[[type], Any]) -> Any:
    """A message with every leaf field set by ``leaf(type)`` (None keeps the default) and every stamp by
    ``stamp(time_cls)``; sequences keep their length (a fixed array) or get one element."""
    values = {}
    for name, t in fields(msg_cls):
        value = _fill_field(t, leaf, stamp)
        if value is not None:
            values[name] = value
    return msg_cls(**values)


def _fill_field(t, leaf, stamp):
    if _is_time(t):
        return stamp(message_class(t))
    if isinstance(t, idl.NamespacedType):
        return _fill(message_class(t), leaf, stamp)
    if isinstance(t, idl.AbstractNestedType):
        item = _fill_field(t.value_type, leaf, stamp)
        if item is None:
            return None
        if isinstance(t, idl.Array):
            return [item] * t.size
        return [item] if not isinstance(item, array.array) else item
    return leaf(t)


def _floats(value: float) -> Callable:
    def leaf(t):
        if isinstance(t, idl.BasicType) and t.typename in ("float", "double", "long double"):
            return float(value if t.typename != "float" or not math.isfinite(value)
                         else math.copysign(min(abs(value), FLOAT32_MAX), value))
        return None
    return leaf


def _extremes(t):
    if isinstance(t, idl.BasicType):
        if t.typename in _INT_BITS:
            return _int_range(t.typename)[1]
        if t.typename in ("float", "double", "long double"):
            return FLOAT32_MAX if t.typename == "float" else 1.7976931348623157e308
    return None


def _huge(t):
    if isinstance(t, (idl.UnboundedString, idl.UnboundedWString)):
        return "x" * HUGE_TEXT
    return None


def _huge_sequences(msg_cls: type) -> Any:
    """Every unbounded numeric sequence (at any depth) at HUGE_LIST elements, every unbounded string huge."""
    values = {}
    for name, t in fields(msg_cls):
        if isinstance(t, idl.UnboundedSequence) and isinstance(t.value_type, idl.BasicType) \
                and t.value_type.typename in _TYPECODES:
            values[name] = array.array(_TYPECODES[t.value_type.typename], [1]) * HUGE_LIST
        elif isinstance(t, (idl.UnboundedString, idl.UnboundedWString)):
            values[name] = "x" * HUGE_TEXT
        elif isinstance(t, idl.NamespacedType) and not _is_time(t):
            values[name] = _huge_sequences(message_class(t))
    return msg_cls(**values)


def _has(msg_cls: type, predicate: Callable[[idl.AbstractType], bool]) -> bool:
    for _, t in fields(msg_cls):
        inner = t.value_type if isinstance(t, idl.AbstractNestedType) else t
        if predicate(inner) or (isinstance(inner, idl.NamespacedType) and not _is_time(inner)
                                and _has(message_class(inner), predicate)):
            return True
    return False


def _is_float(t) -> bool:
    return isinstance(t, idl.BasicType) and t.typename in ("float", "double", "long double")


def _is_text(t) -> bool:
    return isinstance(t, idl.AbstractGenericString)


def edge_cases(msg_cls: type, now: Now = lambda: 0.0) -> Iterator[Case]:
    """Targeted inputs for ``msg_cls``, generic ones first, then those specific to its type.

    ``bad`` marks cases every receiver must reject (non-finite numbers, images whose bytes do not match their
    size): the harness expects each of these to be counted as a reject.
    """
    fresh = lambda time_cls: to_time(now(), time_cls)  # noqa: E731
    keep = lambda t: None  # noqa: E731
    yield Case("empty", msg_cls())
    if _has(msg_cls, _is_float):
        yield Case("nan", _fill(msg_cls, _floats(math.nan), fresh), bad=True)
        yield Case("+inf", _fill(msg_cls, _floats(math.inf), fresh), bad=True)
        yield Case("-inf", _fill(msg_cls, _floats(-math.inf), fresh), bad=True)
    yield Case("extremes", _fill(msg_cls, _extremes, fresh))
    yield Case("huge", _huge_sequences(msg_cls))
    if _has(msg_cls, _is_text):
        yield Case("control_characters", _fill(msg_cls, lambda t: CONTROL_TEXT if _is_text(t) else None, fresh))
        yield Case("huge_text", _fill(msg_cls, _huge, fresh))
    if _has(msg_cls, _is_time):
        yield Case("stamp_future_1e6s", _fill(msg_cls, keep, lambda c: to_time(now() + 1e6, c)))
        yield Case("stamp_past_1h", _fill(msg_cls, keep, lambda c: to_time(now() - 3600.0, c)))
        yield Case("stamp_max", _fill(msg_cls, keep, lambda c: c(sec=2 ** 31 - 1, nanosec=999_999_999)))
        yield Case("stamp_negative", _fill(msg_cls, keep, lambda c: c(sec=-(2 ** 31), nanosec=0)))
    special = _SPECIAL.get(type_name(msg_cls))
    if special is not None:
        yield from special(msg_cls, now)


def _image_cases(cls, now) -> Iterator[Case]:
    def image(h, w, encoding, data, step=None):
        msg = cls(height=h, width=w, encoding=encoding, step=w * 3 if step is None else step,
                  data=array.array("B", data))
        msg.header.stamp = to_time(now(), type(msg.header.stamp))
        return msg
    yield Case("image_1x1", image(1, 1, "rgb8", b"\x80" * 3))
    yield Case("image_wrong_encoding", image(96, 96, "nonsense_encoding", bytes(96 * 96 * 3)), bad=True)
    yield Case("image_16bit_encoding", image(96, 96, "16UC1", bytes(96 * 96 * 2), step=96 * 2))
    yield Case("image_data_too_short", image(96, 96, "rgb8", bytes(10)), bad=True)
    yield Case("image_data_too_long", image(96, 96, "rgb8", bytes(96 * 96 * 3 + 7)), bad=True)
    yield Case("image_step_too_small", image(96, 96, "rgb8", bytes(96 * 96 * 3), step=5), bad=True)
    yield Case("image_zero_size", image(0, 0, "rgb8", b""), bad=True)
    yield Case("image_huge_dims", image(2 ** 31, 2 ** 31, "rgb8", bytes(12)), bad=True)
    yield Case("image_vga", image(480, 640, "rgb8", bytes(480 * 640 * 3)))


def _joint_state_cases(cls, now) -> Iterator[Case]:
    def joints(names, position, velocity=(), effort=()):
        msg = cls(name=list(names), position=list(position), velocity=list(velocity), effort=list(effort))
        msg.header.stamp = to_time(now(), type(msg.header.stamp))
        return msg
    gantry = ["gantry_x", "gantry_y"]
    yield Case("joints_lengths_disagree", joints(gantry, [0.0], [0.0, 0.0, 0.0]), bad=True)
    yield Case("joints_nan_position", joints(gantry, [math.nan, 0.0], [0.0, 0.0]), bad=True)
    yield Case("joints_inf_velocity", joints(gantry, [0.0, 0.0], [math.inf, 0.0]), bad=True)
    yield Case("joints_unknown_names", joints(["nope", "\x1b[2J"], [0.0, 0.0], [0.0, 0.0]), bad=True)
    yield Case("joints_duplicate_names", joints(gantry * 2, [0.0] * 4, [0.0] * 4))
    yield Case("joints_names_only", joints(gantry, []), bad=True)


def _embedding_cases(cls, now) -> Iterator[Case]:
    # The bundled text encoder's id: a policy trained with it takes these as its own encoder's output.
    enc = "sentence-transformers/all-MiniLM-L6-v2"
    yield Case("embedding_empty", cls(text="", encoder_id=enc, embedding=[]), bad=True)
    yield Case("embedding_383", cls(text="go", encoder_id=enc, embedding=[0.0] * 383), bad=True)
    yield Case("embedding_nan", cls(text="go", encoder_id=enc, embedding=[math.nan] * 384), bad=True)
    yield Case("embedding_wrong_encoder", cls(text="go", encoder_id="someone-else", embedding=[0.0] * 384),
               bad=True)


def _sim_state_cases(cls, now) -> Iterator[Case]:
    for n in (0, 1, 3):
        yield Case(f"sim_state_privileged_{n}", cls(env_id="vla_sim/Tabletop-v0", privileged=[0.5] * n), bad=True)
    yield Case("sim_state_privileged_nan", cls(env_id="vla_sim/Tabletop-v0", privileged=[math.nan] * 16), bad=True)


_SPECIAL = {
    "sensor_msgs/msg/Image": _image_cases,
    "sensor_msgs/msg/JointState": _joint_state_cases,
    "vla_interfaces/msg/InstructionEmbedding": _embedding_cases,
    "vla_interfaces/msg/SimState": _sim_state_cases,
}


# ---- reporting --------------------------------------------------------------------------------------------------

def describe(msg: Any, limit: int = 400) -> str:
    """A short text of ``msg``: every field, sequences longer than 8 and strings longer than 60 summarised."""
    text = _describe(msg)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(value: Any) -> str:
    if hasattr(value, "get_fields_and_field_types"):
        inner = ", ".join(f"{name}={_describe(getattr(value, name))}" for name in value.get_fields_and_field_types())
        return f"{type(value).__name__}({inner})"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else f"<str len {len(value)} {value[:20]!r}...>"
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value)) if len(value) <= 8 else f"<bytes len {len(value)}>"
    if hasattr(value, "__len__") and not isinstance(value, dict):
        items = list(value[:8]) if len(value) > 8 else list(value)
        shown = ", ".join(_describe(v) for v in items)
        return f"[{shown}]" if len(value) <= 8 else f"<{len(value)} items [{shown}, ...]>"
    if isinstance(value, float):
        return repr(float(value))
    return repr(value.item() if hasattr(value, "item") else value)
