"""The command line's arguments, help texts and examples (``python -m actors --help``)."""

from __future__ import annotations

import argparse
import importlib.metadata
import textwrap

INDEX_STREAM = "$actors-index"
"""The ``ActorSystem``'s work index stream, where ``timers`` finds actors by default."""

EXAMPLES = {
    "streams": """
        python -m actors streams sqlite:///app.db
        python -m actors streams sqlite:///app.db --kind Account --json
        python -m actors streams 'postgresql://app@db/prod?schema=billing' --prefix Invoice-2026""",
    "log": """
        python -m actors log sqlite:///app.db Account-a1
        python -m actors log sqlite:///app.db Account-a1 --from 100 --limit 20 --type Deposited
        python -m actors log sqlite:///app.db Account-a1 --follow --json
        python -m actors log sqlite:///app.db Account-a1 -o a1.txt""",
    "replay": """
        python -m actors replay sqlite:///app.db Account-a1 --actor bank:Account
        python -m actors replay sqlite:///app.db Account-a1 --actor bank:Account --to 12 --json""",
    "export": """
        python -m actors export sqlite:///app.db Account-a1 -o a1.jsonl""",
    "import": """
        python -m actors import -m bank.events sqlite:///copy.db a1.jsonl
        cat a1.jsonl | python -m actors import postgresql://app@db/test -""",
    "check": """
        python -m actors check --actor bank:Account a1.jsonl
        python -m actors check --actor bank:Account -m bank.events a1.jsonl --json""",
    "timers": """
        python -m actors timers sqlite:///app.db
        python -m actors timers sqlite:///app.db -m bank.tokens --json""",
    "projections": """
        python -m actors projections sqlite:///app.db
        python -m actors projections rebuild sqlite:///app.db balances""",
    "dead-letters": """
        python -m actors dead-letters sqlite:///app.db
        python -m actors dead-letters retry sqlite:///app.db Account-a1 42
        python -m actors dead-letters drop sqlite:///app.db Account-a1 43 --json""",
    "cluster": """
        python -m actors cluster postgresql://app@db/prod
        python -m actors cluster 'postgresql://app@db/prod?schema=billing' --limit 5
        python -m actors cluster postgresql://app@db/prod --member web-1-4242-9f2c1a7e --json""",
}

DEAD_LETTERS_HELP = ("the messages actors set aside after their turns kept failing; retry or "
                     "drop one")

DEAD_LETTERS_NOTE = """\
`dead-letters URL` lists the inbox messages that actors set aside after their turns kept failing
(not yet retried or dropped). `retry URL STREAM SEQ` stores one again in its actor's inbox, `drop
URL STREAM SEQ` gives it up; either is recorded once, in the $dead-letters stream.

A retried message waits in the actor's inbox. An ActorSystem running elsewhere does not watch
the store: it picks the message up when the actor is next activated (at the system's next
start, or after a passivation), or when a message is next sent to that actor; until then it
waits.
"""


CLUSTER_LIMIT = 20
"""How many actors of each member ``cluster`` lists by default."""

CLUSTER_NOTE = """\
A member is alive while its lease holds (on the database clock), dead once its last heartbeat is
older than its lease (any live member may claim its actors, which stay listed under it until
then), left once it said goodbye (its actors were released). The last line counts the members,
the actors owned and the released ones, which the next claim takes.
"""


