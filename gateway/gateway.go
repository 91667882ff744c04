package gateway

import (
	"context"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"

	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
)

// Options configures the REST gateway.
type Options struct {
	// OpenAPI is the OpenAPI (swagger) document served at /openapi.json as
	// application/json; nil or empty serves none (404).
	OpenAPI []byte
}

// OpenAPIPath is where the OpenAPI document is served.
const OpenAPIPath = "/openapi.json"

// MaxURLBytes is the longest request target (path and query) [Handler]
// accepts; longer ones get 414. No API parameter comes close.
const MaxURLBytes = 8 << 10

// MaxHeaderBytes is the request header limit [NewServer] sets, request line
// included; it leaves room for a MaxURLBytes URL so that one gets the
// explanatory 414 rather than net/http's bare 431.
const MaxHeaderBytes = 16 << 10

// NewMux returns the grpc-gateway mux serving the REST API from server,
// called in-process (no loopback connection, so gRPC interceptors do not
// run for REST requests). It answers in JSON ([JSONMarshaler]) unless the
// request asks for text with ?format=text or Accept: text/plain, when it
// draws the camera view ([TextMarshaler]); errors are [ErrorBody] JSON or
// one line of text. With opts.OpenAPI it also serves [OpenAPIPath].
//
// The mux is usable on its own; [Handler] adds the URL limit, HEAD and the
// caller's extra endpoints.
func NewMux(ctx context.Context, server tracecamv1.ProfilerServer, opts Options) (*runtime.ServeMux, error) {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, JSONMarshaler{}),
		runtime.WithMarshalerOption(JSONContentType, JSONMarshaler{}),
		runtime.WithMarshalerOption(textMIME, TextMarshaler{}),
		runtime.WithMiddlewares(negotiation),
		runtime.WithErrorHandler(errorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler),
		// The API is GET only: no POST-as-GET form fallback, no method
		// override header.
		runtime.WithDisablePathLengthFallback(),
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithWriteContentLength(),
	)
	if err := tracecamv1.RegisterProfilerHandlerServer(ctx, mux, server); err != nil {
		return nil, fmt.Errorf("gateway: registering the profiler: %w", err)
	}
	if len(opts.OpenAPI) > 0 {
		doc := opts.OpenAPI
		err := mux.HandlePath(http.MethodGet, OpenAPIPath, func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
			w.Header().Set("Content-Type", JSONContentType)
			w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
			_, _ = w.Write(doc)
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: registering %s: %w", OpenAPIPath, err)
		}
	}
	return mux, nil
}

// Handler serves mux behind the limits every request goes through, plus
// extra: handlers for exact paths ("/healthz", "/metrics", ...) that are
// matched before the gateway, for every method, and are served unchanged.
// As with http.ServeMux, a key ending in "/" ("/debug/pprof/") also
// matches every path below it; the longest such key wins. extra is copied;
// nil is fine.
//
// Requests whose target is longer than [MaxURLBytes] get 414. HEAD on a
// gateway route is answered as GET without the body. Gateway responses
// carry X-Content-Type-Options: nosniff, since their text comes from the
// traced requests.
func Handler(mux http.Handler, extra map[string]http.Handler) http.Handler {
	extra = maps.Clone(extra)
	var prefixes []string
	for p := range extra {
		if strings.HasSuffix(p, "/") {
			prefixes = append(prefixes, p)
		}
	}
	// Longest first, so /debug/pprof/ wins over /debug/.
	slices.SortFunc(prefixes, func(a, b string) int { return len(b) - len(a) })
	lookup := func(path string) http.Handler {
		if h, ok := extra[path]; ok {
			return h
		}
		for _, p := range prefixes {
			if strings.HasPrefix(path, p) {
				return extra[p]
			}
		}
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.RequestURI
		if target == "" {
			target = r.URL.RequestURI()
		}
		if len(target) > MaxURLBytes {
			writeError(w, r, codes.InvalidArgument, http.StatusRequestURITooLong,
				fmt.Sprintf("request URL is %d bytes, the limit is %d", len(target), MaxURLBytes))
			return
		}
		if h := lookup(r.URL.Path); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodHead {
			// net/http discards the body of a HEAD response on its own;
			// the gateway only knows GET routes.
			r = r.Clone(r.Context())
			r.Method = http.MethodGet
		}
		mux.ServeHTTP(w, r)
	})
}

// NewServer returns an http.Server for h on addr with the timeouts and
// header limit an API exposed in a pod should have.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

const (
	formatText = "text"
	formatJSON = "json"
)

// negotiate says which representation r asks for: ?format=text or
// ?format=json first, else whichever of text/plain and application/json
// the Accept header ranks higher (the earlier one on a tie), else ""
// (the default, JSON). Wildcards (*/*, text/*) choose nothing.
func negotiate(r *http.Request) string {
	switch f := r.URL.Query().Get("format"); {
	case strings.EqualFold(f, formatText):
		return formatText
	case strings.EqualFold(f, formatJSON):
		return formatJSON
	}
	best, bestQ := "", 0.0
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			var f string
			switch mt {
			case "text/plain":
				f = formatText
			case "application/json":
				f = formatJSON
			default:
				continue
			}
			q := 1.0
			if s, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(s, 64); err != nil {
					continue
				}
			}
			if q > bestQ {
				best, bestQ = f, q
			}
		}
	}
	return best
}

func wantsText(r *http.Request) bool { return negotiate(r) == formatText }

// negotiation rewrites the Accept header to exactly the MIME type the
// chosen marshaler is registered under: grpc-gateway picks the outbound
// marshaler by exact match of an Accept value, so "text/plain, */*;q=0.1"
// or ?format=text would otherwise fall through to JSON.
func negotiation(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		var accept string
		switch negotiate(r) {
		case formatText:
			accept = textMIME
		case formatJSON:
			accept = JSONContentType
		default:
			next(w, r, params)
			return
		}
		if v := r.Header.Values("Accept"); len(v) != 1 || v[0] != accept {
			// Leave the caller's request alone; a shallow copy with its
			// own header map is enough.
			r2 := *r
			r2.Header = r.Header.Clone()
			r2.Header.Set("Accept", accept)
			r = &r2
		}
		next(w, r, params)
	}
}
