"""The codec: attrs events and values in and out of JSON-compatible data through cattrs.

An event class has a stable type name (``module:QualName`` by default, or the one given to
``@event_type``) and a schema version. Stored data of an older schema version is upcast dict to
dict before cattrs structures it. Names resolve, in order, through the codec's own registrations,
the process-wide index the decorator fills, and an import of ``module:QualName`` (after the
codec's ``alias_module`` renames); every resolution is cached, so decoding an event is a dict
lookup and a precompiled cattrs hook. A class of the running script is named after the script's
file or ``-m`` module rather than ``__main__`` when it has one (see ``_script``).
"""

from __future__ import annotations

import collections
import copy
import importlib
import itertools
import operator
import types
import typing
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from collections.abc import Set as AbstractSet
from typing import Any, Final, TypeAlias, TypeVar, get_args, get_origin

import attrs
import msgspec
from cattrs.preconf.msgspec import MsgspecJsonConverter

from . import _validate as check
from ._errors import DecodeError, InvalidArgument, SerializationError
from ._model import NewEvent, RecordedEvent, Typed, encoded_new_event, stored_data
from ._script import MAIN, attribute, double_import, main_module_as, portable_module
from ._values import TEXT_TYPES, ValueCodec
from ._values import describe as _describe

__all__ = ["Codec", "EventTypeInfo", "event_type"]

SCHEMA_VERSION: Final = "schema_version"
"""The metadata key that holds an event's schema version when it is not 1."""

Upcaster: TypeAlias = Callable[[dict[str, Any]], dict[str, Any]]
T = TypeVar("T")

# (class, schema version, structure hook, upcasters: chain[k - 1] takes version k to k + 1)
_Decoder: TypeAlias = tuple[type, int, Callable[[Any, Any], Any], tuple[Upcaster | None, ...]]
# (type name, schema version, unstructure hook)
_Encoder: TypeAlias = tuple[str, int, Callable[[Any], Any]]


@attrs.frozen
class EventTypeInfo:
    """The stable type name and schema version of an event class (its ``__event_type__``)."""

    name: str
    version: int = 1
    aliases: tuple[str, ...] = ()
    """Older names that still decode to the class."""
    upcasters: tuple[tuple[int, Upcaster], ...] = ()
    """``(k, function)`` pairs, sorted: the function turns version ``k`` data into ``k + 1``."""


_INDEX: dict[str, type] = {}
"""Every name and alias given by ``@event_type`` in this process, to its class."""


def default_type_name(cls: type) -> str:
    """The importable ``module:QualName`` of ``cls``; a class of a script run as ``python
    app.py`` (module ``__main__``) is named after the file, ``app:QualName``."""
    return f"{portable_module(cls.__module__)}:{cls.__qualname__}"


def _type_info(cls: object, name: str | None, version: object, aliases: object,
               upcasters: object, *, what: str) -> EventTypeInfo:
    """Check the arguments of ``@event_type`` / ``Codec.register`` and build the record."""
    if not isinstance(cls, type) or not attrs.has(cls):
        raise InvalidArgument(
            f"{what} needs an attrs class, got {cls!r}; decorate the class with @attrs.frozen "
            "first (put the event type decorator above it)"
        )
    if name is None:
        if "<locals>" in cls.__qualname__:
            raise InvalidArgument(
                f"{cls.__qualname__} is defined inside a function, so its default name "
                "cannot be imported; give it an explicit name"
            )
        name = default_type_name(cls)
        if name.startswith(f"{MAIN}:"):
            warnings.warn(_unportable(cls, name), UserWarning, stacklevel=3)
    elif not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"{what} name must be a non-empty string, got {name!r}")
    check.type_name(name, "{} name", what)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidArgument(f"{what} version must be an int >= 1, got {version!r}")
    if isinstance(aliases, str) or not isinstance(aliases, Iterable):
        raise InvalidArgument(
            f"{what} aliases must be a collection of names, got {aliases!r}; "
            "write aliases=[\"old name\"] for one alias"
        )
    alias_list: list[str] = []
    for alias in aliases:
        if not isinstance(alias, str) or not alias.strip():
            raise InvalidArgument(f"{what} aliases must be non-empty strings, got {alias!r}")
        check.type_name(alias, "{} alias", what)
        if alias != name and alias not in alias_list:
            alias_list.append(alias)
    if upcasters is None:
        upcasters = {}
    if not isinstance(upcasters, Mapping):
        raise InvalidArgument(
            f"{what} upcasters must map a schema version to a function, got {upcasters!r}"
        )
    pairs: list[tuple[int, Upcaster]] = []
    for key, function in upcasters.items():
        if isinstance(key, bool) or not isinstance(key, int) or not 1 <= key < version:
            raise InvalidArgument(
                f"{what} upcasters keys must be schema versions 1..{version - 1} "
                f"(upcasters[k] turns version k data into k + 1), got {key!r}"
            )
        if not callable(function):
            raise InvalidArgument(f"{what} upcasters[{key}] must be callable, got {function!r}")
        pairs.append((key, function))
    return EventTypeInfo(name, version, tuple(alias_list), tuple(sorted(pairs)))


