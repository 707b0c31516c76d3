package mergepatch

import "testing"

// The JSON work of the write path: the handler validates each X-Session-Set
// (Validate), then the store merges it into the stored data
// (Apply: decode both, merge, encode canonically).
//
//	go test -run '^$' -bench 'Validate|Apply|Normalize|Canonicalize' -benchmem ./sessionstore/mergepatch/

const (
	benchStoredData = `{"cart":[1,2,3],"n":41,"user":"alice"}`
	benchOnePatch   = `{"n":42}`
	// benchForeignData is benchStoredData as sanic_session's json.dumps
	// writes it: spaced, keys in insertion order, raw UTF-8 allowed.
	benchForeignData = `{"user": "alice", "n": 41, "cart": [1, 2, 3], "city": "Zürich"}`
)

func BenchmarkValidatePatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate(benchOnePatch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyPatches(b *testing.B) {
	patches := []string{benchOnePatch}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Apply(benchStoredData, patches); err != nil {
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

// BenchmarkCanonicalize is Normalize of data that is not in canonical form:
// what the Redis store does to a value sanic_session wrote.
func BenchmarkCanonicalize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonicalize(benchForeignData); err != nil {
			b.Fatal(err)
		}
	}
}
