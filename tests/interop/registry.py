"""A registry partner in Python: a small bank implementing
assetgw.v1.RegistryService with grpcio, straight from proto/.

It is the interop test's partner and a worked example for docs/PARTNERS.md:
mutual TLS that answers only the gateway, R21 validation, an empty answer for
a debtor it does not know, idempotent control orders, NOT_FOUND for a
reference it never issued.

    python registry.py PORT CERT KEY CA STUBS_DIR
"""

import hashlib
import sys
import threading
import time
from concurrent import futures

import grpc

PORT, CERT, KEY, CA, STUBS = sys.argv[1:6]
sys.path.insert(0, STUBS)

from assetgw.v1 import assets_pb2, registry_pb2, registry_pb2_grpc  # noqa: E402
from google.protobuf import timestamp_pb2  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402

BANK_CODE = "991"  # not one of the mocks' banks
UNKNOWN = "360426199101010071"  # the conformance suite's debtor who owns nothing
WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CHECK = "10X98765432"


def valid_resident_id(s: str) -> bool:
    """R21: 17 digits and the check character of GB 11643-1999."""
    s = s.strip().upper()
    if len(s) != 18 or not s[:17].isdigit():
        return False
    return CHECK[sum(int(d) * w for d, w in zip(s[:17], WEIGHTS)) % 11] == s[17]


def now() -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.GetCurrentTime()
    return t


def only_the_gateway(context) -> bool:
    subject = b"".join(context.auth_context().get("x509_subject", [b""]))
    if b"OU=gateway" not in subject:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "this registry answers only the gateway")
    return True


class Bank(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self):
        self.lock = threading.Lock()
        self.answers = {}  # idempotency key -> response
        self.held = {}  # registry reference -> {"start", "end", "amount"}

    def Describe(self, request, context):
        only_the_gateway(context)
        return registry_pb2.DescribeResponse(
            name="py-bank",
            kind=assets_pb2.REGISTRY_KIND_BANK,
            asset_kinds=[assets_pb2.ASSET_KIND_DEPOSIT],
            display_name="Python Savings Bank",
        )

    def SearchAssets(self, request, context):
        only_the_gateway(context)
        which = request.debtor.WhichOneof("id") if request.HasField("debtor") else None
        if which != "resident_id" or not valid_resident_id(request.debtor.resident_id):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "debtor: a valid resident_id is required (R21)")
        debtor = request.debtor.resident_id.strip().upper()
        if debtor == UNKNOWN:
            return registry_pb2.SearchAssetsResponse(as_of=now())
        # Deterministic: the account and balance follow from the debtor.
        digest = hashlib.sha256(("py-bank:" + debtor).encode()).hexdigest()
        account = str(int(digest[:15], 16))[:16].rjust(16, "0")
        deposit = assets_pb2.BankDeposit(
            bank_code=BANK_CODE,
            account_number=account,
            account_type="活期",
            balance=assets_pb2.Money(currency="CNY", minor_units=int(digest[15:23], 16) % 10_000_000),
            branch="Python Savings Bank, Shenzhen",
        )
        asset = assets_pb2.Asset(registry_reference="py-" + account, description="活期存款", deposit=deposit)
        return registry_pb2.SearchAssetsResponse(assets=[asset], as_of=now())

    def _once(self, order, context, act):
        if not order.idempotency_key or not order.asset_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "order.idempotency_key and order.asset_id are required")
        with self.lock:
            if order.idempotency_key not in self.answers:
                self.answers[order.idempotency_key] = act()
            return self.answers[order.idempotency_key]

    def _known(self, reference, context):
        if reference not in self.held:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no seizure {reference} at this registry")

    def Seize(self, request, context):
        only_the_gateway(context)
        if request.registry_reference:
            # A seizure that waited takes effect: its term starts now, by this bank's clock.
            with self.lock:
                self._known(request.registry_reference, context)

            def promote():
                held = self.held[request.registry_reference]
                held.update(start=held["start"] or now(), end=request.end_time, amount=request.amount)
                return registry_pb2.SeizeResponse(
                    registry_reference=request.registry_reference, start_time=held["start"], end_time=held["end"]
                )

            return self._once(request.order, context, promote)

        def act():
            reference = f"py-bank-{len(self.held) + 1:06d}"
            # Without an end time the seizure waits behind another: no term yet.
            waiting = not request.HasField("end_time")
            start = None if waiting else now()
            self.held[reference] = {"start": start, "end": request.end_time, "amount": request.amount}
            if waiting:
                return registry_pb2.SeizeResponse(registry_reference=reference)
            return registry_pb2.SeizeResponse(registry_reference=reference, start_time=start, end_time=request.end_time)

        return self._once(request.order, context, act)

    def Renew(self, request, context):
        only_the_gateway(context)
        with self.lock:
            self._known(request.registry_reference, context)

        def act():
            held = self.held[request.registry_reference]
            held.update(start=held["start"] or now(), end=request.end_time)
            return registry_pb2.RenewResponse(
                registry_reference=request.registry_reference, start_time=held["start"], end_time=request.end_time
            )

        return self._once(request.order, context, act)

    def Release(self, request, context):
        only_the_gateway(context)
        with self.lock:
            self._known(request.registry_reference, context)
        return self._once(
            request.order,
            context,
            lambda: registry_pb2.ReleaseResponse(registry_reference=request.registry_reference, released_at=now()),
        )

    def Deduct(self, request, context):
        only_the_gateway(context)
        with self.lock:
            self._known(request.registry_reference, context)
            held = self.held[request.registry_reference]
            first = request.order.idempotency_key not in self.answers
            if first and not 0 < request.amount <= held["amount"]:
                context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION, f"cannot deduct {request.amount} of {held['amount']} frozen"
                )

        def act():
            held["amount"] -= request.amount
            return registry_pb2.DeductResponse(
                registry_reference=request.registry_reference, deducted_at=now(), remaining=held["amount"]
            )

        return self._once(request.order, context, act)


def main():
    read = lambda p: open(p, "rb").read()  # noqa: E731
    credentials = grpc.ssl_server_credentials(
        [(read(KEY), read(CERT))], root_certificates=read(CA), require_client_auth=True
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(Bank(), server)
    checker = health.HealthServicer()
    checker.set("", health_pb2.HealthCheckResponse.SERVING)
    checker.set("assetgw.v1.RegistryService", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    server.add_secure_port(f"127.0.0.1:{PORT}", credentials)
    server.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
