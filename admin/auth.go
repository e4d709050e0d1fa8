package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// refusedLogInterval bounds how often a refused request is logged; the
// ones in between are counted in the next line's suppressed.
const refusedLogInterval = 10 * time.Second

// tokenAuth checks the bearer token of Options.Token.
type tokenAuth struct {
	on      bool              // a token is required
	sum     [sha256.Size]byte // of the token: compared in constant time whatever the lengths
	log     *slog.Logger
	refused prometheus.Counter

	mu         sync.Mutex
	lastLog    time.Time
	suppressed uint64
}

// newTokenAuth returns the check for token (empty: none, everything is
// allowed); its counter is registered either way (refusedCounter).
func newTokenAuth(token string, log *slog.Logger) *tokenAuth {
	a := &tokenAuth{
		on:  token != "",
		log: log,
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "admin_requests_refused_total",
			Help:      "Admin requests refused for a missing or wrong bearer token (-AdminToken).",
		}),
	}
	a.sum = sha256.Sum256([]byte(token))
	return a
}

// refusedCounter returns the counter of refused requests.
func (a *tokenAuth) refusedCounter() prometheus.Counter { return a.refused }

// allow reports whether r carries the token; if not, it answers 401,
// counts and logs the refusal.
func (a *tokenAuth) allow(w http.ResponseWriter, r *http.Request) bool {
	if !a.on {
		return true
	}
	got, ok := bearer(r.Header.Get("Authorization"))
	sum := sha256.Sum256([]byte(got))
	if ok && subtle.ConstantTimeCompare(sum[:], a.sum[:]) == 1 {
		return true
	}
	a.refused.Inc()
	reason := "no bearer token"
	if ok {
		reason = "wrong bearer token"
	}
	a.logRefused(r, reason)
	w.Header().Set("WWW-Authenticate", `Bearer realm="fastway admin"`)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte("401 unauthorized: this endpoint needs Authorization: Bearer <token> (-AdminToken)\n"))
	return false
}

// bearer returns the token of an "Authorization: Bearer <token>" value.
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// logRefused logs a refusal, at most once per refusedLogInterval.
func (a *tokenAuth) logRefused(r *http.Request, reason string) {
	a.mu.Lock()
	now := time.Now()
	if now.Sub(a.lastLog) < refusedLogInterval {
		a.suppressed++
		a.mu.Unlock()
		return
	}
	a.lastLog = now
	suppressed := a.suppressed
	a.suppressed = 0
	a.mu.Unlock()
	attrs := []any{slog.String("remote", r.RemoteAddr), slog.String("path", capPath(r.URL.Path)), slog.String("reason", reason)}
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed", suppressed))
	}
	a.log.Warn("admin request refused", attrs...)
}

// capPath shortens a path for the log: a peer chooses it.
func capPath(p string) string {
	if len(p) > 64 {
		return p[:64] + "..."
	}
	return p
}
