//go:build !cgo

package main

func cValue() int { return 0 }
