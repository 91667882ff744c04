package profile

import "testing"

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		ns   int64
		want string
	}{
		{0, "0 ns"},
		{999, "999 ns"},
		{1_500, "1.5 µs"},
		{99_000, "99.0 µs"},
		{100_000, "0.1 ms"},
		{201_300_000, "201.3 ms"},
		{-2_000_000, "-2.0 ms"},
	}
	for _, tt := range tests {
		if got := FormatDuration(tt.ns); got != tt.want {
			t.Errorf("FormatDuration(%d) = %q, want %q", tt.ns, got, tt.want)
		}
	}
}
