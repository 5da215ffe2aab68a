"""`sendmesh bench`: throughput and latency of the mesh against a bare relay,
with decisions active, a large fan-out, and every channel's providers."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.bench.channel_peers import PeersUnavailable, local_peers
from cli.bench.channels import DEV_SETUP, RUNNING_SETUP, ChannelSetup, peers_not_run
from cli.bench.fanout import FanoutError
from cli.bench.mesh_for_bench import bench_mesh
from cli.bench.report import BenchReport, report_table
from cli.bench.runner import Bars, BenchError, BenchPlan, BenchRun, Phase, Target, phases_of
from cli.client import NoApiKey, resolve_api_key
from cli.console import emit_json, err, fail, out
from cli.launcher import MeshError
from cli.mesh import (
    DEFAULT_AMQP_URL,
    DEFAULT_HOST,
    DEFAULT_NAMESPACE,
    SERVICE_NAMES,
)
from cli.options import DEFAULT_INTAKE, DEFAULT_VAR_DIR, ApiKey, IntakeAddr, JsonOut, VarDir
from shared.settings import ServiceSettings

# The bare relay uses the prefetch the mesh's consumers use.
MESH_PREFETCH: int = ServiceSettings.model_fields["prefetch"].default


def beside_intake(intake: str, service: str) -> str:
    """A service's address in the mesh whose intake is at `intake`: `sendmesh
    run` gives each service the next port in SERVICE_NAMES order."""
    host, _, port = intake.rpartition(":")
    offset = SERVICE_NAMES.index(service) - SERVICE_NAMES.index("intake")
    return f"{host or DEFAULT_HOST}:{int(port) + offset}"


def bench(
    n: Annotated[
        int, typer.Option("-n", min=1, max=100_000, help="Intents (and baseline messages).")
    ] = 2000,
    concurrency: Annotated[int, typer.Option(min=1, max=1024, help="Submits in flight.")] = 64,
    start_mesh: Annotated[
        bool, typer.Option("--start-mesh/--no-start-mesh", help="Start a mesh of its own.")
    ] = True,
    baseline: Annotated[
        bool, typer.Option("--baseline/--no-baseline", help="Run the bare relay.")
    ] = True,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the last SENT per phase.")
    ] = 120.0,
    latency_seconds: Annotated[
        float, typer.Option(help="Upper bound of the latency phase.")
    ] = 30.0,
    phase: Annotated[
        list[Phase] | None,
        typer.Option(
            "--phase",
            help="single: bare intents; decisions: rules and caps on; fanout: one intent"
            " to a topic; channels: each channel with the dev providers and with the real"
            " ones against local peers. Repeat to pick several.",
        ),
    ] = None,
    profiles: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Profiles of the decisions phase.")
    ] = 10_000,
    fanout_members: Annotated[
        int, typer.Option(min=2, max=1_000_000, help="Topic members of the fan-out phase.")
    ] = 100_000,
    channel_n: Annotated[
        int,
        typer.Option(
            "--channel-n", min=1, max=10_000, help="Channels phase: intents per channel and mode."
        ),
    ] = 300,
    json_out: JsonOut = False,
    amqp_url: Annotated[str, typer.Option(help="RabbitMQ URL.")] = DEFAULT_AMQP_URL,
    namespace: Annotated[str, typer.Option(help="With --no-start-mesh: the mesh's namespace.")] = (
        DEFAULT_NAMESPACE
    ),
    intake: IntakeAddr = DEFAULT_INTAKE,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="With --no-start-mesh: profile gRPC address (default: beside --intake).",
        ),
    ] = None,
    frequency: Annotated[
        str | None,
        typer.Option(
            "--frequency",
            help="With --no-start-mesh: frequency gRPC address (default: beside --intake).",
        ),
    ] = None,
    api_key: ApiKey = None,
    var_dir: VarDir = DEFAULT_VAR_DIR,
) -> None:
    """Measure intents/s and submit->sent latency, with rules and caps, and a
    fan-out's deliveries/s and memory; compare with bare aio-pika hops."""
    # SIGTERM unwinds like Ctrl-C, so the bench's own mesh and queues are removed.
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    plan = BenchPlan(
        n,
        concurrency,
        MESH_PREFETCH,
        timeout,
        latency_seconds,
        baseline=baseline,
        phases=phases_of(phase or []),
        profiles=profiles,
        fanout_members=fanout_members,
        channel_n=channel_n,
    )
    try:
        if start_mesh:
            with bench_mesh(amqp_url) as (target, launcher):
                report = run_with_progress(target, plan, launcher.check_alive)
            if Phase.channels in plan.phases:
                report = with_peer_channels(report, amqp_url, plan)
        else:
            key = existing_key(api_key, var_dir)
            target = Target(
                intake,
                amqp_url,
                namespace,
                key,
                profile or beside_intake(intake, "profile"),
                frequency or beside_intake(intake, "frequency"),
            )
            report = run_with_progress(target, plan, lambda: None, RUNNING_SETUP)
    except (MeshError, BenchError, FanoutError) as why:
        fail(str(why))
    show(report, json_out)


def existing_key(api_key: str | None, var_dir: Path) -> str:
    try:
        return resolve_api_key(api_key, os.environ, var_dir)
    except NoApiKey as why:
        fail(str(why))


def with_peer_channels(report: BenchReport, amqp_url: str, plan: BenchPlan) -> BenchReport:
    """The channels phase again, on a second mesh of its own whose channel workers
    use the real providers against local protocol peers."""
    only_channels = replace(plan, phases=frozenset({Phase.channels}), baseline=False)
    try:
        with local_peers() as peers, bench_mesh(amqp_url, peers.env) as (target, launcher):
            theirs = run_with_progress(target, only_channels, launcher.check_alive, peers.setup)
    except PeersUnavailable as why:
        return replace(report, channels=report.channels + peers_not_run(str(why)))
    return replace(report, channels=report.channels + theirs.channels, machine=theirs.machine)


def run_with_progress(
    target: Target,
    plan: BenchPlan,
    check_alive: Callable[[], None],
    channel_setup: ChannelSetup | None = None,
) -> BenchReport:
    import uvloop

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    # Progress on stderr: stdout stays clean for --json.
    with Progress(*columns, console=err) as progress:
        run = BenchRun(target, plan, Bars(progress), check_alive, channel_setup or DEV_SETUP)
        return uvloop.run(run.run())


def show(report: BenchReport, json_out: bool) -> None:
    if json_out:
        emit_json(report.as_dict())
    else:
        out.print(report_table(report))


def raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
