# common.sh: sourced by benches/cluster/writes and benches/cluster/catchup. Expects $cairn (the
# binary), $work (a scratch directory) and the array pids (processes to stop); defines free_port,
# stop_all, start_cairn (three servers; sets leader to the leader's HTTP address and rpc to the
# servers' RPC ports), make_pki (a CA, a -server and a -client certificate) and start_cairn-tls.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

start_cairn() {  # $1 round, $2 name (cairn, cairn-tls), then extra agent flags; sets leader to the leader's HTTP address
  local round=$1 name=${2:-cairn} http=() serf=() joins=() i
  rpc=()
  shift; shift || true
  for i in 0 1 2; do rpc+=("$(free_port)"); http+=("$(free_port)"); serf+=("$(free_port)"); done
  for i in 0 1 2; do joins+=(--retry-join "127.0.0.1:${rpc[$i]}"); done
  for i in 0 1 2; do
    "$cairn" agent --server --bootstrap-expect 3 --node "s$i" --data-dir "$work/$name-$round-s$i" \
      --http-port "${http[$i]}" --dns-port 0 --server-port "${rpc[$i]}" --serf-lan-port "${serf[$i]}" --serf-wan-port 0 \
      "${joins[@]}" "$@" >"$work/$name-$round-s$i.log" 2>&1 &
    pids+=($!)
  done
  local l="" peers=0
  for _ in $(seq 600); do
    l=$(curl -sf "127.0.0.1:${http[0]}/v1/status/leader" | tr -d '"') || true
    if [ -n "$l" ]; then
      peers=$(curl -sf "127.0.0.1:${http[0]}/v1/status/peers" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') || peers=0
      [ "$peers" = 3 ] && break
    fi
    sleep 0.1
  done
  [ "$peers" = 3 ] || { echo "$name: no 3-server cluster (leader '$l', $peers peers)" >&2; tail "$work/$name-$round"-s*.log >&2; exit 1; }
  leader=""
  for i in 0 1 2; do [ "127.0.0.1:${rpc[$i]}" = "$l" ] && leader="127.0.0.1:${http[$i]}"; done
  [ -n "$leader" ] || { echo "cairn: leader $l is none of the three" >&2; exit 1; }
}

# The TLS run's certificates: one CA and one server certificate for all three servers.
make_pki() {
  mkdir -p "$work/pki"
  (cd "$work/pki" && "$cairn" tls ca create >/dev/null && "$cairn" tls cert create -server >/dev/null \
    && "$cairn" tls cert create -client >/dev/null)
  cat >"$work/pki/tls.json" <<EOF
{"ca_file":"$work/pki/consul-agent-ca.pem","cert_file":"$work/pki/dc1-server-consul-0.pem",
 "key_file":"$work/pki/dc1-server-consul-0-key.pem","verify_incoming":true,"verify_outgoing":true,
 "verify_server_hostname":true}
EOF
}

start_cairn-tls() {  # $1 round
  start_cairn "$1" cairn-tls --config-file "$work/pki/tls.json"
}

