package profile

// Number formats shared by the diagnosis and the camera view, so a summary
// and the view it sits in print the same numbers the same way.

import (
	"fmt"
	"math"
)

// Plural says "1 wait" or "3 waits".
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// FormatDuration prints milliseconds with one decimal because that is the precision
// a human compares request latencies at; sub-0.1 ms values switch to µs so
// they do not all read as "0.0 ms".
func FormatDuration(ns int64) string {
	switch {
	case ns < 0:
		return "-" + FormatDuration(-ns)
	case ns < 1_000:
		return fmt.Sprintf("%d ns", ns)
	case ns < 100_000:
		return fmt.Sprintf("%.1f µs", float64(ns)/1e3)
	}
	return fmt.Sprintf("%.1f ms", float64(ns)/1e6)
}

// FormatPercent rounds to whole percent; a non-zero share that would round to 0%
// prints as <1% so it is not mistaken for nothing.
func FormatPercent(ns, denom int64) string {
	if denom <= 0 {
		return "0%"
	}
	v := float64(ns) * 100 / float64(denom)
	if v > 0 && v < 0.5 {
		return "<1%"
	}
	return fmt.Sprintf("%.0f%%", math.Round(v))
}

// FormatBytes prints sizes in binary units.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n)/unit, "KiB"
	for _, s := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}
