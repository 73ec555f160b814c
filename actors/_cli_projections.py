"""``python -m actors projections``: list projections (offset, lag, state), or rebuild one.

A rebuild from the command line cannot run the projection's code: it marks the stored offset
(position 0, state ``rebuild``), and the projection resets its read model and replays from the
start when it next looks at its offset: within its ``check_every`` seconds while it runs, else
when it next starts.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._cli_util import CliError, iso, open_store, suggest, to_json
from ._projection_run import lag_of


async def projections(args: argparse.Namespace) -> int:
    words: list[str] = [args.url, *args.rest]
    if words[0] == "rebuild":
        if len(words) != 3:
            raise CliError("usage: python -m actors projections rebuild URL NAME")
        return await _rebuild(words[1], words[2], as_json=args.json)
    if len(words) != 1:
        raise CliError("usage: python -m actors projections URL, or "
                       "python -m actors projections rebuild URL NAME")
    return await _list(words[0], as_json=args.json)


async def _list(url: str, *, as_json: bool) -> int:
    async with open_store(url) as store:
        rows: list[dict[str, Any]] = []
        for offset in await store.offsets():
            lag = await lag_of(store, offset.position, None)
            rows.append({"name": offset.name, "offset": offset.position,
                         "lag": lag.positions, "lag_seconds": round(lag.seconds, 3),
                         "state": offset.state, "updated_at": iso(offset.updated_at),
                         "error": offset.error})
    if as_json:
        for row in rows:
            print(to_json(row))
        return 0
    if not rows:
        print("no projections (no consumer offsets stored)")
        return 0
    width = max(len("NAME"), *(len(row["name"]) for row in rows))
    print(f"{'NAME':<{width}}  {'OFFSET':>10}  {'LAG':>8}  {'LAG (s)':>9}  {'STATE':<8}  "
          "UPDATED")
    for row in rows:
        print(f"{row['name']:<{width}}  {row['offset']:>10}  {row['lag']:>8}  "
              f"{row['lag_seconds']:>9.1f}  {row['state']:<8}  {row['updated_at']}")
        if row["error"]:
            print(f"{'':<{width}}  error: {row['error']}")
    return 0


async def _rebuild(url: str, name: str, *, as_json: bool) -> int:
    async with open_store(url) as store:
        known = {offset.name for offset in await store.offsets()}
        if name not in known:
            raise CliError(f"no projection named {name!r} in this store"
                           + suggest(name, sorted(known)))
        await store.save_offset(name, 0, state="rebuild")
    if as_json:
        print(to_json({"name": name, "offset": 0, "state": "rebuild"}))
    else:
        print(f"projection {name!r}: rebuild requested; it resets its read model and replays "
              "from position 0 when it next looks at its offset (within seconds while it "
              "runs, else when it next starts)")
    return 0
