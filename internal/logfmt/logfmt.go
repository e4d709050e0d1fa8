// Package logfmt parses the log lines of log/slog's text handler (and, for
// convenience, its JSON handler) into key/value maps. Tests and tools that
// drive the fastway binary read its log with it.
package logfmt

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Parse splits one log line into its key/value pairs. A text line
// (key=value, values quoted when they hold spaces) has its quoted values
// unquoted; a line starting with '{' is read as a JSON object, its values
// formatted with fmt.Sprint.
func Parse(s string) map[string]string {
	kv := map[string]string{}
	if strings.HasPrefix(s, "{") {
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) == nil {
			for k, v := range m {
				kv[k] = fmt.Sprint(v)
			}
		}
		return kv
	}
	for s != "" {
		s = strings.TrimLeft(s, " ")
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			break
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			end = min(end+1, len(s))
			v, err := strconv.Unquote(s[:end])
			if err != nil {
				v = s[:end]
			}
			val, s = v, s[end:]
		} else {
			sp := strings.IndexByte(s, ' ')
			if sp < 0 {
				sp = len(s)
			}
			val, s = s[:sp], s[sp:]
		}
		kv[key] = val
	}
	return kv
}
