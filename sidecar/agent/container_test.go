package agent

import "testing"

func TestEnvironValue(t *testing.T) {
	for _, tc := range []struct {
		environ, want string
	}{
		{"PATH=/bin\x00TRACECAM_CONTAINER_NAME=app\x00HOME=/", "app"},
		{"TRACECAM_CONTAINER_NAME=web\x00", "web"},
		{"TRACECAM_CONTAINER_NAME_X=no\x00XTRACECAM_CONTAINER_NAME=no", ""},
		{"", ""},
		{"TRACECAM_CONTAINER_NAME=", ""},
		{"\x00\x00garbage\x00TRACECAM_CONTAINER_NAME=a=b", "a=b"},
	} {
		if got := environValue([]byte(tc.environ), containerNameEnv); got != tc.want {
			t.Errorf("environValue(%q) = %q, want %q", tc.environ, got, tc.want)
		}
	}
}
