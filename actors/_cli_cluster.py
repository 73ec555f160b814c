"""``python -m actors cluster``: the members of a cluster and the actors each one owns.

What it shows comes from two reads of the store (``members()`` and ``owners()``), each on the
database clock: a member is ``alive`` while its lease holds, ``dead`` once it ran out (its actors
stay listed under it until a live member claims them), ``left`` once it said goodbye (its actors
were released then). The owner rows are read first, so every member they name is in the list.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from eventstore import EventStore, MemberInfo, Ownership

from ._cli_util import CliError, iso, open_store, suggest, to_json

RELEASED = "released"
"""The ``state`` of the ``--json`` object that holds the owner rows no member owns."""


async def cluster(args: argparse.Namespace) -> int:
    async with open_store(args.url) as store:
        _require_coordinates(store, args.url)
        rows = await store.owners(member=args.member)
        members = await store.members()
    if args.member is not None:
        ids = [info.id for info in members]
        members = [info for info in members if info.id == args.member]
        if not members:
            raise CliError(_no_such_member(args.member, args.url, ids))
    owned: dict[str | None, list[Ownership]] = {}
    for row in rows:
        owned.setdefault(row.member, []).append(row)
    released = owned.pop(None, [])
    if args.json:
        for info in members:
            print(to_json(_member_json(info, owned.get(info.id, []))))
        if released:
            print(to_json(_released_json(released)))
        return 0
    if not members:
        print("no members: no process has joined a cluster on this store")
        return 0
    _print_table(members)
    limit = None if args.member is not None else args.limit
    for info in members:
        streams = owned.get(info.id, [])
        if streams:
            print()
            _print_owned(info, streams, limit)
    if args.member is None:
        print()
        print(_summary(members, owned, released))
    return 0


def _require_coordinates(store: EventStore, url: str) -> None:
    """Refuse a store that has no members or owners (it cannot coordinate a cluster)."""
    if not store.coordinates:
        raise CliError(f"{url} is a {type(store).__name__}, which does not coordinate a "
                       "cluster: it has no members or owners to list; give the URL of the "
                       "store the cluster runs on (postgresql://...)")


def _no_such_member(member: str, url: str, ids: list[str]) -> str:
    if not ids:
        return f"no member {member!r} in {url}: no process has joined a cluster on this store"
    return (f"no member {member!r} in {url}" + suggest(member, ids)
            + " (`python -m actors cluster URL` lists the members)")


# -- text ----------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """``seconds`` for people: ``0.05s``, ``12.5s``, ``30s``, ``3m07s``, ``5h02m``, ``2d04h``."""
    if seconds < 1:
        return f"{seconds:.2g}s"
    if seconds < 60:
        return f"{seconds:.1f}".removesuffix(".0") + "s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _place(info: MemberInfo) -> str:
    """Where a member runs: ``host/pid`` (``-`` when it did not say)."""
    if not info.host and not info.pid:
        return "-"
    return f"{info.host or '?'}/{info.pid}"


def _print_table(members: list[MemberInfo]) -> None:
    width = max([6, *(len(info.id) for info in members)])
    where = max([8, *(len(_place(info)) for info in members)])
    print(f"{'MEMBER':<{width}}  {'STATE':<5}  {'HOST/PID':<{where}}  HOSTING  "
          f"{'HEARTBEAT':<11}  {'LEASE':<6}  {'ACTORS':>6}")
    for info in members:
        print(f"{info.id:<{width}}  {info.state:<5}  {_place(info):<{where}}  "
              f"{'yes' if info.hosting else 'no':<7}  {duration(info.age) + ' ago':<11}  "
              f"{duration(info.lease_seconds):<6}  {info.owned:>6}")


_STATE_NOTE = {
    "alive": "",
    "dead": ", dead: any live member may claim them",
    "left": ", left",
}


def _print_owned(info: MemberInfo, streams: list[Ownership], limit: int | None) -> None:
    count = len(streams)
    print(f"{info.id} owns {count} actor{'' if count == 1 else 's'}"
          f"{_STATE_NOTE.get(info.state, '')}:")
    shown = streams if limit is None else streams[:limit]
    width = max(len(row.stream) for row in shown)
    digits = max(len(str(row.epoch)) for row in shown)
    for row in shown:
        print(f"  {row.stream:<{width}}  epoch {row.epoch:<{digits}}  since "
              f"{iso(row.claimed_at)}")
    if count > len(shown):
        print(f"  ... and {count - len(shown)} more (`--member {info.id}` lists them all)")


def _summary(members: list[MemberInfo], owned: dict[str | None, list[Ownership]],
             released: list[Ownership]) -> str:
    states = {state: sum(info.state == state for info in members)
              for state in ("alive", "dead", "left")}
    counts = ", ".join(f"{n} {state}" for state, n in states.items() if n)
    held = sum(len(streams) for streams in owned.values())
    waiting = sum(len(owned.get(info.id, [])) for info in members if info.state == "dead")
    orphans = f" ({waiting} of them by dead members)" if waiting else ""
    return (f"{_plural(len(members), 'member')} ({counts}); {_plural(held, 'actor')} owned"
            f"{orphans}; {len(released)} released (no owner)")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# -- JSON ----------------------------------------------------------------------------------------


def _actors_json(streams: Iterable[Ownership]) -> list[dict[str, Any]]:
    return [{"stream": row.stream, "epoch": row.epoch, "claimed_at": iso(row.claimed_at)}
            for row in streams]


def _member_json(info: MemberInfo, streams: list[Ownership]) -> dict[str, Any]:
    return {"member": info.id, "state": info.state, "host": info.host, "pid": info.pid,
            "hosting": info.hosting, "lease_seconds": info.lease_seconds,
            "heartbeat_age": round(info.age, 3), "joined_at": iso(info.joined_at),
            "heartbeat_at": iso(info.heartbeat_at), "owned": len(streams),
            "actors": _actors_json(streams)}


def _released_json(streams: list[Ownership]) -> dict[str, Any]:
    return {"member": None, "state": RELEASED, "host": None, "pid": None, "hosting": None,
            "lease_seconds": None, "heartbeat_age": None, "joined_at": None,
            "heartbeat_at": None, "owned": len(streams), "actors": _actors_json(streams)}
