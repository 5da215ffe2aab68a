"""Protobuf enum values as plain attributes, for the hot paths.

`intent_pb2.Channel.CHANNEL_EMAIL` is answered by EnumTypeWrapper.__getattr__,
a descriptor lookup in Python costing ~1.5 µs, and the stages read such
values many times per delivery. Binding every value on its wrapper makes it
an ordinary attribute (~0.07 µs). The values are the same ints and nothing
else about the wrappers changes; binding twice is harmless.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any

import sendmesh
from google.protobuf.descriptor import Descriptor
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper


def bind_all() -> int:
    """Bind the enums of every generated `sendmesh.*_pb2` module; how many."""
    bound = 0
    for info in pkgutil.walk_packages(sendmesh.__path__, "sendmesh."):
        if info.name.endswith("_pb2"):
            bound += bind_module(importlib.import_module(info.name))
    return bound


def bind_module(module: ModuleType) -> int:
    bound = 0
    for name in module.DESCRIPTOR.enum_types_by_name:
        bound += _bind(getattr(module, name))
    for name, message in module.DESCRIPTOR.message_types_by_name.items():
        bound += _bind_nested(getattr(module, name), message)
    return bound


def _bind_nested(cls: Any, descriptor: Descriptor) -> int:
    bound = sum(_bind(getattr(cls, enum.name)) for enum in descriptor.enum_types)
    for nested in descriptor.nested_types:
        bound += _bind_nested(getattr(cls, nested.name), nested)
    return bound


def _bind(wrapper: Any) -> int:
    if not isinstance(wrapper, EnumTypeWrapper):
        return 0
    for name, number in wrapper.items():
        setattr(wrapper, name, number)
    return 1
