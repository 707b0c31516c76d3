package sessionstore

import "testing"

// The JSON work of the write path: the handler validates each X-Session-Set
// (ValidatePatch), then the store merges it into the stored data
// (ApplyPatches: decode both, merge, encode canonically).
//
//	go test -run '^$' -bench 'ValidatePatch|ApplyPatches|Normalize' -benchmem ./sessionstore/

const (
	benchStoredData = `{"cart":[1,2,3],"n":41,"user":"alice"}`
	benchOnePatch   = `{"n":42}`
)

func BenchmarkValidatePatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := ValidatePatch(benchOnePatch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyPatches(b *testing.B) {
	patches := []string{benchOnePatch}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ApplyPatches(benchStoredData, patches); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNormalize is what the Redis store does to every value it loads.
func BenchmarkNormalize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Normalize(benchStoredData); err != nil {
			b.Fatal(err)
		}
	}
}
