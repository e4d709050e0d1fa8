package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// A /proc/PID/stat line whose command name holds spaces and parentheses;
// utime is 1234 ticks and stime 567.
const statFixture = "4242 (fast way) (x)) S 1 4242 4242 0 -1 4194560 1520 0 0 0 1234 567 0 0 20 0 9 0 123456 1234567890 2345 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"

const statusFixture = `Name:	fastway
Umask:	0022
State:	S (sleeping)
Pid:	4242
VmPeak:	 1264548 kB
VmSize:	 1264548 kB
VmHWM:	   20480 kB
VmRSS:	   18432 kB
RssAnon:	    9000 kB
Threads:	9
`

func TestParseStatCPU(t *testing.T) {
	got, err := parseStatCPU(statFixture)
	if err != nil {
		t.Fatal(err)
	}
	if want := (1234 + 567) * 10 * time.Millisecond; got != want {
		t.Fatalf("cpu = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "4242 fastway S 1", "4242 (fastway) S 1 2 3", "4242 (x) S 1 4242 4242 0 -1 0 0 0 0 0 abc 5 0"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) succeeded", bad)
		}
	}
}

func TestParseStatusRSS(t *testing.T) {
	got, err := parseStatusRSS(statusFixture)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(18432 << 10); got != want {
		t.Fatalf("rss = %d, want %d", got, want)
	}
	noRSS := strings.ReplaceAll(statusFixture, "VmRSS:", "VmXXX:")
	for _, bad := range []string{"", noRSS, "VmRSS: 12 MB\n", "VmRSS: x kB\n"} {
		if _, err := parseStatusRSS(bad); err == nil {
			t.Errorf("parseStatusRSS(%q) succeeded", bad)
		}
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if s.rss <= 0 || s.cpu < 0 {
		t.Fatalf("sample %+v", s)
	}
}
