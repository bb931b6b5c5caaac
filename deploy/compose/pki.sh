#!/bin/sh
# Makes the compose network's PKI once: a CA, the gateway (reachable as
# gateway-1, gateway-2 and from the host), every mock registry, demo courts.
set -eu
dir=/pki
if [ -f "$dir/gateway.pem" ]; then echo "PKI exists"; exit 0; fi
assetgw pki init --dir "$dir"
assetgw pki issue --dir "$dir" gateway --host gateway-1 --host gateway-2 --host localhost --host 127.0.0.1
for r in bank-icbc bank-ccb realestate-mnr ip-cnipa aviation-caac securities-csdc; do
  assetgw pki issue --dir "$dir" registry "$r" --host "$r"
done
for c in 京0105 粤0304 粤0305 沪0101; do
  assetgw pki issue --dir "$dir" court "$c"
done
chown -R 10001:10001 "$dir"
