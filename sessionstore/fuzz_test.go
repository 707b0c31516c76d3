package sessionstore

import "testing"

func FuzzApplyPatches(f *testing.F) {
	for _, seed := range [][2]string{
		{`{"a":"b"}`, `{"a":"c"}`},
		{`{"a":{"b":1,"c":2}}`, `{"a":{"b":null,"d":[1,2]}}`},
		{`{"n":12345678901234567890}`, `{"m":1.10}`},
		{`{"é":"\u00fc"}`, `{"😀":"x"}`},
		{`{}`, `{"a":null}`},
		{`{"a": 1, "b": [ ]}`, `{"b":{"c":{"d":null}}}`},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, target, patch string) {
		if _, err := Canonicalize(target); err != nil || ValidatePatch(patch) != nil {
			if _, err := ApplyPatches(target, []string{patch}); err == nil && target != "" {
				t.Fatalf("ApplyPatches took a bad target %q or patch %q", target, patch)
			}
			return
		}
		once, err := ApplyPatches(target, []string{patch})
		if err != nil {
			t.Fatalf("ApplyPatches(%q, %q): %v", target, patch, err)
		}
		if again, err := Canonicalize(once); err != nil || again != once {
			t.Fatalf("result %q is not canonical (%q, %v)", once, again, err)
		}
		if normalized, err := Normalize(once); err != nil || normalized != once {
			t.Fatalf("Normalize changed canonical %q to %q (%v)", once, normalized, err)
		}
		// A merge patch is idempotent.
		if twice, err := ApplyPatches(once, []string{patch}); err != nil || twice != once {
			t.Fatalf("applying %q again changed %q to %q (%v)", patch, once, twice, err)
		}
	})
}
