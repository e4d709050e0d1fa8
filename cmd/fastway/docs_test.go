package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docSection returns the part of the file path from the line that starts
// with heading up to the next heading of the same or a higher level.
func docSection(t *testing.T, path, heading string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("%s has no heading %q", path, heading)
	}
	s = s[i+1+len(heading):]
	level := heading[:strings.IndexByte(heading, ' ')+1] // "## " or "### "
	for _, h := range []string{"\n# ", "\n## ", "\n### "} {
		if len(h)-1 > len(level) {
			break
		}
		if j := strings.Index(s, h); j >= 0 {
			s = s[:j]
		}
	}
	return s
}

// documentedCommands returns the command lines in the first column of the
// tables in section, placeholders (NAME, [RATE]) left out.
func documentedCommands(section string) []string {
	// A command and its arguments: lower-case words, placeholders in
	// capitals or brackets (not the dotted keys of the stats table).
	row := regexp.MustCompile("(?m)^\\| `([a-z]+(?: [A-Za-z\\[\\]]+)*)` \\|")
	var lines []string
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		var words []string
		for _, w := range strings.Fields(m[1]) {
			if strings.HasPrefix(w, "[") || w == strings.ToUpper(w) {
				continue
			}
			words = append(words, w)
		}
		if line := strings.Join(words, " "); !slices.Contains(lines, line) {
			lines = append(lines, line)
		}
	}
	return lines
}

// TestDocsCommandTables checks the ops command tables of docs/operations.md
// and docs/protocol.md against the running binary: every command its help
// lists has a row, and every row runs, through the command file and
// SIGUSR1, without an error.
func TestDocsCommandTables(t *testing.T) {
	t.Parallel()
	p := startProc(t, t.TempDir(), loopbackArgs...)
	p.ready()
	var names []string
	for _, l := range strings.Split(p.run("help", false).kv["result"], "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	if len(names) < 5 {
		t.Fatalf("help listed %q", names)
	}
	for _, doc := range []struct{ path, heading string }{
		{"../../docs/operations.md", "## Ops commands"},
		{"../../docs/protocol.md", "### 4.3 Commands"},
	} {
		lines := documentedCommands(docSection(t, doc.path, doc.heading))
		for _, name := range names {
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.Fields(l)[0] == name }) {
				t.Errorf("%s, %q: no row for the command %q", doc.path, doc.heading, name)
			}
		}
		for _, line := range lines {
			p.run(line, false) // fails the test unless logged as done
		}
	}
}