def _same_class(a: type, b: type) -> bool:
    """Whether ``b`` is ``a`` or a redefinition of it (a reloaded module)."""
    return a is b or (a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__)


def event_type(name: str | None = None, *, version: int = 1, aliases: Iterable[str] = (),
               upcasters: Mapping[int, Upcaster] | None = None) -> Callable[[type[T]], type[T]]:
    """Give an attrs event class a stable type name and a schema version.

    Put it above ``@attrs.frozen``. The name is stored with every event, so it must not change
    once events are written; the class itself may be renamed or moved if its old names are kept
    in ``aliases``. Every name is entered in a process-wide index, so an event decodes once the
    module that defines its class has been imported.

    Args:
        name: The stable type name; defaults to the class's ``module:QualName``.
        version: The schema version of the class's current fields, from 1.
        aliases: Older names (such as a former ``module:QualName``) that decode to this class.
        upcasters: ``upcasters[k]`` turns the data dict of schema version ``k`` into version
            ``k + 1``; keys are 1 to ``version - 1``, and a missing key means the data did not
            change shape between those versions.

    Returns:
        The class decorator, which returns the class itself.

    Raises:
        InvalidArgument: The class is not an attrs class, an argument is out of range, or a name
            already belongs to another class.
    """
    if isinstance(name, type):
        raise InvalidArgument(
            f"write @event_type() with parentheses (or @event_type(\"name\")) above "
            f"{name.__qualname__}"
        )

    def decorate(cls: type[T]) -> type[T]:
        info = _type_info(cls, name, version, aliases, upcasters, what="@event_type")
        for taken in (info.name, *info.aliases):
            owner = _INDEX.get(taken)
            if owner is not None and not _same_class(owner, cls):
                twice = double_import(cls.__module__, cls.__qualname__, cls)
                if twice is not None:
                    raise InvalidArgument(twice)
                raise InvalidArgument(
                    f"@event_type name {taken!r} of {default_type_name(cls)} already belongs to "
                    f"{default_type_name(owner)}; choose another name"
                )
        for taken, owner in list(_INDEX.items()):
            if _same_class(owner, cls):
                del _INDEX[taken]
        for taken in (info.name, *info.aliases):
            _INDEX[taken] = cls
        setattr(cls, "__event_type__", info)  # noqa: B010 - mypy does not know the attribute
        return cls

    return decorate


def _import_name(name: str) -> Any:
    """The object ``module:QualName`` names, or None; never calls what it finds.

    The running script's own name (``app`` for ``python app.py``) is looked up in ``__main__``
    unless the file was imported under that name too: it is not run a second time.
    """
    module_name, sep, qualname = name.partition(":")
    if not sep or not _is_dotted(module_name) or not _is_dotted(qualname):
        return None
    found: Any = main_module_as(module_name)
    if found is None:
        try:
            found = importlib.import_module(module_name)
        except ImportError:
            return None
    return attribute(found, qualname)


