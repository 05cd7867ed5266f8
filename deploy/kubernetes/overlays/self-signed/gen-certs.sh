#!/bin/sh
# Writes the injection webhook's serving certificate for the self-signed
# overlay: a private CA (kept in certs/ca.key, outside the cluster), a
# server certificate for the webhook's Service signed by it, and
# certs/cabundle-patch.yaml, which puts the CA into the
# MutatingWebhookConfiguration's caBundle. Then:
#
#   kubectl apply -k deploy/kubernetes/overlays/self-signed
#
# Run again to renew: with certs/ca.key present the CA (and so the
# caBundle) is kept and only the server certificate is reissued, so the
# API server trusts the old and the new certificate alike while the
# webhook reloads its files. Delete certs/ to start over with a new CA.
#
# Usage: gen-certs.sh [DIR]  (DIR defaults to certs/ beside this script)
# Environment: NAMESPACE (default agent-sidecar-system), DAYS (default 365).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/certs}
ns=${NAMESPACE:-agent-sidecar-system}
days=${DAYS:-365}
svc=agent-sidecar-injector

command -v openssl >/dev/null || { echo "gen-certs.sh: openssl is missing (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$out"
umask 077

if [ ! -s "$out/ca.key" ]; then
    openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$out/ca.key" -out "$out/ca.crt" -days 3650 \
        -subj "/CN=agent-sidecar injection webhook CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    echo "gen-certs.sh: new CA in $out/ca.crt (keep $out/ca.key safe and out of git)" >&2
fi

ext=$(mktemp)
trap 'rm -f "$ext" "$out/tls.csr"' EXIT
cat > "$ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:$svc.$ns.svc,DNS:$svc.$ns.svc.cluster.local
EXT
openssl req -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$out/tls.key" -out "$out/tls.csr" -subj "/CN=$svc.$ns.svc" 2>/dev/null
openssl x509 -req -in "$out/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -CAcreateserial -days "$days" -extfile "$ext" -out "$out/tls.crt" 2>/dev/null
chmod 0644 "$out/tls.crt" "$out/ca.crt"
chmod 0600 "$out/tls.key" "$out/ca.key"

bundle=$(base64 -w0 < "$out/ca.crt")
cat > "$out/cabundle-patch.yaml" <<PATCH
# Written by gen-certs.sh: the CA the API server checks the webhook with.
- op: add
  path: /webhooks/0/clientConfig/caBundle
  value: $bundle
- op: add
  path: /webhooks/1/clientConfig/caBundle
  value: $bundle
PATCH
echo "gen-certs.sh: $out/tls.crt for $svc.$ns.svc, valid $days days; caBundle patch in $out/cabundle-patch.yaml" >&2
