package deviceapi

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// rateLimiter is a token bucket per key, driven by the times callers pass
// (from the injected clock). Memory is bounded: when maxKeys buckets exist,
// buckets that have refilled completely are dropped (they carry no
// information); if none has, new keys are refused until some refill.
type rateLimiter struct {
	mu      sync.Mutex
	rate    float64 // tokens per second
	burst   float64
	maxKeys int
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newRateLimiter(perSecond float64, burst, maxKeys int) *rateLimiter {
	return &rateLimiter{rate: perSecond, burst: float64(burst), maxKeys: maxKeys, buckets: make(map[string]*bucket)}
}

// allow takes a token from key's bucket at now. When the bucket is empty
// it returns false and how long until a token is available.
func (l *rateLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys {
			l.sweep(now)
			if len(l.buckets) >= l.maxKeys {
				return false, l.wait(1)
			}
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, l.wait(1 - b.tokens)
}

func (l *rateLimiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.at = now
	}
}

// wait is how long the bucket needs to gain n tokens.
func (l *rateLimiter) wait(n float64) time.Duration {
	if l.rate <= 0 {
		return time.Hour
	}
	return time.Duration(math.Ceil(n / l.rate * float64(time.Second)))
}

// sweep drops buckets that are full again at now.
func (l *rateLimiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// clientKey is the rate-limit key for a request's source address: the IP
// for IPv4, the /64 prefix for IPv6 (one host usually owns a whole /64).
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// nonceCache remembers the nonces of signed requests until they would be
// stale anyway, so a captured request cannot be replayed within the replay
// window. It is per process: replicas behind a load balancer each keep
// their own (a replay must then reach another replica within the window).
type nonceCache struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time // nonce → when it stops mattering
}

func newNonceCache(max int) *nonceCache {
	return &nonceCache{max: max, seen: make(map[string]time.Time)}
}

// nonceResult is the answer of nonceCache.use.
type nonceResult int

const (
	nonceFresh nonceResult = iota
	nonceReplayed
	nonceFull // too many live nonces; the caller should ask to retry later
)

// use records nonce as used until until, and says whether it had been
// used before.
func (c *nonceCache) use(nonce string, until, now time.Time) nonceResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.seen[nonce]; ok && now.Before(exp) {
		return nonceReplayed
	}
	if len(c.seen) >= c.max {
		for k, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= c.max {
			return nonceFull
		}
	}
	c.seen[nonce] = until
	return nonceFresh
}
