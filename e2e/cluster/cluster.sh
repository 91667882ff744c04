#!/usr/bin/env bash
# A real one-node Kubernetes cluster on this machine, for tracecam's tests and
# for trying tracecam by hand:
#
#   e2e/cluster/cluster.sh up      # build what is missing, start, wait Ready
#   e2e/cluster/cluster.sh images  # tracecam's images and the demo app's, imported
#   e2e/cluster/cluster.sh down    # stop everything, remove pods and the bridge
#   e2e/cluster/cluster.sh status  # which daemons run
#
# (make cluster / make cluster-down.) Parts: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kube-proxy (nftables), kubelet and
# CoreDNS built from the Go module proxy (e2e/kubeapi/build.sh), Debian's
# containerd + runc, and the CNI bridge plugin; a pause image built here from
# Kubernetes' own pause.c. Nothing is
# pulled: every image a pod uses is imported first (images.sh).
#
# Everything lives under DIR (default .cache/cluster): certificates, configs,
# logs/, the admin kubeconfig (DIR/kubeconfig); containerd's and the kubelet's
# state under /var/lib/tracecam-cluster and /run/tracecam-cluster, so that
# they never touch a containerd or kubelet the machine may run already.
#
# Daemons are started in their own sessions (setsid) so that they outlive the
# command that started them; `down` stops them by their pid files.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${CLUSTER_DIR:-$root/.cache/cluster}
kube=${KUBE_DIR:-$root/.cache/kube}
state=/var/lib/tracecam-cluster
run=/run/tracecam-cluster
node=${CLUSTER_NODE:-tracecam-node}
bridge=tcbr0
pod_cidr=10.244.0.0/24
node_ip=10.244.0.1
service_cidr=10.96.0.0/24
api_port=6443
etcd_port=23790
pause_image=registry.k8s.io/pause:3.10

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

