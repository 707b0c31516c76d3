package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// anchor is the link GitHub makes for a heading.
func anchor(heading string) string {
	a := strings.ToLower(strings.TrimSpace(heading))
	a = regexp.MustCompile(`[^\w\- ]`).ReplaceAllString(a, "")
	return strings.ReplaceAll(a, " ", "-")
}

// TestREADMEContentsMatchHeadings: the contents list names every section
// and subsection, in order, and nothing else.
func TestREADMEContentsMatchHeadings(t *testing.T) {
	doc := readme(t)
	start := strings.Index(doc, "## Contents\n")
	if start < 0 {
		t.Fatal("the README has no contents list")
	}
	end := strings.Index(doc[start+1:], "\n## ") + start + 1
	var listed []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- \[[^\]]+\]\(#([^)]+)\)$`).FindAllStringSubmatch(doc[start:end], -1) {
		listed = append(listed, m[1])
	}
	var headings []string
	for _, m := range regexp.MustCompile("(?m)^#{2,3} (.+)$").FindAllStringSubmatch(doc[end:], -1) {
		headings = append(headings, anchor(strings.ReplaceAll(m[1], "`", "")))
	}
	if !slices.Equal(listed, headings) {
		t.Errorf("contents list %q\nheadings      %q", listed, headings)
	}
}

// TestREADMELayoutMatchesTree: every path the Layout table names exists,
// and every Go package directory and top-level directory of the repository
// is in it (itself or a parent).
func TestREADMELayoutMatchesTree(t *testing.T) {
	doc := readme(t)
	start := strings.Index(doc, "Layout:\n")
	if start < 0 {
		t.Fatal("the README has no Layout table")
	}
	var paths []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(doc[start:], -1) {
		paths = append(paths, strings.TrimSuffix(m[1], "/"))
	}
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join("..", p)); err != nil {
			t.Errorf("the Layout table names %s, which does not exist", p)
		}
	}
	covered := func(dir string) bool {
		for _, p := range paths {
			if dir == p || strings.HasPrefix(dir, p+"/") {
				return true
			}
		}
		return false
	}
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", path)
		rel = filepath.ToSlash(rel)
		name := d.Name()
		if d.IsDir() && rel != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "vendor") {
			return filepath.SkipDir
		}
		if d.IsDir() && rel != "." && !strings.Contains(rel, "/") && !covered(rel) {
			t.Errorf("top-level directory %s is not in the README's Layout table", rel)
		}
		if !d.IsDir() && strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			if dir := filepath.ToSlash(filepath.Dir(rel)); dir != "." && !covered(dir) {
				t.Errorf("package %s is not in the README's Layout table", dir)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestChangelogNamesTheTestedVersions: the CHANGELOG and the README state
// the Caddy version xcaddy.sh builds with.
func TestChangelogNamesTheTestedVersions(t *testing.T) {
	script, err := os.ReadFile("../xcaddy.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`CADDY_VERSION=(v[0-9.]+)`).FindSubmatch(script)
	if m == nil {
		t.Fatal("xcaddy.sh names no CADDY_VERSION")
	}
	changelog, err := os.ReadFile("../CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"CHANGELOG.md": string(changelog), "README.md": readme(t)} {
		if !strings.Contains(text, "Caddy "+string(m[1])) {
			t.Errorf("%s does not say it is built and tested with Caddy %s", name, m[1])
		}
	}
}
