#!/usr/bin/env python3
"""An outside client built from the .proto alone: follows one incident and a
mode switch on WatchEvents, reading every field from typed event messages.

It generates its Python code from proto/pingji/v1/pingji.proto with
grpc_tools (pip install grpcio grpcio-tools) into a temporary folder, then
watches the dispatcher at --server from the first event until it has seen
the whole life of --incident (reported, offered, declined, offered to the
next person, accepted, arrived, completed, closed) and a switch of --area to
emergency grade II. It prints one line per event it used and exits 0, or
exits 1 saying what it missed. No JSON is parsed anywhere.

    PINGJI_TOKEN=pjo_... python3 tests/python/outside_client.py \\
        --server 127.0.0.1:50051 --incident leak-1 --area d1
"""

import argparse
import importlib
import os
import pathlib
import sys
import tempfile

import grpc
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "proto" / "proto"


def generate(into):
    """Python modules for pingji/v1/pingji.proto, generated into `into`."""
    code = protoc.main([
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={into}",
        f"--grpc_python_out={into}",
        str(PROTO_ROOT / "pingji" / "v1" / "pingji.proto"),
    ])
    if code != 0:
        sys.exit(f"outside client: protoc failed with {code}")
    sys.path.insert(0, str(into))
    return importlib.import_module("pingji.v1.pingji_pb2"), importlib.import_module("pingji.v1.pingji_pb2_grpc")


def follow(pb, rpc, server, token, incident, area, timeout_s):
    channel = grpc.insecure_channel(server)
    commands = rpc.CommandServiceStub(channel)
    metadata = [("authorization", f"Bearer {token}")]
    stream = commands.WatchEvents(pb.WatchEventsRequest(from_seq=1), metadata=metadata, timeout=timeout_s)
    offers = []  # (offer_id, agent_id) in the order sent
    declined = accepted = None
    steps = []
    for event in stream:
        body = event.WhichOneof("body")
        if body is None:
            # A kind this client's copy of the .proto does not know: shown, not dropped.
            print(f"#{event.seq} unknown event kind {event.kind}")
            continue
        if body != event.kind:
            sys.exit(f"outside client: event {event.seq} says kind {event.kind} but carries {body}")
        message = getattr(event, body)
        if body == "incident_reported" and message.incident_id == incident:
            spec = message.spec
            steps.append("reported")
            print(f"#{event.seq} reported {message.incident_id}: {spec.category} P{spec.priority} "
                  f"x{spec.headcount} in grid {message.placement.grid_id}, offered from "
                  f"{pb.AreaLevel.Name(message.scope)}")
        elif body == "offer_sent" and message.incident_id == incident:
            offers.append((message.offer_id, message.agent_id))
            steps.append("offered")
            print(f"#{event.seq} offered {message.offer_id} to {message.agent_id}: "
                  f"{message.distance_m:.0f} m, ETA {message.eta_s:.0f} s, answer by {message.deadline_ms}")
        elif body == "offer_declined" and message.incident_id == incident:
            declined = message.agent_id
            steps.append("declined")
            print(f"#{event.seq} {message.agent_id} declined {message.offer_id}: {message.reason!r}")
        elif body == "assigned" and message.incident_id == incident:
            accepted = message.agent_id
            steps.append("accepted")
            print(f"#{event.seq} {message.agent_id} accepted {message.offer_id}")
        elif body == "agent_arrived" and message.incident_id == incident:
            steps.append("arrived")
            print(f"#{event.seq} {message.agent_id} arrived")
        elif body == "assignment_completed" and message.incident_id == incident:
            steps.append("completed")
            print(f"#{event.seq} {message.agent_id} completed: {message.feedback!r}")
        elif body == "incident_closed" and message.incident_id == incident:
            steps.append("closed")
            print(f"#{event.seq} closed by {event.actor}: {message.feedback!r}, "
                  f"released {list(message.released_agent_ids)}")
        elif body == "mode_switched" and message.area_id == area:
            steps.append("switched")
            print(f"#{event.seq} {message.area_id}: {pb.Mode.Name(message.previous)} -> "
                  f"{pb.Mode.Name(message.mode)} ({message.reason})")
            if message.mode != pb.MODE_EMERGENCY_II:
                sys.exit(f"outside client: expected grade II, got {pb.Mode.Name(message.mode)}")
        if "closed" in steps and "switched" in steps:
            break
    lifecycle = [step for step in steps if step != "switched"]
    expected = ["reported", "offered", "declined", "offered", "accepted", "arrived", "completed", "closed"]
    if lifecycle != expected:
        sys.exit(f"outside client: the incident went {lifecycle}, expected {expected}")
    if len(offers) != 2 or offers[0][1] == offers[1][1] or declined != offers[0][1] or accepted != offers[1][1]:
        sys.exit(f"outside client: offers {offers}, declined by {declined}, accepted by {accepted}")
    print(f"outside client: followed {incident} through {len(steps)} steps and the switch of {area}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True, help="HOST:PORT of the dispatcher")
    parser.add_argument("--incident", required=True)
    parser.add_argument("--area", required=True)
    parser.add_argument("--timeout-s", type=float, default=60.0)
    arguments = parser.parse_args()
    token = os.environ.get("PINGJI_TOKEN")
    if not token:
        sys.exit("outside client: set PINGJI_TOKEN to an operator token")
    with tempfile.TemporaryDirectory() as generated:
        pb, rpc = generate(pathlib.Path(generated))
        try:
            follow(pb, rpc, arguments.server, token, arguments.incident, arguments.area, arguments.timeout_s)
        except grpc.RpcError as error:
            sys.exit(f"outside client: {error.code().name}: {error.details()}")


if __name__ == "__main__":
    main()