pidfile() { echo "$dir/pids/$1"; }
running() { local f; f=$(pidfile "$1"); [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null; }

# start NAME BINARY ARGS...: in its own session, output to logs/NAME.log.
start() {
  local name=$1; shift
  if running "$name"; then return; fi
  setsid "$@" >>"$dir/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

stop() {
  local name=$1 f pid
  f=$(pidfile "$name")
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "$what not ready after ${secs}s; see $dir/logs/"
    fi
    sleep 0.5
  done
}

cgroup2() { awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts; }

certs() {
  local pki=$dir/pki
  [[ -f $pki/done ]] && return
  mkdir -p "$pki"
  log "certificates"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=tracecam-cluster-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  # sign NAME SUBJECT EXTENSIONS
  sign() {
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
    printf '%s\n' "$3" >"$pki/$1.ext"
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 3650 -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
  }
  sign apiserver "/CN=kube-apiserver" \
    "subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$node_ip,IP:10.96.0.1
extendedKeyUsage=serverAuth"
  sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
  sign kubelet "/CN=$node" "subjectAltName=DNS:$node,DNS:localhost,IP:127.0.0.1,IP:$node_ip
extendedKeyUsage=serverAuth"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  local admin kubelet
  admin=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  kubelet=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  {
    echo "$admin,admin,admin,system:masters"
    echo "$kubelet,system:node:$node,system:node:$node,system:nodes"
  } >"$pki/tokens.csv"
  chmod 600 "$pki"/*.key "$pki/tokens.csv"
  kubeconfig "$dir/kubeconfig" "$admin"
  kubeconfig "$dir/kubelet.kubeconfig" "$kubelet"
  touch "$pki/done"
}

# kubeconfig FILE TOKEN
kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tracecam
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $dir/pki/ca.crt
users:
- name: user
  user:
    token: $2
contexts:
- name: tracecam
  context: {cluster: tracecam, user: user}
current-context: tracecam
EOF
  chmod 600 "$1"
}

configs() {
  mkdir -p "$dir/cni/net.d" "$state/cni" "$run"
  cat >"$dir/cni/net.d/10-tracecam.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "tracecam",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$pod_cidr", "gateway": "$node_ip"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$state/cni"
      }
    },
    {"type": "loopback"}
  ]
}
EOF
  # The whole config: Debian's may leave CRI out; runc on cgroupfs (no
  # systemd here); the sandbox (pause) image is imported, never pulled.
  cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$state/containerd"
state = "$run/containerd"
[grpc]
  address = "$run/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$dir/bin/runcwrap"
        Root = "$run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
EOF
  # cgroupfs (PID 1 is not systemd); failCgroupV1 false because the layout
  # is hybrid (v1 controllers, cgroup2 at unified/); image GC never
  # collects the imported images (they cannot be pulled back).
  cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$run/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $dir/pki/kubelet.crt
tlsPrivateKeyFile: $dir/pki/kubelet.key
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
podCIDR: $pod_cidr
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
serializeImagePulls: false
resolvConf: ""
maxPods: 50
clusterDomain: cluster.local
clusterDNS: [$node_ip]
EOF
  # Cluster DNS on the node's address (as NodeLocal DNSCache does): names of
  # Services and pods from the API; nothing upstream (no network here).
  cat >"$dir/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 {
    bind $node_ip
    errors
    kubernetes cluster.local in-addr.arpa {
        kubeconfig $dir/kubeconfig tracecam
        pods insecure
    }
}
.:53 {
    bind $node_ip
    errors
}
EOF
}

network() {
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
  fi
  ip addr replace "$node_ip/24" dev "$bridge"
  ip link set "$bridge" up
  sysctl -qw net.ipv4.ip_forward=1
  # pod -> Service -> pod on the same bridge goes through kube-proxy's rules
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
}

# ctr against this cluster's containerd.
ctr_() { ctr --address "$run/containerd.sock" -n k8s.io "$@"; }

up() {
  mkdir -p "$dir/logs" "$dir/pids" "$state" "$run"
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy coredns; do
    [[ -x $kube/$b ]] || die "$kube/$b missing: run e2e/kubeapi/build.sh (make kube-binaries)"
  done
  for b in containerd runc containerd-shim-runc-v2 openssl ctr nft; do
    command -v "$b" >/dev/null || die "$b missing (make deps installs Debian's containerd, runc, containernetworking-plugins)"
  done
  [[ -x /usr/lib/cni/bridge ]] || die "/usr/lib/cni/bridge missing (Debian package containernetworking-plugins)"
  certs
  configs
  network
  # runc, with the sandbox's negative OOM score clamped where the machine
  # does not allow it (runcwrap/main.go says why)
  (cd "$root" && go build -o "$dir/bin/runcwrap" ./e2e/cluster/runcwrap)
  local pki=$dir/pki
  log "etcd"
  start etcd "$kube/etcd" --data-dir "$dir/etcd" --name tracecam \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$((etcd_port + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 10))" \
    --initial-cluster "tracecam=http://127.0.0.1:$((etcd_port + 10))" --log-level warn
  wait_for etcd 60 curl -sf "http://127.0.0.1:$etcd_port/health"
  log "kube-apiserver"
  start kube-apiserver "$kube/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 0.0.0.0 --advertise-address "$node_ip" --secure-port "$api_port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" --service-cluster-ip-range "$service_cidr" \
    --authorization-mode Node,RBAC --enable-aggregator-routing=true --allow-privileged=true \
    --kubelet-preferred-address-types InternalIP
  wait_for kube-apiserver 120 kubectl_ get --raw /readyz
  log "containerd"
  start containerd containerd --config "$dir/containerd.toml"
  wait_for containerd 60 ctr_ version
  images_pause
  log "kube-controller-manager, kube-scheduler"
  start kube-controller-manager "$kube/kube-controller-manager" --kubeconfig "$dir/kubeconfig" \
    --authentication-kubeconfig "$dir/kubeconfig" --authorization-kubeconfig "$dir/kubeconfig" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --use-service-account-credentials=false --leader-elect=false --bind-address 127.0.0.1
  start kube-scheduler "$kube/kube-scheduler" --kubeconfig "$dir/kubeconfig" \
    --authentication-kubeconfig "$dir/kubeconfig" --authorization-kubeconfig "$dir/kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1
  # Services: kube-proxy in nftables mode (ClusterIPs, e.g. the API's
  # 10.96.0.1 that in-cluster clients use); conntrack limits left alone.
  log "kube-proxy, coredns"
  start kube-proxy "$kube/kube-proxy" --kubeconfig "$dir/kubeconfig" --proxy-mode nftables \
    --cluster-cidr "$pod_cidr" --hostname-override "$node" --conntrack-max-per-core 0 \
    --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256
  start coredns "$kube/coredns" -conf "$dir/Corefile"
  log "kubelet"
  start kubelet "$kube/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$dir/kubelet.kubeconfig" \
    --root-dir "$state/kubelet" --hostname-override "$node" --node-ip "$node_ip" --v 1
  wait_for "node $node" 180 node_ready
  wait_for "the default ServiceAccount" 60 kubectl_ get serviceaccount default
  wait_for "kube-root-ca.crt" 60 kubectl_ get configmap kube-root-ca.crt
  log "ready: KUBECONFIG=$dir/kubeconfig $root/bin/kubectl get nodes"
}

node_ready() {
  [[ $(kubectl_ get node "$node" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

kubectl_() {
  local k=$root/bin/kubectl
  [[ -x $k ]] || k=$kube/kubectl
  "$k" --kubeconfig "$dir/kubeconfig" "$@"
}

# The pause image, from Kubernetes' own pause.c, built static here.
images_pause() {
  if ctr_ images ls -q | grep -qx "$pause_image"; then return; fi
  log "pause image"
  "$root/e2e/cluster/images.sh" pause "$pause_image" | ctr_ images import --all-platforms - >/dev/null
}

# The images tracecam's manifests and its example name, built here and
# imported (nothing can be pulled): the webhook and the sidecar from their
# Dockerfiles (BUILD_FROM=local: this tree's static binaries on scratch) as
# :latest, which the manifests pin; Redis from Debian's redis-server; the
# demo app from a Debian rootfs with python3. Then two overlays that point
# the manifests at the last two:
#   kubectl apply -k .cache/cluster/overlay           (manifests/)
#   kubectl apply -k .cache/cluster/overlay-example   (manifests/example/)
images() {
  running containerd || die "the cluster is not up (e2e/cluster/cluster.sh up)"
  log "images: static binaries"
  (cd "$root" && CGO_ENABLED=0 go build -o bin/static/ ./cmd/tracecam-sidecar ./cmd/tracecam-webhook) ||
    die "building the static binaries"
  local img
  for img in webhook sidecar; do
    log "images: ghcr.io/tracecam/tracecam-$img:latest (images/$img.Dockerfile)"
    import_image dockerfile "ghcr.io/tracecam/tracecam-$img:latest" "$img"
  done
  log "images: localhost/tracecam-redis:7.0-debian, localhost/tracecam-demo-app:dev"
  import_image debian localhost/tracecam-redis:7.0-debian redis-server redis-cli
  import_image demo-app localhost/tracecam-demo-app:dev
  overlay overlay ../../../manifests "docker.io/library/redis" localhost/tracecam-redis 7.0-debian
  overlay overlay-example ../../../manifests/example "docker.io/library/python" localhost/tracecam-demo-app dev
  log "images ready: KUBECONFIG=$dir/kubeconfig $root/bin/kubectl apply -k $dir/overlay"
}

import_image() {
  "$root/e2e/cluster/images.sh" "$@" | ctr_ images import - >/dev/null || die "image $2"
}

# overlay NAME BASE IMAGE NEW-NAME NEW-TAG (kustomize wants relative paths)
overlay() {
  mkdir -p "$dir/$1"
  cat >"$dir/$1/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $2
images:
  - name: $3
    newName: $4
    newTag: $5
EOF
}

down() {
  # Pods first (their containers' shims and mounts), then the daemons.
  if running kubelet && running kube-apiserver; then
    kubectl_ delete pods --all --all-namespaces --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
  fi
  stop kubelet
  if [[ -S $run/containerd.sock ]]; then
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
    sleep 1
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true; done
    for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$c" >/dev/null 2>&1 || true; done
  fi
  pkill -f "containerd-shim-runc-v2 .*-address $run/containerd.sock" 2>/dev/null || true
  stop coredns
  stop kube-proxy
  stop kube-scheduler
  stop kube-controller-manager
  stop containerd
  stop kube-apiserver
  stop etcd
  # Mounts the kubelet and containerd left (pod volumes, rootfs, shm).
  awk -v s="$state" -v r="$run" '$2 ~ "^"s || $2 ~ "^"r { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  for ns in $(ip netns list 2>/dev/null | awk '/^cni-/ { print $1 }'); do ip netns delete "$ns" 2>/dev/null || true; done
  ip link delete "$bridge" 2>/dev/null || true
  nft delete table ip kube-proxy 2>/dev/null || true
  nft delete table ip6 kube-proxy 2>/dev/null || true
  local cg
  cg=$(cgroup2)
  if [[ -n $cg && -d $cg/kubepods ]]; then
    find "$cg/kubepods" -depth -type d -exec rmdir {} + 2>/dev/null || true
  fi
  log "down"
}

purge() {
  down
  rm -rf "$dir" "$state" "$run"
}

status() {
  for d in etcd kube-apiserver containerd kube-controller-manager kube-scheduler kube-proxy coredns kubelet; do
    if running "$d"; then echo "$d running (pid $(cat "$(pidfile "$d")"))"; else echo "$d stopped"; fi
  done
}

case ${1:-} in
  up) up ;;
  images) images ;;
  down) down ;;
  purge) purge ;;
  status) status ;;
  *) echo "usage: $0 up|images|down|purge|status" >&2; exit 2 ;;
esac