def parser() -> argparse.ArgumentParser:
    """The command line's parser; ``args.command`` names the command to run."""
    main = argparse.ArgumentParser(
        prog="python -m actors", description="Inspect, replay, move and check actor logs.",
        epilog="examples:\n" + "\n".join(_examples(text)[0] for text in EXAMPLES.values())
        + "\n\n`python -m actors COMMAND --help` shows more examples of each command.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    main.add_argument("--version", action="version",
                      version=f"%(prog)s (trio-actors) {_version()}")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, *, json_help: str,
                note: str = "") -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help, description=help, formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=note + ("\n" if note else "") + "examples:\n"
            + "\n".join(_examples(EXAMPLES[name])))
        sub.add_argument("--json", action="store_true", help=json_help)
        sub.add_argument("-m", "--module", action="append", default=[], metavar="MODULE",
                         help="import MODULE first: it defines event or token classes "
                              "(repeat for several)")
        return sub

    streams = command("streams", "list the streams (actors) of a store: kind, "
                      "events, last version, last activity", json_help="one object per stream")
    _url(streams)
    streams.add_argument("--prefix", default="", help="only streams whose name starts so")
    streams.add_argument("--kind", help="only the streams of this actor kind")

    log = command("log", "print a stream's events: version, position, time, type, data",
                  json_help="one object per event (the export format)")
    _url_and_stream(log)
    log.add_argument("--from", dest="first", type=int, default=1, metavar="VERSION",
                     help="start at VERSION (default 1)")
    log.add_argument("--limit", type=_positive, metavar="N", help="print at most N events")
    log.add_argument("--type", dest="types", action="append", default=[], metavar="TYPE",
                     help="only events of TYPE: a stored type name, or its last part "
                          "(repeat for several)")
    log.add_argument("--follow", action="store_true",
                     help="then wait for new events and print them as they come (Ctrl-C stops)")
    log.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")

    rep = command("replay", "the actor's state after each event (and what changed), "
                  "or at one version", json_help="one object per event, with state and changes")
    _url_and_stream(rep)
    _actor_option(rep)
    rep.add_argument("--to", type=int, metavar="VERSION", help="only the state at VERSION")

    export = command("export", "write a stream's events and snapshots as JSON Lines",
                     json_help="the summary on stderr as one JSON object")
    _url_and_stream(export)
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")

    imp = command("import", "append the events of a JSON Lines log to a store; "
                  "after a crash, run it again to finish; every event must decode first",
                  json_help="one object per stream")
    imp.add_argument("url", metavar="URL", help="the target store, e.g. sqlite:///app.db")
    imp.add_argument("file", metavar="FILE", help="the JSON Lines log ('-' for stdin)")

    chk = command("check", "re-run an actor class against a recorded log; exit 1 at "
                  "the first divergence", json_help="one object per stream checked")
    _actor_option(chk)
    chk.add_argument("file", metavar="FILE", help="a JSON Lines log, as export writes it")

    timers = command("timers", "pending notifications and unfinished durable sleeps "
                     "of every actor, soonest first", json_help="one object per timer")
    _url(timers)
    timers.add_argument("--index-stream", default=INDEX_STREAM, metavar="STREAM",
                        help=f"the ActorSystem's work index (default {INDEX_STREAM!r})")

    proj = command("projections", "list the projections (offset, lag, state, error), or "
                   "`projections rebuild URL NAME` to rebuild one",
                   json_help="one object per projection")
    proj.usage = ("%(prog)s [-h] [--json] [-m MODULE] URL\n"
                  "       %(prog)s [-h] [--json] rebuild URL NAME")
    proj.add_argument("url", metavar="URL",
                      help="the store (sqlite:///app.db, postgresql://...), or `rebuild`")
    proj.add_argument("rest", nargs="*", metavar="URL NAME",
                      help="after `rebuild`: the store and the projection's name")
    dead = command("dead-letters", DEAD_LETTERS_HELP,
                   json_help="one object per dead letter (retry, drop: the one resolved)",
                   note=DEAD_LETTERS_NOTE)
    dead.usage = ("%(prog)s [-h] [--json] [-m MODULE] [--all] URL\n"
                  "       %(prog)s [-h] [--json] {retry,drop} URL STREAM SEQ")
    dead.add_argument("words", nargs="+", metavar="[retry|drop] URL [STREAM SEQ]",
                      help="the store URL to list; or retry/drop, the URL, the actor's stream "
                           "and the dead letter's SEQ (its inbox sequence, as listed)")
    dead.add_argument("--all", action="store_true",
                      help="list the retried and dropped dead letters too")
    members = command("cluster", "the members of a cluster (alive, dead, left; heartbeat age, "
                      "lease) and the actors each one owns",
                      json_help="one object per member, with all its actors (then one with "
                                "the released ones)", note=CLUSTER_NOTE)
    _url(members)
    members.add_argument("--limit", type=_positive, default=CLUSTER_LIMIT, metavar="N",
                         help=f"list at most N actors of each member (default {CLUSTER_LIMIT})")
    members.add_argument("--member", metavar="ID",
                         help="only this member, with all the actors it owns")
    return main


def _examples(text: str) -> list[str]:
    """The example lines of ``EXAMPLES``, indented by two spaces."""
    return ["  " + line for line in textwrap.dedent(text).strip("\n").splitlines()]


def _version() -> str:
    try:
        return importlib.metadata.version("trio-actors")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL",
                        help="the store: sqlite:///app.db, postgresql://...[?schema=NAME]")


def _url_and_stream(parser: argparse.ArgumentParser) -> None:
    _url(parser)
    parser.add_argument("stream", metavar="STREAM", help="the actor's stream, e.g. Account-a1")


def _actor_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--actor", required=True, metavar="MODULE:CLASS",
                        help="the actor class, importable from the current directory")
