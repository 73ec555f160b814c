"""Event-sourced actors on trio, with durable time and durable timers."""

from . import durable as durable
from ._actor import Actor as Actor
from ._clock import Clock as Clock
from ._clock import VirtualClock as VirtualClock
from ._clock import WallClock as WallClock
from ._cluster import Cluster as Cluster
from ._errors import ActorError as ActorError
from ._errors import ActorStopped as ActorStopped
from ._errors import AskTimeout as AskTimeout
from ._errors import CallFailed as CallFailed
from ._errors import DuplicateActor as DuplicateActor
from ._errors import InvalidActorArgument as InvalidActorArgument
from ._errors import InvalidActorType as InvalidActorType
from ._errors import NonDeterminismError as NonDeterminismError
from ._errors import NotInTurn as NotInTurn
from ._errors import ProjectionFailed as ProjectionFailed
from ._errors import RecoveryError as RecoveryError
from ._errors import StepFailed as StepFailed
from ._events import CallReplied as CallReplied
from ._events import Consumed as Consumed
from ._events import DeadLettered as DeadLettered
from ._events import MessageSent as MessageSent
from ._events import NotificationCancelled as NotificationCancelled
from ._events import NotificationFired as NotificationFired
from ._events import NotificationScheduled as NotificationScheduled
from ._events import PatchMarked as PatchMarked
from ._events import Received as Received
from ._events import ReplyRecorded as ReplyRecorded
from ._events import RunCompleted as RunCompleted
from ._events import ScopeCommitted as ScopeCommitted
from ._events import ScopeCompleted as ScopeCompleted
from ._events import SleepStarted as SleepStarted
from ._events import StepRecorded as StepRecorded
from ._events import TimeObserved as TimeObserved
from ._gc import GCPolicy as GCPolicy
from ._notifier import MultiNotifier as MultiNotifier
from ._program import run_program as run_program
from ._projection import Projection as Projection
from ._projection import Transaction as Transaction
from ._projection_run import Lag as Lag
from ._projection_run import ProjectionRunner as ProjectionRunner
from ._projection_run import run_projection as run_projection
from ._ref import ActorRef as ActorRef
from ._spawn import spawn as spawn
from ._supervision import Escalate as Escalate
from ._supervision import Restart as Restart
from ._supervision import Stop as Stop
from ._system import ActorSystem as ActorSystem

__all__ = [
    "Actor",
    "ActorError",
    "ActorRef",
    "ActorStopped",
    "ActorSystem",
    "AskTimeout",
    "CallFailed",
    "CallReplied",
    "Clock",
    "Cluster",
    "Consumed",
    "DeadLettered",
    "DuplicateActor",
    "Escalate",
    "GCPolicy",
    "InvalidActorArgument",
    "InvalidActorType",
    "Lag",
    "MessageSent",
    "MultiNotifier",
    "NonDeterminismError",
    "NotInTurn",
    "NotificationCancelled",
    "NotificationFired",
    "NotificationScheduled",
    "PatchMarked",
    "Projection",
    "ProjectionFailed",
    "ProjectionRunner",
    "Received",
    "RecoveryError",
    "ReplyRecorded",
    "Restart",
    "RunCompleted",
    "ScopeCommitted",
    "ScopeCompleted",
    "SleepStarted",
    "StepFailed",
    "StepRecorded",
    "Stop",
    "TimeObserved",
    "Transaction",
    "VirtualClock",
    "WallClock",
    "durable",
    "run_program",
    "run_projection",
    "spawn",
]
