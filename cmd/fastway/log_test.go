package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/fastway-go/fastway/internal/logfmt"
)

func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		level, format string
		logged        []string // levels that reach the output
	}{
		{"debug", "text", []string{"DEBUG", "INFO", "WARN", "ERROR"}},
		{"info", "text", []string{"INFO", "WARN", "ERROR"}},
		{"WARN", "json", []string{"WARN", "ERROR"}},
		{"error", "json", []string{"ERROR"}},
	} {
		t.Run(tc.level+"/"+tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			log := newLogger(&buf, tc.level, tc.format)
			log.Debug("m", "k", "v")
			log.Info("m", "k", "v")
			log.Warn("m", "k", "v")
			log.Error("m", "k", "v")
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if buf.Len() == 0 {
				lines = nil
			}
			if len(lines) != len(tc.logged) {
				t.Fatalf("%d records, want %d: %q", len(lines), len(tc.logged), buf.String())
			}
			for i, line := range lines {
				var level string
				if tc.format == "json" {
					var rec map[string]any
					if err := json.Unmarshal([]byte(line), &rec); err != nil {
						t.Fatalf("record %q is not JSON: %v", line, err)
					}
					level, _ = rec["level"].(string)
					if rec["msg"] != "m" || rec["k"] != "v" {
						t.Errorf("record %q lacks msg=m k=v", line)
					}
				} else {
					kv := logfmt.Parse(line)
					level = kv["level"]
					if kv["msg"] != "m" || kv["k"] != "v" {
						t.Errorf("record %q lacks msg=m k=v", line)
					}
				}
				if level != tc.logged[i] {
					t.Errorf("record %d at level %q, want %q", i, level, tc.logged[i])
				}
			}
		})
	}
}