def _is_dotted(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def _unportable(cls: type, name: str) -> str:
    return (
        f"{cls.__qualname__} is stored as {name!r}: it is defined in a __main__ module with no "
        "importable name (an interactive session, python -c, or a file whose name is not a "
        "module name), so only this program can decode its events; define it in a module, or "
        "give it a name with @event_type(\"...\")"
    )


# -- the converter --------------------------------------------------------------------------------


class _Converter(MsgspecJsonConverter):
    """cattrs' msgspec converter that notes when a structure hook is registered on it.

    A codec decodes an event of a plain class (``typed_decoder``) with msgspec alone, which
    gives what cattrs would only while cattrs runs no hook of the user's.
    """

    customized = False
    """Whether a structure hook was registered since ``make_converter`` returned it."""

    def register_structure_hook(self, *args: Any, **kwargs: Any) -> Any:
        self.customized = True
        return super().register_structure_hook(*args, **kwargs)

    def register_structure_hook_func(self, *args: Any, **kwargs: Any) -> Any:
        self.customized = True
        return super().register_structure_hook_func(*args, **kwargs)

    def register_structure_hook_factory(self, *args: Any, **kwargs: Any) -> Any:
        self.customized = True
        return super().register_structure_hook_factory(*args, **kwargs)


def make_converter() -> MsgspecJsonConverter:
    """A fresh cattrs converter set up for JSON, as each ``Codec`` gets one.

    It is cattrs' preconfigured msgspec converter class (``dumps`` and ``loads`` work), with
    this codec's own hooks rather than ``cattrs.preconf.msgspec.configure_converter``: that one
    leaves datetimes, enums and attrs instances for msgspec to write, so an event's data would no
    longer be the plain JSON data the store gives back, and it changes the stored forms (RFC
    3339 datetimes, dict keys made str without the check for colliding keys).
    """
    converter = _Converter(unstruct_collection_overrides={AbstractSet: list, tuple: list})
    for kind, (_, to_text, from_text) in TEXT_TYPES.items():
        converter.register_unstructure_hook(kind, to_text)
        converter.register_structure_hook(kind, from_text)
    converter.register_unstructure_hook_factory(_int_keyed, lambda cls: _str_keys_for(
        converter.gen_unstructure_mapping(cls, key_handler=_key_text)))
    converter.register_unstructure_hook_func(_self_encoding, _encode_itself)
    converter.register_structure_hook_func(_self_encoding, _decode_itself)
    converter.customized = False
    return converter


def _self_encoding(cls: Any) -> bool:
    """Whether ``cls`` encodes itself: ``__codec_encode__()`` gives its JSON-compatible form,
    ``cls.__codec_decode__(data)`` builds it back (an ``actors.ActorRef`` does)."""
    return isinstance(cls, type) and hasattr(cls, "__codec_decode__")


def _encode_itself(obj: Any) -> Any:
    return obj.__codec_encode__()


def _decode_itself(data: Any, cls: Any) -> Any:
    return cls.__codec_decode__(data)


_SCALARS: Final = frozenset({int, float, str, bool})


def _plain_type(kind: Any) -> bool:
    """Whether msgspec decodes a field of type ``kind`` exactly as cattrs does, or refuses.

    An int, float, str or bool, or one of them or None: msgspec accepts only JSON of that type
    (cattrs would also coerce, say, ``"5"`` to an int; such data then goes through cattrs).
    """
    if kind in _SCALARS:
        return True
    if get_origin(kind) in (typing.Union, types.UnionType):
        args = get_args(kind)
        return len(args) == 2 and type(None) in args and all(
            arg in _SCALARS for arg in args if arg is not type(None))
    return False


def typed_decoder(cls: type,
                  converter: MsgspecJsonConverter) -> Callable[[str | bytes], Any] | None:
    """msgspec's decoder of JSON text straight into ``cls``, where it gives what cattrs would.

    Only for a class whose attrs fields all take a plain type (``_plain_type``) through the
    generated ``__init__``, without converters, validators, aliases or a pre-init hook, and while
    ``converter`` holds no structure hook of the user's nor forbids extra keys: msgspec then
    builds the same instance cattrs would, or refuses the data (which cattrs then decodes).
    """
    if (getattr(converter, "customized", True) or getattr(converter, "forbid_extra_keys", True)
            or "__attrs_init__" in cls.__dict__ or hasattr(cls, "__attrs_pre_init__")):
        return None
    try:
        fields = attrs.fields(attrs.resolve_types(cls))
    except Exception:  # an annotation that does not resolve: cattrs will say so
        return None
    if not all(field.init and field.converter is None and field.validator is None
               and field.alias == field.name and _plain_type(field.type) for field in fields):
        return None
    try:
        return msgspec.json.Decoder(cls).decode
    except (TypeError, ValueError):  # a type msgspec does not take after all
        return None


class ArrayDecoder:
    """Decodes stored positional data (a JSON array of the values of a plain class's init fields,
    in order) into the class: one text (``decode``), or a page of them (``decode_many``).

    msgspec decodes the array into a typed tuple, or refuses it as it would refuse the object. A
    slotted class without ``__attrs_post_init__`` is built as msgspec builds one from an object:
    its slots set, no ``__init__`` call; any other class is called with the values.
    """

    __slots__ = ("cls", "decode", "fields", "keys", "setters", "values")

    def __init__(self, cls: type, keys: tuple[str, ...],
                 values: Callable[[str | bytes], tuple[Any, ...]]) -> None:
        self.cls = cls
        self.keys = keys
        """The init fields' names, in order."""
        self.fields = check.json_text(list(keys))
        """The ``fields`` text a store writes for data of these keys."""
        self.values = values
        slots: list[Any] = [getattr(cls, key, None) for key in keys]
        self.setters: tuple[Callable[[Any, Any], None], ...] | None = None
        if not hasattr(cls, "__attrs_post_init__") and all(
                isinstance(slot, types.MemberDescriptorType) for slot in slots):
            self.setters = tuple(slot.__set__ for slot in slots)
        self.decode: Callable[[str | bytes], Any] = self._decode_one

    def _decode_one(self, text: str | bytes) -> Any:
        values = self.values(text)
        setters = self.setters
        if setters is None:
            return self.cls(*values)
        event: Any = object.__new__(self.cls)
        for setter, value in zip(setters, values, strict=True):
            setter(event, value)
        return event

    def decode_many(self, texts: Iterable[str | bytes]) -> list[Any]:
        """The instance of each text, built by C loops (``map``), not a Python call per text.

        Raises:
            msgspec.DecodeError: a text is not an array of values of the fields' types.
        """
        values = list(map(self.values, texts))
        setters = self.setters
        if setters is None:
            return list(itertools.starmap(self.cls, values))
        events: list[Any] = list(map(object.__new__, itertools.repeat(self.cls, len(values))))
        for n, setter in enumerate(setters):
            collections.deque(map(setter, events, map(operator.itemgetter(n), values)), 0)
        return events


def typed_array_decoder(cls: type) -> ArrayDecoder | None:
    """The ``ArrayDecoder`` of ``cls``, a class ``typed_decoder`` takes (every field plain, set
    by the generated ``__init__``), or None if msgspec does not take its fields' types."""
    fields = attrs.fields(cls)
    try:
        kinds: Any = tuple.__class_getitem__(tuple(field.type for field in fields))
        values = msgspec.json.Decoder(kinds).decode
    except (TypeError, ValueError):  # a type msgspec does not take after all
        return None
    return ArrayDecoder(cls, tuple(field.name for field in fields), values)


def _int_keyed(cls: Any) -> bool:
    """Whether ``cls`` is a ``dict[int, X]`` (or another mapping annotation with int keys)."""
    return get_origin(cls) in _MAPPINGS and get_args(cls)[:1] == (int,)


_MAPPINGS: Final = frozenset({dict, Mapping, MutableMapping})


def _key_text(key: Any, _: Any = None) -> str:
    return str(key)


def _str_keys_for(unstructure: Callable[[Any], dict[Any, Any]]) -> Callable[[Any], Any]:
    """Unstructure a ``dict[int, X]`` with ``str`` keys, which the store accepts and cattrs
    turns back into ints, unless two keys would become one (such as ``1`` and ``"1"``)."""
    def unstructure_str_keyed(mapping: Any) -> Any:
        data = unstructure(mapping)
        if len(data) != len(mapping):
            raise SerializationError(
                f"the dict[int, ...] value {mapping!r} has keys that are equal as text (such as "
                "1 and '1'); give it int keys only")
        return data

    return unstructure_str_keyed


# -- the codec ------------------------------------------------------------------------------------

class Codec:
    """Turns attrs events and arbitrary values into JSON-compatible data and back.

    Each codec owns one cattrs converter (``converter``); customise it before the first encode or
    decode, because the codec caches the hooks it takes from it.
    """

    converter: MsgspecJsonConverter

    def __init__(self) -> None:
        self.converter = make_converter()
        self._registered: dict[type, EventTypeInfo] = {}
        self._names: dict[str, type] = {}
        self._encoders: dict[type, _Encoder] = {}
        self._decoders: dict[str, _Decoder] = {}
        self._typed: dict[str, Callable[[str | bytes], Any]] = {}
        self._typed_classes: dict[str, type] = {}
        self._typed_arrays: dict[str, ArrayDecoder] = {}
        self._imported: dict[str, Any] = {}
        self._modules: dict[str, str] = {}
        self._values = ValueCodec(self._encode_attrs, self._load, self._import)

    # -- names and versions ----------------------------------------------------------------------

    def register(self, cls: type, name: str | None = None, *, version: int = 1,
                 aliases: Iterable[str] = (),
                 upcasters: Mapping[int, Upcaster] | None = None) -> None:
        """Name an event class for this codec only; it overrides the class's ``@event_type``.

        Args:
            cls: The attrs class.
            name: The stable type name; defaults to the class's ``module:QualName``.
            version: The schema version of the class's current fields, from 1.
            aliases: Older names that decode to this class.
            upcasters: ``upcasters[k]`` turns version ``k`` data into version ``k + 1``.

        Raises:
            InvalidArgument: As for ``@event_type``; a name this codec already gave another class.
        """
        info = _type_info(cls, name, version, aliases, upcasters, what="Codec.register")
        for taken in (info.name, *info.aliases):
            owner = self._names.get(taken)
            if owner is not None and owner is not cls:
                raise InvalidArgument(
                    f"Codec.register name {taken!r} of {default_type_name(cls)} already belongs "
                    f"to {default_type_name(owner)} in this codec; choose another name"
                )
        self._names = {key: owner for key, owner in self._names.items() if owner is not cls}
        for taken in (info.name, *info.aliases):
            self._names[taken] = cls
        self._registered[cls] = info
        self._encoders.clear()
        self._decoders.clear()
        self._typed = {}  # new mappings: a page decoded with the old ones is told apart
        self._typed_classes = {}
        self._typed_arrays = {}

    def alias_module(self, old: str, new: str) -> None:
        """Decode the ``old:QualName`` type names this codec meets as ``new:QualName``.

        For logs whose default names hold a module that has moved or been renamed; chiefly
        ``alias_module("__main__", "app")`` for events a script ``app.py`` stored as
        ``__main__:X`` before default names became portable. Applies to events and to attrs and
        enum values; a later call for the same ``old`` replaces the earlier one.

        Args:
            old: The module name in the stored type names, such as ``"__main__"``.
            new: The importable module to look the class names up in, such as ``"app"``.

        Raises:
            InvalidArgument: A name is not a dotted module name, or both are the same.
        """
        for argument, module in (("old", old), ("new", new)):
            if not isinstance(module, str) or not module or not _is_dotted(module):
                raise InvalidArgument(
                    f"Codec.alias_module {argument} must be a dotted module name such as "
                    f"'__main__' or 'app.events', got {module!r}")
        if old == new:
            raise InvalidArgument(
                f"Codec.alias_module got the module {old!r} twice; give the module named in the "
                "stored type names, then the module to read them from")
        self._modules[old] = new
        self._imported.clear()
        self._encoders.clear()
        self._decoders.clear()
        self._typed = {}  # new mappings: a page decoded with the old ones is told apart
        self._typed_classes = {}
        self._typed_arrays = {}

    def _aliased(self, name: str) -> str:
        """``name`` with its module replaced as ``alias_module`` says."""
        if self._modules:
            module, sep, qualname = name.partition(":")
            if sep and module in self._modules:
                return f"{self._modules[module]}:{qualname}"
        return name

    def _info(self, cls: type) -> EventTypeInfo:
        info = self._registered.get(cls)
        if info is None:
            info = cls.__dict__.get("__event_type__")  # not inherited: a subclass is its own type
        if info is None:
            info = EventTypeInfo(default_type_name(cls))
        return info

    def _encoder(self, cls: type) -> _Encoder:
        encoder = self._encoders.get(cls)
        if encoder is not None:
            return encoder
        if not attrs.has(cls):
            raise SerializationError(
                f"events must be attrs classes, got a {cls.__module__}.{cls.__qualname__}; "
                "decorate its class with @attrs.frozen"
            )
        info = self._info(cls)
        check.type_name(info.name, "the type name of {}", default_type_name(cls))
        twice = double_import(cls.__module__, cls.__qualname__, cls)
        if twice is not None:
            raise SerializationError(twice)
        if cls not in self._registered and "__event_type__" not in cls.__dict__:
            if self._import(info.name) is not cls:
                raise SerializationError(
                    f"{cls.__qualname__} has no importable name ({info.name!r} does not import "
                    "it, e.g. it is defined inside a function), so it could not be decoded "
                    "later; give it a name with @event_type(...) or Codec.register"
                )
            if info.name.startswith(f"{MAIN}:"):
                warnings.warn(_unportable(cls, info.name), UserWarning, stacklevel=2)
        encoder = (info.name, info.version, self.converter.get_unstructure_hook(cls))
        self._encoders[cls] = encoder
        return encoder

    def type_name(self, cls: type) -> str:
        """The stable type name events of ``cls`` are stored under.

        Raises:
            SerializationError: ``cls`` is not an attrs class, or has no importable name.
        """
        return self._encoder(cls)[0]

    def type_names(self, cls: type) -> tuple[str, ...]:
        """Every type name events of ``cls`` may be stored under: its name, then its aliases.

        Raises:
            SerializationError: ``cls`` is not an attrs class, or has no importable name.
        """
        name = self._encoder(cls)[0]
        return (name, *(alias for alias in self._info(cls).aliases if alias != name))

    def schema_version(self, cls: type) -> int:
        """The schema version new events of ``cls`` are stored with.

        Raises:
            SerializationError: ``cls`` is not an attrs class, or has no importable name.
        """
        return self._encoder(cls)[1]

    def _import(self, name: str) -> Any:
        if name not in self._imported:
            self._imported[name] = _import_name(self._aliased(name))
        return self._imported[name]

    def _decoder(self, name: str, stream: str | None, version: int | None) -> _Decoder:
        decoder = self._decoders.get(name)
        if decoder is not None:
            return decoder
        aliased = self._aliased(name)
        cls = self._names.get(aliased) or _INDEX.get(aliased)
        if cls is None:
            try:
                found = self._import(name)
            except Exception as exc:
                raise DecodeError(f"importing the class failed ({_describe(exc)})",
                                  stream=stream, version=version, type=name) from exc
            if isinstance(found, type) and attrs.has(found):
                cls = found
        if cls is None:
            raise DecodeError(
                "no event class has this name; register it (@event_type or Codec.register), add "
                "the old name to the renamed class's aliases, or import the module defining it",
                stream=stream, version=version, type=name,
            )
        twice = double_import(cls.__module__, cls.__qualname__, cls)
        if twice is not None:
            raise DecodeError(twice, stream=stream, version=version, type=name)
        info = self._info(cls)
        chain: list[Upcaster | None] = [None] * (info.version - 1)
        for key, function in info.upcasters:
            chain[key - 1] = function
        decoder = (cls, info.version, self.converter.get_structure_hook(cls), tuple(chain))
        self._decoders[name] = decoder
        if info.version == 1 and (typed := typed_decoder(cls, self.converter)) is not None:
            self._typed[name] = typed
            self._typed_classes[name] = cls
            arrays = typed_array_decoder(cls)
            if arrays is not None:
                self._typed_arrays[name] = arrays
        return decoder

    @property
    def typed_decoders(self) -> Mapping[str, Callable[[str | bytes], Any]]:
        """Type names of schema version 1 whose data may be decoded straight into their class.

        A store's reader thread uses it to decode a version 1 event (one without a
        ``schema_version`` in its metadata) into its class with msgspec; it holds the names
        this codec has decoded before, and only those of plain classes (``typed_decoder``).
        What such a decoder refuses is decoded the usual way. A class registered or a module
        aliased since makes a new mapping: while this one is still the codec's, every class it
        decodes into is the codec's class for that name.
        """
        return self._typed

    @property
    def typed_array_decoders(self) -> Mapping[str, ArrayDecoder]:
        """The names of ``typed_decoders`` whose positional data (a JSON array of the values of
        the class's init fields, in order, stored under their ``fields`` text) decodes straight
        into their class.

        Made and replaced with ``typed_decoders``.
        """
        return self._typed_arrays

    @property
    def typed_classes(self) -> Mapping[str, type]:
        """The class each name of ``typed_decoders`` decodes into, as the codec names it now.

        An event a reader decoded earlier is taken only if its class is still this one (a class
        registered again under the name since is another class).
        """
        return self._typed_classes

    # -- events ----------------------------------------------------------------------------------

    def new_event(self, obj: Any, *, metadata: Mapping[str, Any] | None = None,
                  id: uuid.UUID | None = None) -> NewEvent:
        """Encode an attrs instance as an event to append.

        Args:
            obj: The event, an instance of an attrs class.
            metadata: Extra metadata; the key ``"schema_version"`` is reserved for the codec,
                which sets it when the class's schema version is not 1.
            id: The event id, for an idempotent retry; a fresh UUID by default.

        Returns:
            A ``NewEvent`` with the class's type name, the unstructured fields as data, and
            their JSON text (``data_json``), which ``append`` stores without encoding again.

        Raises:
            SerializationError: ``obj`` is not an attrs instance, or its data or ``metadata``
                breaks the store's rules for JSON text: a value that is not JSON-compatible once
                unstructured, a dict key that is not a ``str``, a lone surrogate in a string.
                The store would refuse the same event at ``append``.
            InvalidArgument: ``metadata`` uses the reserved ``"schema_version"`` key, or the type
                name is not storable (see ``EventStore.append``).
        """
        name, version, unstructure = self._encoder(type(obj))
        data, text = self._unstructure_checked(unstructure, obj, name)
        extra = {} if metadata is None else dict(metadata)
        if SCHEMA_VERSION in extra:
            raise InvalidArgument(
                f"metadata key {SCHEMA_VERSION!r} is reserved for the codec, which sets it from "
                "the class's schema version; rename the key"
            )
        if extra:
            check.to_json(extra, f"metadata of a {name!r} event")
        if version != 1:
            extra[SCHEMA_VERSION] = version
        # The JSON text travels with the event, so the store does not encode it again. (Not
        # the metadata's: a caller may add to it before the append, as a remote ask does.)
        return encoded_new_event(name, data, extra, id, text)

    @staticmethod
    def _unstructure_checked(unstructure: Callable[[Any], Any], obj: Any,
                             name: str) -> tuple[Any, str]:
        """``obj``'s data and its JSON text, checked by the rules the store applies at append
        (so that emit fails at once)."""
        try:
            data = unstructure(obj)
            text = check.json_text(data)
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(
                f"{name!r} instance is not JSON-compatible once unstructured ({exc}); give its "
                "fields JSON-compatible types, or register a cattrs hook on codec.converter"
            ) from None
        except check.Unstorable as exc:
            raise SerializationError(
                exc.message(f"{name!r} data")
                + ", or register a cattrs unstructure hook on codec.converter") from None
        return data, text

    def decode(self, event: RecordedEvent) -> Any:
        """Decode a recorded event into an instance of its class, upcasting older data.

        Args:
            event: The stored event.

        Returns:
            An instance of the class the event's type name resolves to.

        Raises:
            DecodeError: The type name is unknown, the data was written by a newer schema version,
                an upcaster failed, or the data does not fit the class; names stream, version
                and type.
        """
        name = event.type
        decoder = self._decoders.get(name)
        if decoder is None:
            decoder = self._decoder(name, event.stream, event.version)
        cls, current, structure, _ = decoder
        stored = stored_data(event)
        if type(stored) is Typed and type(stored.event) is cls:  # a class named again differs
            typed, stored.event = stored.event, None  # once: a second decode builds a new one
            return typed
        try:
            data = event.data
            metadata = event.metadata
            stored = metadata.get(SCHEMA_VERSION, 1) if metadata else 1
            if stored != current:
                data = self._upcast(decoder, stored, data, event.stream, event.version, name)
            return structure(data, cls)
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(
                f"data does not fit {cls.__qualname__} ({_describe(exc)}); if the class changed, "
                "raise its schema version and add an upcaster",
                stream=event.stream, version=event.version, type=name,
            ) from exc

    @staticmethod
    def _upcast(decoder: _Decoder, stored: Any, data: Any, stream: str | None,
                version: int | None, name: str) -> Any:
        cls, current, _, chain = decoder
        if isinstance(stored, bool) or not isinstance(stored, int) or stored < 1:
            raise DecodeError(f"stored schema version {stored!r} is not an int >= 1",
                              stream=stream, version=version, type=name)
        if stored > current:
            raise DecodeError(
                f"stored with schema version {stored}, newer than {cls.__qualname__}'s schema "
                f"version {current}; it was written by newer code: upgrade this program to read it",
                stream=stream, version=version, type=name,
            )
        if not isinstance(data, dict):
            raise DecodeError(f"data is a {type(data).__name__}, not a JSON object",
                              stream=stream, version=version, type=name)
        data = copy.deepcopy(data)  # upcasters may edit in place; the stored event stays intact
        for step in range(stored, current):
            upcaster = chain[step - 1]
            if upcaster is None:
                continue
            try:
                data = upcaster(data)
            except Exception as exc:
                raise DecodeError(
                    f"upcaster {step} -> {step + 1} of {cls.__qualname__} failed "
                    f"({_describe(exc)})",
                    stream=stream, version=version, type=name,
                ) from exc
            if not isinstance(data, dict):
                raise DecodeError(
                    f"upcaster {step} -> {step + 1} of {cls.__qualname__} returned a "
                    f"{type(data).__name__}, not a dict",
                    stream=stream, version=version, type=name,
                )
        return data

    def _load(self, name: str, stored: Any, data: Any) -> Any:
        """Decode attrs data stored under ``name`` and schema version ``stored`` (no stream)."""
        decoder = self._decoder(name, None, None)
        cls, current, structure, _ = decoder
        if stored != current:
            data = self._upcast(decoder, stored, data, None, None, name)
        try:
            return structure(data, cls)
        except Exception as exc:
            raise DecodeError(f"data does not fit {cls.__qualname__} ({_describe(exc)})",
                              type=name) from exc

    def _encode_attrs(self, obj: Any) -> list[Any]:
        """``[type name, schema version, data]`` of an attrs instance inside a value."""
        name, version, unstructure = self._encoder(type(obj))
        return [name, version, self._unstructure_checked(unstructure, obj, name)[0]]

    # -- snapshot states -------------------------------------------------------------------------

    def unstructure(self, obj: Any, cls: Any = None) -> Any:
        """Unstructure ``obj`` with the converter (for snapshot states), as ``cls`` if given.

        Raises:
            SerializationError: The converter could not unstructure ``obj``.
        """
        try:
            return self.converter.unstructure(obj, unstructure_as=cls)
        except Exception as exc:
            raise SerializationError(f"cannot unstructure {obj!r} ({_describe(exc)})") from exc

    def structure(self, data: Any, cls: Any) -> Any:
        """Structure JSON-compatible ``data`` into ``cls`` with the converter.

        Raises:
            DecodeError: The data does not fit ``cls``.
        """
        try:
            return self.converter.structure(data, cls)
        except Exception as exc:
            raise DecodeError(f"data does not fit {cls!r} ({_describe(exc)})") from exc

    # -- self-describing values ------------------------------------------------------------------

    def encode_value(self, obj: Any) -> Any:
        """Encode a value of any supported type into self-describing JSON-compatible data.

        ``str``, ``int``, ``bool``, ``None``, finite ``float`` and ``list`` stay as they are (a
        list's items are encoded); every other type becomes a one-key object such as
        ``{"$tuple": [...]}``; a ``dict`` with ``str`` keys, a ``tuple``, ``set``, ``frozenset``,
        ``datetime``, ``date``, ``UUID``, ``Decimal``, ``bytes``, an importable enum's member,
        or an attrs instance (by type name and schema version, as for events).

        Args:
            obj: The value.

        Returns:
            Data that ``decode_value`` turns back into an equal value of the same type.

        Raises:
            SerializationError: ``obj`` holds a value of another type, a non-finite float, a dict
                key that is not a ``str``, or contains itself.
        """
        return self._values.encode_value(obj)

    def decode_value(self, data: Any) -> Any:
        """Decode what ``encode_value`` returned (possibly after a JSON round trip).

        Args:
            data: The encoded value.

        Returns:
            A value equal to the encoded one, of the same type.

        Raises:
            DecodeError: The data is not in the form ``encode_value`` writes, or an attrs value
                cannot be decoded (see ``decode``).
        """
        return self._values.decode_value(data)
