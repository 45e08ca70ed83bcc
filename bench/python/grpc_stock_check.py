"""A stock gRPC client (Python grpcio, grpcio-health-checking,
grpcio-reflection) against a running coordinator: the health of the whole
server and of each brigade service, and the services reflection lists.
Exit 0 when every check holds. Usage: grpc_stock_check.py HOST:PORT
(bench/grpcio-check.sh installs the packages in a venv and starts `brigade up`)."""
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

target = sys.argv[1]
channel = grpc.insecure_channel(target)
grpc.channel_ready_future(channel).result(timeout=10)

health = health_pb2_grpc.HealthStub(channel)
ok = True
for service in ["", "brigade.v1.Coordinator", "brigade.v1.WorkerLink"]:
    status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    print(f"health {service or '(server)'}: {name}")
    ok &= name == "SERVING"

reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
request = reflection_pb2.ServerReflectionRequest(list_services="")
services = sorted(
    s.name
    for answer in reflection.ServerReflectionInfo(iter([request]), timeout=5)
    for s in answer.list_services_response.service
)
print("reflection lists:", ", ".join(services))
for wanted in ["brigade.v1.Coordinator", "brigade.v1.WorkerLink", "grpc.health.v1.Health"]:
    ok &= wanted in services
sys.exit(0 if ok else 1)
