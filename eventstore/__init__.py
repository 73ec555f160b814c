"""An append-only event store: streams, versions, global positions, snapshots, subscriptions."""

from ._cluster import Claim as Claim
from ._cluster import Fence as Fence
from ._cluster import Fenced as Fenced
from ._cluster import Heartbeat as Heartbeat
from ._cluster import MemberInfo as MemberInfo
from ._cluster import NotAlive as NotAlive
from ._cluster import Ownership as Ownership
from ._codec import Codec as Codec
from ._codec import event_type as event_type
from ._errors import AppendOutcomeUnknown as AppendOutcomeUnknown
from ._errors import DecodeError as DecodeError
from ._errors import DuplicateEventId as DuplicateEventId
from ._errors import EventStoreError as EventStoreError
from ._errors import InvalidArgument as InvalidArgument
from ._errors import OffsetConflict as OffsetConflict
from ._errors import SchemaError as SchemaError
from ._errors import SerializationError as SerializationError
from ._errors import StoreClosed as StoreClosed
from ._errors import WrongExpectedVersion as WrongExpectedVersion
from ._model import ANY as ANY
from ._model import NO_STREAM as NO_STREAM
from ._model import STREAM_EXISTS as STREAM_EXISTS
from ._model import AppendResult as AppendResult
from ._model import Expected as Expected
from ._model import ExpectedVersion as ExpectedVersion
from ._model import NewEvent as NewEvent
from ._model import RecordedEvent as RecordedEvent
from ._model import Snapshot as Snapshot
from ._offsets import ConsumerOffset as ConsumerOffset
from ._open import open as open
from ._store import EventStore as EventStore
from ._validate import MAX_STREAM_LENGTH as MAX_STREAM_LENGTH
from ._validate import MAX_TYPE_LENGTH as MAX_TYPE_LENGTH
from ._work import KEEP as KEEP
from ._work import Enqueued as Enqueued
from ._work import WorkEntry as WorkEntry

__all__ = [
    "ANY",
    "KEEP",
    "MAX_STREAM_LENGTH",
    "MAX_TYPE_LENGTH",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendOutcomeUnknown",
    "AppendResult",
    "Claim",
    "Codec",
    "ConsumerOffset",
    "DecodeError",
    "DuplicateEventId",
    "Enqueued",
    "EventStore",
    "EventStoreError",
    "Expected",
    "ExpectedVersion",
    "Fence",
    "Fenced",
    "Heartbeat",
    "InvalidArgument",
    "MemberInfo",
    "NewEvent",
    "NotAlive",
    "OffsetConflict",
    "Ownership",
    "RecordedEvent",
    "SchemaError",
    "SerializationError",
    "Snapshot",
    "StoreClosed",
    "WorkEntry",
    "WrongExpectedVersion",
    "event_type",
    "open",
]
