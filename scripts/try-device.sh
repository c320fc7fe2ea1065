#!/usr/bin/env bash
# Plays one device against an Updraft server with nothing but curl and
# openssl, to try the native device API by hand (the real device agent is
# updraft-agent). State (key, token, sequence number) lives in
# ./.try-device/<serial>/.
#
#   try-device.sh enroll SERIAL DEVICE_TYPE HW_REV REGION
#   try-device.sh checkin SERIAL [INSTALLED_VERSION]     (default 1.0.0)
#   try-device.sh download SERIAL
#   try-device.sh report SERIAL STATE [MESSAGE]          (e.g. downloading, succeeded, failed)
#
# The server is $UPDRAFT_DEVICE_URL, or $UPDRAFT_SERVER, or http://127.0.0.1:8080.
set -euo pipefail

server=${UPDRAFT_DEVICE_URL:-${UPDRAFT_SERVER:-http://127.0.0.1:8080}}
api=$server/api/device/v1

die() { echo "try-device: $*" >&2; exit 1; }
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required"; }
need curl; need openssl

# field NAME: the first string value of NAME in the JSON on stdin.
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" | head -n 1 | sed 's/\\u0026/\&/g'; }

[ $# -ge 2 ] || usage
cmd=$1 serial=$2
dir=.try-device/$serial
mkdir -p "$dir"
chmod 700 .try-device "$dir"

# post PATH BODYFILE [AUTH]: POST a JSON body; prints the response, fails on 4xx/5xx.
post() {
  local path=$1 body=$2 auth=${3:-}
  local args=(-sS -X POST -H 'Content-Type: application/json' --data-binary "@$body" -w '\n%{http_code}')
  [ -n "$auth" ] && args+=(-H "$auth")
  local out code
  out=$(curl "${args[@]}" "$api$path") || die "cannot reach $api$path"
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  echo "$out"
  case $code in 2*) ;; *) die "HTTP $code from $path" ;; esac
}

enroll() {
  local type=$1 rev=$2 region=$3
  [ -f "$dir/key.pem" ] || openssl genpkey -algorithm ed25519 -out "$dir/key.pem" 2>/dev/null
  openssl pkey -in "$dir/key.pem" -pubout -out "$dir/pub.pem"
  local pem
  pem=$(awk '{printf "%s\\n", $0}' "$dir/pub.pem")
  printf '{"identity":{"serial":"%s","device_type":"%s","hw_rev":"%s"%s},"public_key":"%s","nonce":"%s","timestamp":"%s"}' \
    "$serial" "$type" "$rev" ",\"region\":\"$region\"" "$pem" "$(openssl rand -hex 16)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$dir/enroll.json"
  printf '%s %s %s\n' "$type" "$rev" "$region" > "$dir/identity"
  local sig resp code
  sig=$(openssl pkeyutl -sign -rawin -inkey "$dir/key.pem" -in "$dir/enroll.json" | openssl base64 -A)
  resp=$(curl -sS -X POST -H 'Content-Type: application/json' -H "X-Updraft-Signature: $sig" --data-binary "@$dir/enroll.json" -w '\n%{http_code}' "$api/enroll") || die "cannot reach $api/enroll"
  code=${resp##*$'\n'}
  resp=${resp%$'\n'*}
  echo "$resp"
  case $code in 2*) ;; *) die "enroll refused: HTTP $code" ;; esac
  echo "$resp" | field device_id > "$dir/device_id"
  local token
  token=$(echo "$resp" | field token)
  [ -n "$token" ] && echo "$token" > "$dir/token"
  return 0
}

token() {
  # A repeated enrollment with the same key returns a fresh token once accepted.
  if [ ! -s "$dir/token" ]; then
    [ -f "$dir/identity" ] || die "enroll $serial first"
    read -r type rev region < "$dir/identity"
    enroll "$type" "$rev" "$region" >/dev/null
  fi
  [ -s "$dir/token" ] || die "$serial is not accepted yet (updraft device accept $(cat "$dir/device_id"))"
  cat "$dir/token"
}

case $cmd in
enroll)
  [ $# -ge 5 ] || usage
  enroll "$3" "$4" "$5"
  echo "device id: $(cat "$dir/device_id")"
  ;;
checkin)
  version=${3:-1.0.0}
  printf '{"version":"%s"}' "$version" > "$dir/checkin.json"
  resp=$(post /checkin "$dir/checkin.json" "Authorization: Bearer $(token)")
  echo "$resp"
  assignment=$(echo "$resp" | sed -n 's/.*"assignment":{"id":"\([^"]*\)".*/\1/p')
  if [ -n "$assignment" ]; then
    echo "$assignment" > "$dir/assignment"
    echo "$resp" | field url > "$dir/url"
    echo "$resp" | field sha256 > "$dir/sha256"
    echo "assignment $assignment; download with: $0 download $serial"
  else
    echo "no assignment"
  fi
  ;;
download)
  [ -s "$dir/url" ] || die "no assignment yet; run checkin first"
  # -C - resumes a partial download with a Range request.
  curl -sS -f -C - -o "$dir/artifact" "$(cat "$dir/url")" || die "download failed (run again to resume)"
  got=$(openssl dgst -sha256 -r "$dir/artifact" | cut -d' ' -f1)
  want=$(cat "$dir/sha256")
  [ "$got" = "$want" ] || die "SHA-256 mismatch: got $got, want $want"
  echo "downloaded $(wc -c < "$dir/artifact") bytes to $dir/artifact; SHA-256 verified"
  ;;
report)
  [ $# -ge 3 ] || usage
  [ -s "$dir/assignment" ] || die "no assignment yet; run checkin first"
  seq=$(( $(cat "$dir/seq" 2>/dev/null || echo 0) + 1 ))
  echo "$seq" > "$dir/seq"
  printf '{"reports":[{"assignment_id":"%s","seq":%d,"state":"%s","progress":%d,"message":"%s"}]}' \
    "$(cat "$dir/assignment")" "$seq" "$3" "$([ "$3" = succeeded ] && echo 100 || echo 0)" "${4:-}" > "$dir/report.json"
  post /reports "$dir/report.json" "Authorization: Bearer $(token)"
  ;;
*) usage ;;
esac
