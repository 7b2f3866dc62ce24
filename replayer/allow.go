package replayer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrTargetNotAllowed is returned (wrapped) for a replay target that the
// allowlist does not admit.
var ErrTargetNotAllowed = errors.New("replay target not allowed")

// Allowlist admits replay targets by host. An entry is one of:
//
//	shadow.internal           that host, any port
//	shadow.internal:8080      that host and port
//	*.shadow.internal         any subdomain (not the domain itself), any port
//	*.shadow.internal:8080    any subdomain, that port
//	10.1.0.0/16               targets written as an IP address in that network
//	[::1]:8080, 127.0.0.1     IP addresses, with or without port
//
// Host names match case-insensitively and are not resolved: an entry for a
// name does not admit the name's IP addresses, nor the other way round.
type Allowlist struct {
	entries []allowEntry
	texts   []string
}

type allowEntry struct {
	host   string // lower case; "*.x" for a wildcard
	port   int    // 0: any
	prefix netip.Prefix
}

// NewAllowlist parses the entries; an empty list admits nothing.
func NewAllowlist(entries []string) (*Allowlist, error) {
	a := &Allowlist{}
	for _, raw := range entries {
		e := strings.TrimSpace(raw)
		if e == "" {
			continue
		}
		if strings.Contains(e, "://") || strings.ContainsAny(e, "?#@ \t") {
			return nil, fmt.Errorf("allow-target %q: want host[:port], *.domain[:port] or a CIDR, not a URL", raw)
		}
		if strings.Contains(e, "/") {
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("allow-target %q: %w", raw, err)
			}
			a.entries = append(a.entries, allowEntry{prefix: p.Masked()})
			a.texts = append(a.texts, e)
			continue
		}
		host, port := e, 0
		if h, p, err := net.SplitHostPort(e); err == nil {
			n, perr := strconv.Atoi(p)
			if perr != nil || n <= 0 || n > 65535 {
				return nil, fmt.Errorf("allow-target %q: port %q is not 1-65535", raw, p)
			}
			host, port = h, n
		} else if strings.HasPrefix(e, "[") && strings.HasSuffix(e, "]") {
			host = e[1 : len(e)-1]
		}
		host = strings.ToLower(strings.TrimSuffix(host, "."))
		if host == "" || host == "*" || strings.Contains(host[1:], "*") || (strings.HasPrefix(host, "*") && !strings.HasPrefix(host, "*.")) {
			return nil, fmt.Errorf("allow-target %q: want host[:port], *.domain[:port] or a CIDR", raw)
		}
		a.entries = append(a.entries, allowEntry{host: host, port: port})
		a.texts = append(a.texts, e)
	}
	return a, nil
}

// Len is the number of entries.
func (a *Allowlist) Len() int {
	if a == nil {
		return 0
	}
	return len(a.entries)
}

// Allows reports whether target (an absolute URL) is admitted.
func (a *Allowlist) Allows(target *url.URL) bool {
	if a == nil {
		return false
	}
	host, port := hostPort(target)
	ip, ipErr := netip.ParseAddr(host)
	for _, e := range a.entries {
		switch {
		case e.prefix.IsValid():
			if ipErr == nil && e.prefix.Contains(ip.Unmap()) {
				return true
			}
		case e.port != 0 && e.port != port:
		case strings.HasPrefix(e.host, "*."):
			if strings.HasSuffix(host, e.host[1:]) {
				return true
			}
		case e.host == host:
			return true
		default:
			if ipErr == nil {
				if eip, err := netip.ParseAddr(e.host); err == nil && eip.Unmap() == ip.Unmap() {
					return true
				}
			}
		}
	}
	return false
}

// String lists the entries.
func (a *Allowlist) String() string {
	if a == nil {
		return ""
	}
	return strings.Join(a.texts, ", ")
}

// IsLoopback reports whether target names this machine: an address in
// 127.0.0.0/8 or ::1, or a host name whose addresses all are. Names are
// resolved, "localhost" and names under ".localhost" included: a name is never
// admitted as loopback by its spelling. The lookup is bounded by ctx.
func IsLoopback(ctx context.Context, target *url.URL) bool {
	host, _ := hostPort(target)
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().IsLoopback()
	}
	if host == "" {
		return false
	}
	addrs, err := lookupNetIP(ctx, "ip", host)
	notLoopback := func(a netip.Addr) bool { return !a.Unmap().IsLoopback() }
	return err == nil && len(addrs) > 0 && !slices.ContainsFunc(addrs, notLoopback)
}

// lookupNetIP resolves host names for IsLoopback (replaced in tests).
var lookupNetIP = net.DefaultResolver.LookupNetIP

// lookupTimeout bounds the name lookup of CheckTarget.
const lookupTimeout = 5 * time.Second

// CheckTarget decides whether requests may be replayed to target:
//
//   - with an allowlist (non-empty), the target's host and port must match an
//     entry, and nothing else is admitted, loopback included;
//   - without one, only loopback targets (see IsLoopback: names are resolved,
//     for up to 5 s) and the target of the configuration file (configured)
//     are admitted: a mistyped --target must not send copies of production
//     traffic to production or to a stranger.
//
// The error wraps ErrTargetNotAllowed and says how to allow the target.
func CheckTarget(target *url.URL, allow *Allowlist, configured string) error {
	host := target.Host
	if allow.Len() > 0 {
		if allow.Allows(target) {
			return nil
		}
		return fmt.Errorf("target %s: %w: %s is not in the allowlist (%s); add --allow-target %s or replay.allow_targets", target.Redacted(), ErrTargetNotAllowed, host, allow, host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	if IsLoopback(ctx, target) {
		return nil
	}
	if configured != "" {
		if cu, err := url.Parse(configured); err == nil && sameOrigin(cu, target) {
			return nil
		}
	}
	return fmt.Errorf("target %s: %w: no allowlist is configured and only loopback targets or the replay.target of -c FILE are allowed then; add --allow-target %s or replay.allow_targets", target.Redacted(), ErrTargetNotAllowed, host)
}

func sameOrigin(a, b *url.URL) bool {
	ah, ap := hostPort(a)
	bh, bp := hostPort(b)
	return strings.EqualFold(a.Scheme, b.Scheme) && ah == bh && ap == bp
}

// hostPort returns the lower-case host (without brackets or trailing dot) and
// the port, defaulted from the scheme.
func hostPort(u *url.URL) (string, int) {
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	port, err := strconv.Atoi(u.Port())
	if err != nil || port == 0 {
		port = 80
		if strings.EqualFold(u.Scheme, "https") {
			port = 443
		}
	}
	return host, port
}
