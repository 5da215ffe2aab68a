"""python -m services.scheduler"""

from __future__ import annotations

from sendmesh.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

from services.channels.cancellations import decode_control
from services.scheduler import store
from services.scheduler.cancels import Canceller
from services.scheduler.consumer import ControlConsumer, DeferredConsumer
from services.scheduler.dispatcher import Dispatcher
from services.scheduler.server import SchedulerServicer
from services.scheduler.settings import SchedulerSettings
from shared.bus import topology
from shared.envelopes import decode_envelope
from shared.runtime import Context, Parts, ServiceRuntime, run
from shared.settings import load_settings

SERVICE = scheduler_pb2.DESCRIPTOR.services_by_name["Scheduler"].full_name
# Where a deferral may return: any work stage but the scheduler's own queues.
RETURN_STAGES = frozenset(topology.work_stages()) - {topology.DEFERRED, topology.RELEASE}


def create_runtime(settings: SchedulerSettings) -> ServiceRuntime:
    async def build(ctx: Context) -> Parts:
        s = settings
        dispatcher = Dispatcher(
            ctx.engine, ctx.bus, poll_s=s.dispatch_poll_s, batch=s.dispatch_batch
        )
        canceller = Canceller(
            ctx.engine, ctx.bus, batch=s.dispatch_batch, retention_s=s.cancelled_retention_s
        )
        deferrals = DeferredConsumer(ctx.engine, ctx.bus.topology, RETURN_STAGES, dispatcher.notify)
        control = ControlConsumer(ctx.engine, canceller)
        servicer = SchedulerServicer(ctx.engine, canceller)
        return Parts(
            servicers=[(scheduler_pb2_grpc.add_SchedulerServicer_to_server, servicer, SERVICE)],
            # Stopped in reverse: intake of deferrals first, the due-loop last.
            components=[
                dispatcher,
                ctx.consumer(topology.control_stage(s.service), decode_control, control.handle),
                ctx.consumer(topology.DEFERRED, decode_envelope, deferrals.handle),
            ],
        )

    return ServiceRuntime(
        settings, build, tables=store.TABLES, control_services=(settings.service,)
    )


if __name__ == "__main__":
    run(create_runtime(load_settings(SchedulerSettings)))
