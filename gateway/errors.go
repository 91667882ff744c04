package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/status"
)

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	// Code is the gRPC status code (5 NotFound, 3 InvalidArgument, ...).
	Code codes.Code `json:"code"`
	// Error is the status message.
	Error string `json:"error"`
	// Status repeats the HTTP status code.
	Status int `json:"status"`
}

// HTTPStatus maps a gRPC code to the HTTP status the REST API answers
// with: NotFound 404, InvalidArgument 400, Unavailable 503,
// DeadlineExceeded 504, others as runtime.HTTPStatusFromCode.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.NotFound:
		return http.StatusNotFound
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return runtime.HTTPStatusFromCode(c)
}

// errorHandler is the runtime.ErrorHandlerFunc of the mux: RPC errors,
// query parameters that do not parse, responses that fail to marshal.
func errorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	httpStatus := 0
	var hs *runtime.HTTPStatusError
	if errors.As(err, &hs) {
		httpStatus = hs.HTTPStatus
		err = hs.Err
	}
	s := status.Convert(err)
	if httpStatus == 0 {
		httpStatus = HTTPStatus(s.Code())
	}
	writeError(w, r, s.Code(), httpStatus, s.Message())
}

// routingErrorHandler answers requests no route matched: 404 for unknown
// paths, 405 for a known path with another method, 400 for a malformed
// path.
func routingErrorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	var (
		code codes.Code
		msg  string
	)
	switch httpStatus {
	case http.StatusNotFound:
		code, msg = codes.NotFound, fmt.Sprintf("no such endpoint: %q", r.URL.Path)
	case http.StatusMethodNotAllowed:
		code, msg = codes.Unimplemented, fmt.Sprintf("method %s not allowed on %q", r.Method, r.URL.Path)
		w.Header().Set("Allow", "GET, HEAD")
	case http.StatusBadRequest:
		code, msg = codes.InvalidArgument, fmt.Sprintf("malformed path %q", r.URL.Path)
	default:
		code, msg = codes.Internal, http.StatusText(httpStatus)
	}
	writeError(w, r, code, httpStatus, msg)
}

// writeError writes the error response: ErrorBody as JSON, or for a
// text/plain request one line, "404 Not Found: <message>".
func writeError(w http.ResponseWriter, r *http.Request, code codes.Code, httpStatus int, msg string) {
	h := w.Header()
	h.Del("Trailer")
	h.Del("Transfer-Encoding")
	h.Del("Content-Length")
	var body []byte
	if wantsText(r) {
		h.Set("Content-Type", TextContentType)
		body = fmt.Appendf(nil, "%d %s: %s\n", httpStatus, http.StatusText(httpStatus), clean(msg))
	} else {
		h.Set("Content-Type", JSONContentType)
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		// Encoding three plain fields cannot fail.
		_ = enc.Encode(ErrorBody{Code: code, Error: msg, Status: httpStatus})
		body = buf.Bytes()
	}
	w.WriteHeader(httpStatus)
	if _, err := w.Write(body); err != nil && !errors.Is(err, http.ErrBodyNotAllowed) {
		grpclog.Errorf("gateway: writing error response: %v", err)
	}
}
