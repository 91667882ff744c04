// Command tracecam-webhook is the mutating admission webhook that adds the
// tracecam sidecar to pods annotated tracecam.io/inject: "true". See
// docs/kubernetes.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tracecam/tracecam/webhook"
	"github.com/tracecam/tracecam/webhook/certs"
	"github.com/tracecam/tracecam/webhook/server"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

// env lets every flag be set from TRACECAM_WEBHOOK_<FLAG> (dashes become
// underscores).
func env(name, def string) string {
	if v, ok := os.LookupEnv("TRACECAM_WEBHOOK_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return v
	}
	return def
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "tracecam-webhook:", err)
		os.Exit(1)
	}
}

type flags struct {
	port                                        int
	host, tlsMode, certDir                      string
	namespace, serviceName, secretName, mwcName string
	kubeconfig, certIPs                         string
	certCheck, shutdownDelay                    time.Duration
	logLevel                                    string
	image, pullPolicy                           string
	native                                      bool
	segmentThreshold, redisAddr, redisSecret    string
	clusterName, sidecarLogLevel                string
	cpuRequest, cpuLimit, memRequest, memLimit  string
}

func parse(args []string) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("tracecam-webhook", flag.ContinueOnError)
	d := webhook.DefaultConfig()
	dr := webhook.DefaultResources()
	q := func(l corev1.ResourceList, n corev1.ResourceName) string { v := l[n]; return v.String() }
	fs.IntVar(&f.port, "port", atoiOr(env("port", ""), 8443), "TLS port for /mutate-v1-pod, /readyz, /healthz and /metrics")
	fs.StringVar(&f.host, "bind-address", env("bind-address", ""), "address to listen on (empty: all)")
	fs.StringVar(&f.tlsMode, "tls-mode", env("tls-mode", server.TLSSelf), "self: create and rotate the certificate (Secret + caBundle); files: read tls.crt/tls.key from --cert-dir (e.g. cert-manager), reloaded on change")
	fs.StringVar(&f.certDir, "cert-dir", env("cert-dir", "/var/run/tracecam-webhook/certs"), "folder of tls.crt and tls.key (written in self mode, read in files mode)")
	fs.StringVar(&f.namespace, "namespace", env("namespace", os.Getenv("POD_NAMESPACE")), "namespace of the webhook's Service and certificate Secret (default: $POD_NAMESPACE)")
	fs.StringVar(&f.serviceName, "service-name", env("service-name", "tracecam-webhook"), "the webhook's Service: the certificate covers <service>.<namespace>.svc")
	fs.StringVar(&f.secretName, "secret-name", env("secret-name", "tracecam-webhook-tls"), "Secret holding the CA and serving certificate (self mode), shared by replicas")
	fs.StringVar(&f.mwcName, "webhook-config-name", env("webhook-config-name", "tracecam"), "MutatingWebhookConfiguration whose caBundle is kept (self mode)")
	fs.StringVar(&f.certIPs, "cert-ips", env("cert-ips", ""), "comma-separated IP addresses the certificate also covers (for a webhook reached by URL)")
	fs.DurationVar(&f.certCheck, "cert-check-interval", durOr(env("cert-check-interval", ""), time.Minute), "how often the Secret and caBundle are checked (self mode)")
	fs.DurationVar(&f.shutdownDelay, "shutdown-delay", durOr(env("shutdown-delay", ""), 5*time.Second), "after SIGTERM, report not-ready this long before closing the listener")
	fs.StringVar(&f.kubeconfig, "kubeconfig", env("kubeconfig", os.Getenv("KUBECONFIG")), "kubeconfig file (default: in-cluster configuration)")
	fs.StringVar(&f.logLevel, "log-level", env("log-level", "info"), "debug, info, warn or error")
	fs.StringVar(&f.image, "sidecar-image", env("sidecar-image", ""), "image of the injected sidecar (required)")
	fs.StringVar(&f.pullPolicy, "sidecar-image-pull-policy", env("sidecar-image-pull-policy", string(d.ImagePullPolicy)), "Always, IfNotPresent or Never")
	fs.BoolVar(&f.native, "native-sidecar", env("native-sidecar", "true") == "true", "inject a native sidecar (init container with restartPolicy Always, Kubernetes >= 1.29); false: a regular container")
	fs.StringVar(&f.segmentThreshold, "segment-threshold", env("segment-threshold", d.SegmentThreshold), "sidecar default: waits at least this long become timeline segments")
	fs.StringVar(&f.redisAddr, "redis-addr", env("redis-addr", ""), "sidecar default: Redis host:port[,host:port…] for cross-pod traces (empty: none)")
	fs.StringVar(&f.redisSecret, "redis-password-secret", env("redis-password-secret", ""), "Secret (in the pod's namespace) whose key \"password\" the sidecar uses for Redis")
	fs.StringVar(&f.clusterName, "cluster-name", env("cluster-name", ""), "cluster name in Redis keys (sidecar default: \"default\")")
	fs.StringVar(&f.sidecarLogLevel, "sidecar-log-level", env("sidecar-log-level", d.LogLevel), "sidecar default log level")
	fs.StringVar(&f.cpuRequest, "sidecar-cpu-request", env("sidecar-cpu-request", q(dr.Requests, corev1.ResourceCPU)), "sidecar default CPU request")
	fs.StringVar(&f.cpuLimit, "sidecar-cpu-limit", env("sidecar-cpu-limit", q(dr.Limits, corev1.ResourceCPU)), "sidecar default CPU limit")
	fs.StringVar(&f.memRequest, "sidecar-memory-request", env("sidecar-memory-request", q(dr.Requests, corev1.ResourceMemory)), "sidecar default memory request")
	fs.StringVar(&f.memLimit, "sidecar-memory-limit", env("sidecar-memory-limit", q(dr.Limits, corev1.ResourceMemory)), "sidecar default memory limit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return f, nil
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

func durOr(s string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	return def
}

// sidecarConfig turns the flags into a webhook.Config, rejecting bad values
// at start-up rather than at the first pod.
func (f *flags) sidecarConfig() (webhook.Config, error) {
	if f.image == "" {
		return webhook.Config{}, errors.New("--sidecar-image is required")
	}
	cfg := webhook.DefaultConfig()
	cfg.Image = f.image
	cfg.ImagePullPolicy = corev1.PullPolicy(f.pullPolicy)
	cfg.NativeSidecar = f.native
	cfg.SegmentThreshold = f.segmentThreshold
	cfg.RedisAddr = f.redisAddr
	cfg.RedisPasswordSecret = f.redisSecret
	cfg.ClusterName = f.clusterName
	cfg.LogLevel = f.sidecarLogLevel
	cfg.Version = version
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for _, r := range []struct {
		flag, v string
		list    corev1.ResourceList
		name    corev1.ResourceName
	}{
		{"sidecar-cpu-request", f.cpuRequest, res.Requests, corev1.ResourceCPU},
		{"sidecar-cpu-limit", f.cpuLimit, res.Limits, corev1.ResourceCPU},
		{"sidecar-memory-request", f.memRequest, res.Requests, corev1.ResourceMemory},
		{"sidecar-memory-limit", f.memLimit, res.Limits, corev1.ResourceMemory},
	} {
		if r.v == "" {
			continue
		}
		qty, err := resource.ParseQuantity(r.v)
		if err != nil {
			return webhook.Config{}, fmt.Errorf("--%s=%q: %w", r.flag, r.v, err)
		}
		r.list[r.name] = qty
	}
	cfg.Resources = res
	if err := cfg.Validate(); err != nil {
		return webhook.Config{}, err
	}
	return cfg, nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level=%q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func run(args []string) error {
	f, err := parse(args)
	if err != nil {
		return err
	}
	log, err := newLogger(f.logLevel)
	if err != nil {
		return err
	}
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	cfg, err := f.sidecarConfig()
	if err != nil {
		return err
	}

	opts := server.Options{
		Port: f.port, Host: f.host, TLSMode: f.tlsMode, CertDir: f.certDir,
		CertCheckInterval: f.certCheck, Inject: cfg, ShutdownDelay: f.shutdownDelay,
		Version: version, Log: log,
	}
	if f.tlsMode == server.TLSSelf {
		if f.namespace == "" {
			return errors.New("--namespace (or $POD_NAMESPACE) is required with --tls-mode=self")
		}
		rc, err := restConfig(f.kubeconfig)
		if err != nil {
			return err
		}
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return fmt.Errorf("creating the Kubernetes client: %w", err)
		}
		svc := f.serviceName + "." + f.namespace
		var ips []string
		for _, ip := range strings.Split(f.certIPs, ",") {
			if ip = strings.TrimSpace(ip); ip != "" {
				ips = append(ips, ip)
			}
		}
		opts.Certs = &certs.Manager{
			Client: client, Namespace: f.namespace, SecretName: f.secretName, WebhookConfigName: f.mwcName,
			DNSNames: []string{svc + ".svc", svc + ".svc.cluster.local", svc, f.serviceName},
			IPs:      ips, CertDir: f.certDir, Log: log.With("component", "certs"),
		}
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	log.Info("starting tracecam-webhook", "version", version)
	return server.Run(ctx, opts)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
		}
		return c, nil
	}
	c, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster configuration (outside a cluster, pass --kubeconfig): %w", err)
	}
	return c, nil
}
