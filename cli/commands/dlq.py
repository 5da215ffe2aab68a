"""`sendmesh dlq list|show|replay`: the dead-letter queues, read without loss, replayed.

Reading (list, show) leaves every message where it was; replay moves each one
with publisher confirms before removing it. See cli/dead_letters.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import aio_pika
import typer
from rich.table import Table
from rich.text import Text

from cli import dead_letter_model as model
from cli import dead_letters
from cli.bus_admin import BrokerNotAnswering
from cli.console import emit_json, err, fail, out
from cli.mesh import DEFAULT_AMQP_URL, DEFAULT_NAMESPACE
from cli.options import JsonOut
from shared.bus.publisher import BrokerError
from shared.bus.topology import Topology

T = TypeVar("T")

app = typer.Typer(
    help="Dead-letter queues: list, show and replay what failed every attempt.",
    no_args_is_help=True,
)

AmqpUrl = Annotated[
    str, typer.Option("--amqp-url", envvar="SENDMESH_AMQP_URL", help="RabbitMQ URL.")
]
Namespace = Annotated[
    str,
    typer.Option(
        "--namespace", envvar="SENDMESH_BUS_NAMESPACE", help="Prefix of the mesh's queues."
    ),
]
Limit = Annotated[int, typer.Option("--limit", min=1, max=dead_letters.MAX_READ)]


@app.command("list")
def list_(
    stage: Annotated[
        str | None, typer.Option("--stage", help="One line per message of this stage.")
    ] = None,
    limit: Limit = 100,
    json_out: JsonOut = False,
    amqp_url: AmqpUrl = DEFAULT_AMQP_URL,
    namespace: Namespace = DEFAULT_NAMESPACE,
) -> None:
    """Each dead-letter queue: count and oldest age; with --stage, its messages."""
    topo = Topology(namespace)
    if stage is not None:
        letters = _run(dead_letters.read(amqp_url, topo, _known(topo, stage), limit))
        rows = [model.summary_row(letter) for letter in letters]
        if json_out:
            emit_json(rows)
        else:
            out.print(_messages_table(stage, rows))
        return
    now = datetime.now(UTC)
    summaries = _run(dead_letters.overview(amqp_url, topo))
    queues = [_summary(s, now) for s in summaries]
    if json_out:
        emit_json(queues)
    elif not queues:
        out.print(f"no dead-letter queues in namespace {namespace!r}: has a mesh run with it?")
    else:
        out.print(_queues_table(namespace, queues))


@app.command("show")
def show(
    stage: Annotated[str, typer.Argument(help="The stage, e.g. send.sms or eligibility.")],
    limit: Limit = 10,
    json_out: JsonOut = False,
    amqp_url: AmqpUrl = DEFAULT_AMQP_URL,
    namespace: Namespace = DEFAULT_NAMESPACE,
) -> None:
    """The first messages of a queue, decoded, with headers (no contacts, no content)."""
    topo = Topology(namespace)
    letters = _run(dead_letters.read(amqp_url, topo, _known(topo, stage), limit))
    rows = [model.show_row(letter) for letter in letters]
    if json_out:
        emit_json(rows)
        return
    if not rows:
        out.print(f"{topo.dead_letter_queue(stage)} is empty")
    for number, row in enumerate(rows, 1):
        heading = f"#{number} {row['reason']} after {row['attempts']} attempt(s), {row['dead_at']}"
        out.print(Text(heading, style="bold"))
        out.print_json(data={k: row[k] for k in ("type", "headers", "message", "size_bytes")})


@app.command("replay")
def replay(
    stage: Annotated[str, typer.Argument(help="The stage, e.g. send.sms or eligibility.")],
    limit: Limit = 1000,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Only those dead-lettered for this reason.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be replayed; move nothing.")
    ] = False,
    amqp_url: AmqpUrl = DEFAULT_AMQP_URL,
    namespace: Namespace = DEFAULT_NAMESPACE,
) -> None:
    """Send dead letters back: deliveries to eligibility, anything else to its stage."""
    # Fix the cause first, or they come straight back (docs/operations.md).
    topo = Topology(namespace)
    known = _known(topo, stage)
    report = _run(
        dead_letters.replay(amqp_url, topo, known, limit=limit, reason=reason, dry_run=dry_run)
    )
    verb = "would replay" if dry_run else "replayed"
    target = topo.queue(model.replay_target(known))
    out.print(f"{verb} {len(report.replayed)} from {topo.dead_letter_queue(known)} to {target}")
    for letter, why in report.kept:
        ids = ",".join(model.summary_row(letter)["intent_ids"]) or "-"
        err.print(Text(f"kept {ids}: {why}"))


def _known(topo: Topology, stage: str) -> str:
    stages = model.dead_letter_stages(topo)
    if stage not in stages:
        fail(f"no dead-letter queue for {stage!r}; stages: {', '.join(stages)}", code=2)
    return stage


def _run(call: Coroutine[Any, Any, T]) -> T:
    """Run one broker call; broker trouble ends the command in one line."""
    try:
        return asyncio.run(call)
    except BrokerNotAnswering as error:
        fail(str(error))
    except BrokerError as error:
        fail(f"the broker did not confirm a replay; the message stays dead-lettered: {error}")
    except (aio_pika.exceptions.AMQPError, OSError) as error:
        fail(f"RabbitMQ: {error!r} (is it running? check --amqp-url)")


def _summary(summary: dead_letters.QueueSummary, now: datetime) -> dict[str, Any]:
    age = model.age_s(summary.oldest_at, now)
    return {
        "stage": summary.stage,
        "queue": summary.queue,
        "count": summary.count,
        "oldest_at": model.iso(summary.oldest_at),
        "oldest_age_s": None if age is None else round(age, 3),
    }


def _queues_table(namespace: str, queues: list[dict[str, Any]]) -> Table:
    total = sum(q["count"] for q in queues)
    table = Table(title=f"dead letters in {namespace}: {total}", title_justify="left")
    for column in ("stage", "messages", "oldest", "oldest at (UTC)"):
        table.add_column(column)
    for q in queues:
        age = "" if q["oldest_age_s"] is None else _duration(q["oldest_age_s"])
        style = "red" if q["count"] else ""
        table.add_row(Text(q["stage"]), Text(str(q["count"]), style=style), age, q["oldest_at"])
    return table


def _messages_table(stage: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"dead letters of {stage}: {len(rows)} read", title_justify="left")
    for column in ("intent", "deliveries", "reason", "attempts", "dead at (UTC)", "detail"):
        table.add_column(column)
    for r in rows:
        reason = "undecodable" if r["undecodable"] else r["reason"]
        cells = (",".join(r["intent_ids"]), ",".join(r["delivery_ids"]), reason)
        table.add_row(
            *(Text(c) for c in cells), str(r["attempts"]), r["dead_at"], Text(r["detail"])
        )
    return table


def _duration(seconds: float) -> str:
    """`3725.2` -> `1h2m5s`: an age read at a glance."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
