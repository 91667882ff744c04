package metrics

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalizeRoute(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/", "/"},
		{"/users", "/users"},
		{"/users/42", "/users/{id}"},
		{"/users/42/", "/users/{id}/"},
		{"/users/42/orders/7", "/users/{id}/orders/{id}"},
		{"/users/42?expand=1&x=2", "/users/{id}"},
		{"/users/42#frag", "/users/{id}"},
		{"/?q=1", "/"},
		{"/v1/items", "/v1/items"},
		{"/api/v2/health", "/api/v2/health"},
		{"/orders/550e8400-e29b-41d4-a716-446655440000", "/orders/{id}"},
		{"/orders/550E8400-E29B-41D4-A716-446655440000/items", "/orders/{id}/items"},
		{"/objects/5f2b8c9d1e3a4b6c7d8e9f01", "/objects/{id}"},                 // Mongo ObjectId
		{"/commits/da39a3ee5e6b4b0d3255bfef95601890afd80709", "/commits/{id}"}, // SHA-1
		{"/blobs/DEADBEEF01", "/blobs/{id}"},
		{"/deadbeef", "/deadbeef"}, // a word that happens to be hex
		{"/cafe", "/cafe"},
		{"/images/12345.png", "/images/{id}.png"},
		{"/export/42.json", "/export/{id}.json"},
		{"/index.html", "/index.html"},
		{"/v1.2/x", "/v1.2/x"},
		{"/2024-01-02/report", "/2024-01-02/report"},
		{"/reset/eyJhbGciOiJIUzI1NiJ9xYz9", "/reset/{token}"},      // base64-like
		{"/s/aB3dE5gH7jK9mN1p", "/s/{token}"},                      // mixed case and digits, 16+
		{"/posts/how-to-profile-python-in-2024", "/posts/{token}"}, // slug with a number, 24+
		{"/posts/how-to-profile-python", "/posts/how-to-profile-python"},
		{"/x/" + strings.Repeat("a", 65), "/x/{token}"},
		{"/a//b", "/a//b"},
		{"http://example.com/users/42?x", "/users/{id}"},
		{"http://example.com", "/"},
		{"*", "*"},
		{"?", "{invalid}"},
		{"", "{invalid}"},
		{"users/42", "{invalid}"},
		{"/caf\xc3\xa9", "/café"},
		{"/bad\xff/1", "/bad\uFFFD/{id}"},
		{"/ctl\x01x", "/ctl\uFFFDx"},
		{"/1/2/3/4/5/6/7/8/9/10/11/12", "/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}"},
		{"/a/b/c/d/e/f/g/h/i/j/k/l/m/n", "/a/b/c/d/e/f/g/h/i/j/k/l/{more}"},
	}
	for _, tt := range tests {
		if got := NormalizeRoute(tt.in); got != tt.want {
			t.Errorf("NormalizeRoute(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeRouteBounds(t *testing.T) {
	long := "/" + strings.Repeat("segment/", 100)
	wide := "/" + strings.Repeat("abcdefghij-", 5) + "/" + strings.Repeat("x", 60) + "/" + strings.Repeat("y", 60) + "/" + strings.Repeat("z", 60) + "/" + strings.Repeat("w", 60)
	for _, in := range []string{long, wide, "/\xff\xfe\xfd", "/" + strings.Repeat("é", 200)} {
		got := NormalizeRoute(in)
		if len(got) > maxRoute+16 || !utf8.ValidString(got) {
			t.Errorf("NormalizeRoute(%.40q…) = %q (%d bytes, valid UTF-8 %v)", in, got, len(got), utf8.ValidString(got))
		}
	}
}

func FuzzNormalizeRoute(f *testing.F) {
	for _, s := range []string{"/users/42", "http://x/y", "*", "/a\xff", "/" + strings.Repeat("1/", 20)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := NormalizeRoute(in)
		if !utf8.ValidString(got) || len(got) > maxRoute+16 || got == "" {
			t.Fatalf("NormalizeRoute(%q) = %q", in, got)
		}
		// Normalising a route again changes nothing (when no byte had to be
		// replaced: U+FFFD is longer than the byte it stands for).
		if got != "{invalid}" && got != "*" && !strings.ContainsRune(got, utf8.RuneError) && NormalizeRoute(got) != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, got, NormalizeRoute(got))
		}
	})
}

func TestAppendRouteDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendRoute(buf[:0], "/users/550e8400-e29b-41d4-a716-446655440000/orders/42?x=1")
		_ = NormalizeMethod("GET")
	}); n != 0 {
		t.Errorf("AppendRoute allocates %.0f times", n)
	}
}

func TestNormalizeMethod(t *testing.T) {
	for in, want := range map[string]string{"GET": "GET", "POST": "POST", "PATCH": "PATCH", "get": "OTHER", "PROPFIND": "OTHER", "?": "OTHER", "": "OTHER"} {
		if got := NormalizeMethod(in); got != want {
			t.Errorf("NormalizeMethod(%q) = %q, want %q", in, got, want)
		}
	}
}
