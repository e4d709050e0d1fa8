package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// logLevels are the -LogLevel values.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// parseLogLevel parses a -LogLevel value (any case).
func parseLogLevel(s string) (slog.Level, error) {
	l, ok := logLevels[strings.ToLower(s)]
	if !ok {
		return 0, fmt.Errorf("-LogLevel=%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// newLogger returns the process's logger on w, with the validated
// -LogLevel and -LogFormat.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	lv, _ := parseLogLevel(level)
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
