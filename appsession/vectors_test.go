package appsession

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"
)

// The vectors are made by the gateway's own code (caddymodule's
// TestHelperVectors): every helper is held to them.
type vectorFile struct {
	Signatures []struct {
		Name        string            `json:"name"`
		SessionName string            `json:"session_name"`
		Secrets     []string          `json:"secrets"`
		Now         int64             `json:"now"`
		MaxAge      int64             `json:"max_age"`
		Headers     map[string]string `json:"headers"`
		Valid       bool              `json:"valid"`
	} `json:"signatures"`
	Canonical []struct {
		Name      string          `json:"name"`
		Value     json.RawMessage `json:"value"`
		Canonical string          `json:"canonical"`
	} `json:"canonical"`
	Merge []struct {
		Name     string   `json:"name"`
		Data     string   `json:"data"`
		Patches  []string `json:"patches"`
		MaxSize  int      `json:"max_size"`
		Result   string   `json:"result"`
		TooLarge bool     `json:"too_large"`
	} `json:"merge"`
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	b, err := os.ReadFile("../helpers/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Signatures) == 0 || len(v.Canonical) == 0 || len(v.Merge) == 0 {
		t.Fatal("vectors.json has an empty section")
	}
	return v
}

func TestVectorsSignatures(t *testing.T) {
	valid := 0
	for _, c := range loadVectors(t).Signatures {
		t.Run(c.Name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range c.Headers {
				h.Set(k, v)
			}
			got := VerifyAt(h, c.SessionName, c.Secrets, time.Duration(c.MaxAge)*time.Second, time.Unix(c.Now, 0))
			if got != c.Valid {
				t.Errorf("VerifyAt = %v, want %v", got, c.Valid)
			}
		})
		if c.Valid {
			valid++
		}
	}
	if valid == 0 {
		t.Error("no valid signature among the vectors")
	}
}

func TestVectorsCanonical(t *testing.T) {
	for _, c := range loadVectors(t).Canonical {
		t.Run(c.Name, func(t *testing.T) {
			v, err := decodeJSON(c.Value)
			if err != nil {
				t.Fatal(err)
			}
			got, err := CanonicalJSON(v)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.Canonical {
				t.Errorf("CanonicalJSON = %s, want %s", got, c.Canonical)
			}
		})
	}
}

// TestVectorsMerge applies each vector's patches with the helper's merge,
// and checks the helper's size rule; then does the same through a
// Session, as an app would, patch by patch.
func TestVectorsMerge(t *testing.T) {
	for _, c := range loadVectors(t).Merge {
		t.Run(c.Name, func(t *testing.T) {
			data, err := decodeObject(c.Data)
			if err != nil {
				t.Fatal(err)
			}
			var result any = data
			for _, p := range c.Patches {
				pv, err := decodeJSON([]byte(p))
				if err != nil {
					t.Fatal(err)
				}
				result = mergePatch(result, pv)
			}
			canon := string(appendCanonical(nil, result))
			current := len(appendCanonical(nil, data))
			tooLarge := OverSize(len(canon), current, c.MaxSize)
			if tooLarge != c.TooLarge {
				t.Fatalf("OverSize(%d, %d, %d) = %v, want %v", len(canon), current, c.MaxSize, tooLarge, c.TooLarge)
			}
			if !c.TooLarge && canon != c.Result {
				t.Errorf("merge = %s, want %s", canon, c.Result)
			}

			// The same through a Session: each patch's keys are Set (an
			// object value under a key merges, as the patch would, so
			// merge it here first).
			s := sessionWith(t, c.Data)
			s.SetMaxSize(c.MaxSize)
			var serr error
			for _, p := range c.Patches {
				pv, _ := decodeJSON([]byte(p))
				for k, v := range pv.(map[string]any) {
					cur, _ := s.Get(k)
					if serr = s.Set(k, mergePatch(cur, v)); serr != nil {
						break
					}
				}
			}
			if c.TooLarge {
				if !errors.Is(serr, ErrTooLarge) {
					t.Errorf("Session: err = %v, want ErrTooLarge", serr)
				}
				return
			}
			if serr != nil {
				t.Fatal(serr)
			}
			got, _ := CanonicalJSON(s.Data())
			if got != c.Result {
				t.Errorf("Session data = %s, want %s", got, c.Result)
			}
		})
	}
}

func sessionWith(t *testing.T, data string) *Session {
	t.Helper()
	h := http.Header{}
	h.Set("X-Session-Id", "0123456789abcdef0123456789abcdef")
	h.Set("X-Session-New", "false")
	h.Set("X-Session-Data", data)
	s, err := Read(h, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}
