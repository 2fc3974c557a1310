"""Trying a dispatcher as an attacker would; prints what happened.

A manual check with a client that is not ours (grpcio), against a running
dispatcher with the sample city and an admin token:

    pip install grpcio grpcio-tools
    python3 -m grpc_tools.protoc -Iproto/proto --python_out=/tmp/attack --grpc_python_out=/tmp/attack pingji/v1/pingji.proto
    export PINGJI_TOKEN=pjo_admin_$(openssl rand -hex 32)
    PINGJI_BOOTSTRAP_ADMIN_TOKEN=$PINGJI_TOKEN target/debug/dispatcher --ephemeral \
        --listen 127.0.0.1:50999 --areas scenarios/maps/sample-city.geojson &
    cd /tmp/attack && python3 /path/to/tests/attack/attack.py 127.0.0.1:50999 $PINGJI_TOKEN

Every line but the admin's own setup should read REFUSED, a viewer's read
should show a masked phone, and no event a viewer replays should carry the
phone or a token hash.
"""
import sys, time, queue, threading
import grpc
sys.path.insert(0, ".")
from pingji.v1 import pingji_pb2 as pb, pingji_pb2_grpc as rpc

addr, admin = sys.argv[1], sys.argv[2]
ch = grpc.insecure_channel(addr)
cmd = rpc.CommandServiceStub(ch)
agents = rpc.AgentServiceStub(ch)

def call(what, fn, req, token=None, extra=()):
    md = list(extra)
    if token is not None:
        md.append(("authorization", f"Bearer {token}"))
    try:
        r = fn(req, metadata=md, timeout=10)
        print(f"ALLOWED  {what}")
        return r
    except grpc.RpcError as e:
        print(f"REFUSED  {what}: {e.code().name}: {e.details()[:150]}")

def session(agent_id, token, wait=2.0):
    q = queue.Queue()
    q.put(pb.AgentMessage(hello=pb.Hello(agent_id=agent_id, token=token)))
    def gen():
        while True:
            m = q.get()
            if m is None: return
            yield m
    stream = agents.Session(gen(), timeout=wait)
    got = []
    try:
        for m in stream:
            got.append(m.WhichOneof("body"))
            if len(got) >= 1: break
        print(f"SESSION  {agent_id} with {token[:12]!r}: first message {got}")
    except grpc.RpcError as e:
        print(f"REFUSED  session {agent_id} with {token[:12]!r}: {e.code().name}: {e.details()[:150]}")
    return q, stream

spec = pb.AgentSpec(id="victim", name="Victim", role=pb.ROLE_VOLUNTEER, phone="13912345678", home_area_id="d1-s1-c1-g1", on_duty=True)
added = call("admin adds a person", cmd.UpsertAgent, pb.UpsertAgentRequest(agent=spec), admin)
victim_token = added.issued_token
viewer = call("admin adds a viewer", cmd.AddOperator, pb.AddOperatorRequest(name="eve", role=pb.OPERATOR_ROLE_VIEWER), admin).token

call("no token: list incidents", cmd.ListIncidents, pb.ListIncidentsRequest())
call("no token: create incident", cmd.CreateIncident, pb.CreateIncidentRequest(location=pb.Location(lon=120.1, lat=30.23), category="fire", priority=1, headcount=1))
call("old x-pingji-operator header, no token", cmd.ListIncidents, pb.ListIncidentsRequest(), None, [("x-pingji-operator", "admin")])
call("forged token with the admin's name", cmd.ListIncidents, pb.ListIncidentsRequest(), "pjo_admin_" + "0"*64)
call("admin token with one digit changed", cmd.ListIncidents, pb.ListIncidentsRequest(), admin[:-1] + ("0" if admin[-1] != "0" else "1"))
call("admin token without 'Bearer '", cmd.ListIncidents, pb.ListIncidentsRequest(), None, [("authorization", admin)])
call("a person's token on the command API", cmd.ListAgents, pb.ListAgentsRequest(), victim_token)
call("a 7 KiB token", cmd.ListIncidents, pb.ListIncidentsRequest(), "pjo_x_" + "a"*7000)
call("a 64 KiB token", cmd.ListIncidents, pb.ListIncidentsRequest(), "pjo_x_" + "a"*65536)
call("viewer: switch d1 to emergency", cmd.SetMode, pb.SetModeRequest(area_id="d1", mode=pb.MODE_EMERGENCY_I, reason="x"), viewer)
call("viewer: make itself admin", cmd.AddOperator, pb.AddOperatorRequest(name="eve2", role=pb.OPERATOR_ROLE_ADMIN), viewer)
call("viewer: issue itself the victim's token", cmd.IssueAgentToken, pb.IssueAgentTokenRequest(agent_id="victim"), viewer)
r = call("viewer: read the victim", cmd.GetAgent, pb.GetAgentRequest(id="victim"), viewer)
if r: print(f"         phone seen by viewer: {r.spec.phone}")
r = call("viewer: watch events (roster event)", lambda req, metadata, timeout: next(iter(cmd.WatchEvents(req, metadata=metadata, timeout=timeout))), pb.WatchEventsRequest(from_seq=1), viewer)
evs = []
try:
    for e in cmd.WatchEvents(pb.WatchEventsRequest(from_seq=1), metadata=[("authorization", f"Bearer {viewer}")], timeout=3):
        evs.append(e)
except grpc.RpcError:
    pass
leaks = [e.kind for e in evs if "13912345678" in e.json or "argon2" in e.json]
print(f"         events a viewer replays: {len(evs)}; with the phone or a token hash: {leaks}")
session("victim", "")
session("victim", "pja_" + "0"*64)
session("victim", admin)
session("victim", viewer)
session("nobody", victim_token)
q1, s1 = session("victim", victim_token, wait=5)
q2, s2 = session("victim", victim_token, wait=5)
call("admin rotates the victim's token", cmd.IssueAgentToken, pb.IssueAgentTokenRequest(agent_id="victim"), admin)
session("victim", victim_token)
call("admin removes the last admin", cmd.RemoveOperator, pb.RemoveOperatorRequest(name="admin"), admin)
call("unknown method path", lambda req, metadata, timeout: ch.unary_unary("/pingji.v1.CommandService/DropEverything", request_serializer=lambda x: b"", response_deserializer=lambda b: b)(req, metadata=metadata, timeout=timeout), None, admin)
