#!/usr/bin/env bash
# Makes the certificates tls_spec.lua needs, with the openssl CLI only, in
# DIR (created if missing). Nothing here is committed: every run makes new
# keys. All keys are ECDSA P-256, unencrypted.
#
#   ca.pem ca.key              the test CA
#   server.pem server.key      CN=localhost, SAN DNS:localhost IP:127.0.0.1,
#                              serial 0x1001, signed by the CA
#   server2.pem server2.key    the same names, serial 0x2002 (a reload's
#                              new certificate)
#   other.pem other.key        CN=other.test, SAN DNS:other.test (SNI)
#   client.pem client.key      CN=client, clientAuth, signed by the CA
#   rogue_ca.pem               a second CA nobody trusts
#   rogue.pem rogue.key        CN=localhost (SANs as server.pem), signed by
#                              the rogue CA
#   expired.pem expired.key    CN=localhost, valid from 3 days ago to
#                              yesterday, signed by the CA
#   wrong.key                  a key that matches none of the certificates
set -euo pipefail

dir=${1:?usage: tls_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# A self-signed CA: $1 name of the files, $2 its CN.
make_ca() {
  newkey "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 30 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# A leaf: $1 files, $2 CN, $3 extensions, $4 serial, $5 signing CA.
make_leaf() {
  newkey "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$5.pem" -CAkey "$5.key" -set_serial "$4" \
    -days 30 -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

server_ext='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1'

make_ca ca "lunet test CA"
make_ca rogue_ca "lunet rogue CA"
make_leaf server localhost "$server_ext" 0x1001 ca
make_leaf server2 localhost "$server_ext" 0x2002 ca
make_leaf other other.test "basicConstraints=critical,CA:FALSE
extendedKeyUsage=serverAuth
subjectAltName=DNS:other.test" 0x1003 ca
make_leaf client client "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth" 0x1004 ca
make_leaf rogue localhost "$server_ext" 0x1005 rogue_ca
newkey wrong.key

# Expired: `openssl x509 -req` (3.0) has no start date, so `openssl ca`
# with a throwaway database signs one whose whole window is in the past.
mkdir -p ca.db
: >ca.db/index.txt
echo 1006 >ca.db/serial
cat >ca.db/ca.cnf <<EOF
[ca]
default_ca = test
[test]
database = ca.db/index.txt
new_certs_dir = ca.db
serial = ca.db/serial
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = anything
x509_extensions = leaf
unique_subject = no
[anything]
commonName = supplied
[leaf]
basicConstraints = critical,CA:FALSE
subjectAltName = DNS:localhost,IP:127.0.0.1
EOF
newkey expired.key
openssl req -new -key expired.key -subj /CN=localhost -out expired.csr 2>/dev/null
openssl ca -batch -config ca.db/ca.cnf -in expired.csr -out expired.pem -notext \
  -startdate "$(date -u -d '3 days ago' +%y%m%d%H%M%SZ)" \
  -enddate "$(date -u -d '1 day ago' +%y%m%d%H%M%SZ)" 2>/dev/null
rm -rf ca.db expired.csr
