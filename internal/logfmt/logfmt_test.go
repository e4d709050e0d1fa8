package logfmt

import "testing"

func TestParse(t *testing.T) {
	got := Parse(`time=2026-11-22T03:00:00Z level=INFO msg=listening side=client addr=127.0.0.1:4000 note="a \"quoted\" value"`)
	want := map[string]string{"time": "2026-11-22T03:00:00Z", "level": "INFO", "msg": "listening", "side": "client", "addr": "127.0.0.1:4000", "note": `a "quoted" value`}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	j := Parse(`{"level":"WARN","msg":"x","n":3}`)
	if j["level"] != "WARN" || j["msg"] != "x" || j["n"] != "3" {
		t.Errorf("JSON line: %v", j)
	}
	if len(Parse("")) != 0 || len(Parse("no pairs here")) != 0 {
		t.Error("lines without pairs should give empty maps")
	}
}
