"""A court client in Python: searches a debtor through the gateway over
mutual TLS with a court's certificate, using stubs generated from proto/,
and prints what came back as JSON for the test to check.

    python court.py GATEWAY CERT KEY CA STUBS_DIR CASE DEBTOR
"""

import json
import sys

import grpc

GATEWAY, CERT, KEY, CA, STUBS, CASE, DEBTOR = sys.argv[1:8]
sys.path.insert(0, STUBS)

from assetgw.v1 import assets_pb2, search_pb2, search_pb2_grpc  # noqa: E402


def main():
    read = lambda p: open(p, "rb").read()  # noqa: E731
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(CA), private_key=read(KEY), certificate_chain=read(CERT)
    )
    # The gateway's certificate names localhost; we connect to 127.0.0.1.
    channel = grpc.secure_channel(GATEWAY, credentials, options=[("grpc.ssl_target_name_override", "localhost")])
    stub = search_pb2_grpc.AssetSearchServiceStub(channel)
    query = search_pb2.SearchQuery(case_number=CASE, debtors=[assets_pb2.Debtor(resident_id=DEBTOR)])
    response = stub.Search(
        search_pb2.SearchRequest(query=query), metadata=[("x-officer-id", "officer-py")], timeout=10
    )
    result = response.debtors[0]
    print(
        json.dumps(
            {
                "registries": {o.registry: search_pb2.RegistryStatus.Name(o.status) for o in result.registries},
                "assets": [
                    {"kind": assets_pb2.AssetKind.Name(a.kind), "id": a.asset_id, "sources": [s.registry for s in a.sources]}
                    for a in result.assets
                ],
            },
            ensure_ascii=False,
        )
    )
    # A refusal arrives as a gRPC status with the gateway's message.
    try:
        stub.Search(
            search_pb2.SearchRequest(query=search_pb2.SearchQuery(case_number=CASE)),
            metadata=[("x-officer-id", "officer-py")],
            timeout=10,
        )
    except grpc.RpcError as e:
        print(json.dumps({"refused": e.code().name, "message": e.details()}, ensure_ascii=False))


if __name__ == "__main__":
    main()
